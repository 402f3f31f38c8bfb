"""soralab.experiments.costs: stored parameters (a saved folder agrees with the count from a live model), safetensors
value/byte accounting and interleaved latency timing."""

import pytest
import torch
from glue_fixtures import TINY_BERT_IN_PLUS_OUT
from safetensors.torch import save_file
from torch import nn

import soralab
from soralab.experiments.costs import (
    Latency,
    count_stored,
    file_cost,
    interleaved_latency,
    saved_tensors,
    stored_params,
)
from soralab.experiments.models import HEADS, TARGETS, tiny_model
from soralab.inject import matches


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

# tiny bert: per block four hidden x hidden layers and two hidden <-> FFN layers
IN_PLUS_OUT = TINY_BERT_IN_PLUS_OUT
HEAD = 32 * 2 + 2 + 32 * 32 + 32  # classifier weight and bias (2 labels), pooler dense weight and bias


def _model(config):
    return soralab.inject(tiny_model("bert"), config)


@pytest.mark.parametrize("arch", ["bert", "deberta-v2"])
def test_file_and_model_counts_agree_for_every_method(arch, tmp_path):
    configs = {
        "lora": soralab.LoRAConfig(r=3, target_modules=TARGETS[arch], modules_to_save=HEADS[arch]),
        "nola": soralab.NOLAConfig(num_basis_A=5, num_basis_B=7, target_modules=TARGETS[arch],
                                   modules_to_save=HEADS[arch]),
        "sora": soralab.SoRAConfig(r=4, target_modules=TARGETS[arch], modules_to_save=HEADS[arch]),
    }
    for name, config in configs.items():
        model = soralab.inject(tiny_model(arch), config)
        if name == "sora":
            layers = [m for _, m in soralab.adapter_modules(model)]
            with torch.no_grad():
                for i, m in enumerate(layers):
                    m.gate[: i % 5] = 0.0  # 0..4 dead ranks; every fifth module dies completely
            expected = soralab.gate_report(model).params_after_prune
            soralab.prune(model)
        else:
            expected = sum(p.numel() for _, m in soralab.adapter_modules(model) for p in m.parameters(recurse=False))
        head = sum(p.numel() for n, m in model.named_modules() if n and matches(n, HEADS[arch]) for p in m.parameters())
        assert count_stored(model) == expected
        assert count_stored(model, head=True) == expected + head
        soralab.save_adapter(model, tmp_path / name)
        assert stored_params(tmp_path / name) == expected, name
        assert stored_params(tmp_path / name, head=True) == expected + head, name
        heads = saved_tensors(tmp_path / name, "head")
        assert heads and all(any(f".{h}." in f".{k}" for h in HEADS[arch]) for k in heads)
        assert set(saved_tensors(tmp_path / name)) == set(heads) | set(saved_tensors(tmp_path / name, "adapter"))


def test_exact_counts_on_the_tiny_bert(tmp_path):
    nola = _model(soralab.NOLAConfig(num_basis_A=6, num_basis_B=10, target_modules=TARGETS["bert"]))
    soralab.save_adapter(nola, tmp_path / "nola")
    tensors = saved_tensors(tmp_path / "nola", "adapter")
    assert {k.rsplit(".", 1)[1] for k in tensors} == {"coef_A", "coef_B"} and len(tensors) == 2 * 12
    assert stored_params(tmp_path / "nola") == 12 * (6 + 10)
    assert saved_tensors(tmp_path / "nola", "head") == {}
    lora = _model(soralab.LoRAConfig(r=2, target_modules=TARGETS["bert"], modules_to_save=HEADS["bert"]))
    assert count_stored(lora) == 2 * IN_PLUS_OUT and count_stored(lora, head=True) == 2 * IN_PLUS_OUT + HEAD


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a soralab adapter folder"):
        stored_params(tmp_path)
    with pytest.raises(ValueError, match="needs a model with soralab adapters"):
        count_stored(tiny_model("bert"))
    model = _model(soralab.LoRAConfig(r=1, target_modules=["query"]))
    soralab.save_adapter(model, tmp_path / "a")
    with pytest.raises(ValueError, match="part must be one of"):
        saved_tensors(tmp_path / "a", "gates")
