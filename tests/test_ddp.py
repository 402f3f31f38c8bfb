"""Two processes on the gloo backend: the proximal step keeps the gates identical on every rank, and the keep schedule
and the evaluations are sized by the steps each process takes."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from glue_fixtures import write_glue_fixture
from safetensors.torch import load_file

from soralab.experiments.models import save_tiny_checkpoint


def test_gates_identical_on_two_ranks(tmp_path):
    write_glue_fixture(tmp_path / "glue", "sst2", n_train=48, n_dev=16)
    model = save_tiny_checkpoint(tmp_path / "model")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("SORALAB_GLUE_DIR", None)
    worker = Path(__file__).with_name("ddp_worker.py")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
                           str(worker), str(tmp_path), model,
                           str(tmp_path / "glue")], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    g0 = load_file(str(tmp_path / "gates_rank0.safetensors"))
    g1 = load_file(str(tmp_path / "gates_rank1.safetensors"))
    assert g0.keys() == g1.keys() and len(g0) == 12
    for name in g0:
        assert torch.equal(g0[name], g1[name]), name
    zeros = sum(int((g == 0).sum()) for g in g0.values())
    assert 0.25 <= 1 - zeros / (12 * 8) <= 0.75, f"keep 0.5 should leave about half the ranks, {zeros} of 96 dead"
    assert (tmp_path / "run" / "result.json").is_file()
