import pytest
import torch


@pytest.fixture
def batch():
    """A fixed token batch valid for every tiny model (vocab 99, length <= 64)."""
    g = torch.Generator().manual_seed(123)
    ids = torch.randint(2, 99, (3, 11), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine thread contention costs several x."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
