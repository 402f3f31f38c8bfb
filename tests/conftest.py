import pytest
import torch


@pytest.fixture
def batch():
    """A fixed token batch valid for every tiny model (vocab 99, length <= 64)."""
    g = torch.Generator().manual_seed(123)
    ids = torch.randint(2, 99, (3, 11), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
