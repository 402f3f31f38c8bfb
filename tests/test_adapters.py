"""Layers and injection: identity at init, SoRA-with-ones == LoRA, PEFT parity, every architecture."""

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers.pytorch_utils import Conv1D

import soralab
from soralab.experiments.models import HEADS, TARGETS, tiny_model

ARCHS = ["bert", "roberta", "deberta-v2", "gpt2"]

CONFIGS = {
    "lora": lambda targets, heads: soralab.LoRAConfig(r=4, lora_alpha=8, target_modules=targets,
                                                      modules_to_save=heads),
    "sora": lambda targets, heads: soralab.SoRAConfig(r=4, lora_alpha=8, target_modules=targets,
                                                      modules_to_save=heads),
    "nola": lambda targets, heads: soralab.NOLAConfig(r=4, lora_alpha=8, target_modules=targets,
                                                      modules_to_save=heads, num_basis_A=8, num_basis_B=8),
}


def logits(model, batch):
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


def randomize_adapters(model, seed=0):
    """Give every adapter a non-zero update (B starts at 0, so outputs would not move)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, m in soralab.adapter_modules(model):
            for p in m.parameters(recurse=False):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", list(CONFIGS))
def test_inject_every_architecture(arch, method, batch):
    base = tiny_model(arch)
    ref = logits(base, batch)
    model = soralab.inject(copy.deepcopy(base), CONFIGS[method](TARGETS[arch], HEADS[arch]))
    layers = dict(soralab.adapter_modules(model))
    n_blocks = 2
    assert len(layers) == n_blocks * len(TARGETS[arch])
    if arch == "gpt2":
        assert all(isinstance(m.base_layer, Conv1D) and m.fan_in_fan_out for m in layers.values())
    # identity at init
    torch.testing.assert_close(logits(model, batch), ref, rtol=0, atol=1e-6)
    # only adapters and the head train
    for name, p in model.named_parameters():
        in_head = any(f".{h}." in f".{name}" for h in HEADS[arch])
        in_adapter = any(name.startswith(n + ".") and "base_layer" not in name[len(n):] for n in layers)
        assert p.requires_grad == (in_head or in_adapter), name
    # the adapters do change outputs once non-zero, and the gradient reaches them
    randomize_adapters(model)
    assert not torch.allclose(logits(model, batch), ref, atol=1e-4)
    model.train()
    model(**batch).logits.sum().backward()
    assert all(p.grad is not None for m in layers.values() for p in m.parameters(recurse=False))


def test_sora_with_unit_gates_equals_lora(batch):
    lora = soralab.inject(tiny_model("bert"), soralab.LoRAConfig(r=4, target_modules=TARGETS["bert"]))
    sora = soralab.inject(tiny_model("bert"), soralab.SoRAConfig(r=4, target_modules=TARGETS["bert"],
                                                                  gate_init="ones"))
    randomize_adapters(lora, seed=3)
    with torch.no_grad():
        for (_, a), (_, b) in zip(soralab.adapter_modules(lora), soralab.adapter_modules(sora), strict=True):
            b.lora_A.copy_(a.lora_A)
            b.lora_B.copy_(a.lora_B)
            assert torch.equal(b.gate, torch.ones(4))
    torch.testing.assert_close(logits(sora, batch), logits(lora, batch), rtol=0, atol=0)


def test_delta_weight_matches_forward():
    base = torch.nn.Linear(6, 5)
    for layer in (soralab.LoRALinear(base, 3, 6.0), soralab.SoRALinear(base, 3, 6.0),
                  soralab.NOLALinear(base, 3, 6.0, num_basis_A=4, num_basis_B=4)):
        with torch.no_grad():
            for p in layer.parameters(recurse=False):
                p.normal_()
        x = torch.randn(7, 6)
        torch.testing.assert_close(layer(x), base(x) + x @ layer.delta_weight().T)
        assert layer.scaling == 2.0


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_lora_equals_peft_lora_given_same_weights(arch, batch):
    targets = TARGETS[arch]
    ours = soralab.inject(tiny_model(arch), soralab.LoRAConfig(r=4, lora_alpha=8, target_modules=targets))
    randomize_adapters(ours, seed=7)
    peft_model = get_peft_model(tiny_model(arch), LoraConfig(r=4, lora_alpha=8, target_modules=targets,
                                                             fan_in_fan_out=arch == "gpt2"))
    with torch.no_grad():
        for name, m in soralab.adapter_modules(ours):
            pm = peft_model.base_model.model.get_submodule(name)
            pm.lora_A["default"].weight.copy_(m.lora_A)
            pm.lora_B["default"].weight.copy_(m.lora_B)
    torch.testing.assert_close(logits(ours, batch), logits(peft_model, batch), rtol=1e-5, atol=1e-6)


def test_nola_bases_are_regenerated_from_seed_and_not_saved():
    def make(seed):
        return soralab.inject(tiny_model("bert"), soralab.NOLAConfig(r=2, target_modules=["query"], seed=seed,
                                                                      num_basis_A=3, num_basis_B=5))
    a, b, c = make(1), make(1), make(2)
    la, lb, lc = (dict(soralab.adapter_modules(m)) for m in (a, b, c))
    name = "bert.encoder.layer.0.attention.self.query"
    assert torch.equal(la[name].basis_A, lb[name].basis_A) and not torch.equal(la[name].basis_A, lc[name].basis_A)
    other = "bert.encoder.layer.1.attention.self.query"
    assert not torch.equal(la[name].basis_A, la[other].basis_A)  # per-module bases
    assert not any("basis" in k for k in a.state_dict())
    trainable = {n for n, p in la[name].named_parameters() if p.requires_grad}
    assert trainable == {"coef_A", "coef_B"}
    assert la[name].coef_A.numel() + la[name].coef_B.numel() == 8


def test_no_hidden_merge_on_train_eval(batch):
    model = soralab.inject(tiny_model("bert"), soralab.SoRAConfig(r=4, target_modules=["query"]))
    randomize_adapters(model)
    w = model.bert.encoder.layer[0].attention.self.query.base_layer.weight.clone()
    out = logits(model, batch)
    model.train()
    model.eval()
    assert torch.equal(model.bert.encoder.layer[0].attention.self.query.base_layer.weight, w)
    torch.testing.assert_close(logits(model, batch), out, rtol=0, atol=0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(r=0), "r must be a positive integer"),
    (dict(r=-2), "r must be a positive integer"),
    (dict(r=2.5), "r must be a positive integer"),
    (dict(lora_alpha=0), "lora_alpha must be > 0"),
    (dict(lora_alpha=-1), "lora_alpha must be > 0"),
    (dict(lora_dropout=1.0), r"lora_dropout must be in \[0, 1\)"),
    (dict(lora_dropout=-0.1), r"lora_dropout must be in \[0, 1\)"),
    (dict(target_modules=[]), "target_modules must be a non-empty list"),
])
@pytest.mark.parametrize("cls", [soralab.LoRAConfig, soralab.SoRAConfig, soralab.NOLAConfig])
def test_bad_config_values(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_bad_method_specific_values():
    with pytest.raises(ValueError, match="gate_init must be one of"):
        soralab.SoRAConfig(gate_init="zeros")
    with pytest.raises(ValueError, match="num_basis_A must be a positive integer"):
        soralab.NOLAConfig(num_basis_A=0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        soralab.NOLAConfig(seed=-1)


def test_unknown_target_lists_candidates():
    with pytest.raises(ValueError, match=r"no module matches target_modules=\['q_proj'\].*'query'.*'value'"):
        soralab.inject(tiny_model("bert"), soralab.LoRAConfig(target_modules=["q_proj"]))


def test_unsupported_target_type():
    with pytest.raises(TypeError, match="is a LayerNorm; soralab adapts only Linear, Conv1D"):
        soralab.inject(tiny_model("bert"), soralab.LoRAConfig(target_modules=["attention.output.LayerNorm"]))


def test_unknown_module_to_save_and_double_inject():
    with pytest.raises(ValueError, match=r"modules_to_save \['head'\] match no module"):
        soralab.inject(tiny_model("bert"), soralab.LoRAConfig(target_modules=["query"], modules_to_save=["head"]))
    model = soralab.inject(tiny_model("bert"), soralab.LoRAConfig(target_modules=["query"]))
    with pytest.raises(ValueError, match="already has adapters"):
        soralab.inject(model, soralab.LoRAConfig(target_modules=["value"]))


@pytest.mark.parametrize("method", list(CONFIGS))
def test_a_half_precision_base_gets_float32_adapters(method, batch):
    """On a bf16 model the adapters stay float32 (as PEFT's): a bf16 gate near 1 moves in steps of 0.004, so Adam's
    updates and the proximal threshold would round away. The layer answers in the base's dtype, outside autocast."""
    model = soralab.inject(tiny_model("bert").to(torch.bfloat16),
                           CONFIGS[method](TARGETS["bert"], HEADS["bert"]))
    layers = [m for _, m in soralab.adapter_modules(model)]
    assert {p.dtype for m in layers for p in m.parameters(recurse=False)} == {torch.float32}
    assert all(m.base_layer.weight.dtype == torch.bfloat16 for m in layers)
    randomize_adapters(model)
    out = logits(model, batch)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    if method == "sora":  # the proximal step works at float32 resolution: every gate moves by lr * xi = 1e-3
        gates = [m.gate for m in layers]
        before = [g.detach().clone() for g in gates]
        opt = soralab.ProximalAdamW(soralab.param_groups(model, lr=1e-3, xi=1.0), lr=1e-3)
        for g in gates:
            g.grad = torch.zeros_like(g)  # a zero gradient: Adam does not move them, only the proximal step acts
        opt.step()
        assert all(torch.allclose(g.detach(), soralab.soft_threshold(b, 1e-3), atol=1e-7, rtol=0)
                   for b, g in zip(before, gates, strict=True))
        assert all(not torch.equal(g.detach(), b) for b, g in zip(before, gates, strict=True))
