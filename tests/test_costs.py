"""soralab.costs: safetensors value/byte accounting and interleaved latency timing."""

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from soralab.costs import Latency, file_cost, interleaved_latency


@pytest.mark.parametrize("dtype, width", [(torch.float32, 4), (torch.float16, 2)])
def test_file_cost_counts_values_and_splits_bytes(tmp_path, dtype, width):
    tensors = {"a.weight": torch.zeros(3, 5, dtype=dtype), "b": torch.ones(7, dtype=dtype),
               "scalar": torch.tensor(1.0, dtype=dtype)}
    save_file(tensors, str(tmp_path / "x.safetensors"))
    cost = file_cost(tmp_path / "x.safetensors")
    assert cost.values == 3 * 5 + 7 + 1
    assert cost.bytes == (tmp_path / "x.safetensors").stat().st_size
    assert cost.payload_bytes == width * cost.values
    assert 0 < cost.header_bytes < 1000  # the JSON header names three tensors


def test_file_cost_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no safetensors file"):
        file_cost(tmp_path / "nope.safetensors")


class Recorder(nn.Module):
    def __init__(self, name, log):
        super().__init__()
        self.name, self.log = name, log

    def forward(self, x):
        self.log.append((self.name, torch.is_inference_mode_enabled()))
        return x * 2


def test_interleaved_latency_runs_round_robin_after_warmup():
    log = []
    models = {"a": Recorder("a", log), "b": Recorder("b", log)}
    lat = interleaved_latency(models, {"x": torch.ones(2)}, repeats=3, warmup=2)
    assert [n for n, _ in log] == ["a", "b"] * 5  # 2 warm-up rounds + 3 timed rounds, interleaved
    assert all(inference for _, inference in log)
    assert set(lat) == {"a", "b"} and all(len(v.times_ms) == 3 and v.median > 0 for v in lat.values())


def test_latency_summary_and_bad_arguments():
    lat = Latency((1.0, 2.0, 3.0, 4.0, 100.0))
    assert lat.median == 3.0 and lat.iqr > 0
    assert Latency((5.0,)).iqr == 0.0
    with pytest.raises(ValueError, match="repeats >= 1"):
        interleaved_latency({"a": nn.Identity()}, {"input": torch.ones(1)}, repeats=0)
    with pytest.raises(ValueError, match="no models"):
        interleaved_latency({}, {})
