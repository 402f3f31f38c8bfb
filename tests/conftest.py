import os

import pytest
import torch


def pytest_configure(config):
    """Under pytest-xdist (``make test`` runs two workers) each worker, and every notebook kernel or subprocess it
    starts, gets its share of the cores, so workers x threads never exceeds them (contention costs several x)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // workers)))
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


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
