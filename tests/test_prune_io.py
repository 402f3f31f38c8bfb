"""prune / merge / save+load / export_peft all keep outputs; pruning removes what gate_report predicted."""

import copy
import json

import pytest
import torch
from peft import PeftModel

import soralab
from soralab.experiments.models import HEADS, TARGETS, tiny_model
from soralab.experiments.train import head_parameters
from soralab.export import CONFIG_NAME


def logits(model, batch):
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


def trained_sora(arch="bert", seed=0):
    """A SoRA model with non-trivial adapters, some dead ranks and one fully dead module."""
    model = soralab.inject(tiny_model(arch), soralab.SoRAConfig(r=4, lora_alpha=8, target_modules=TARGETS[arch],
                                                                 modules_to_save=HEADS[arch]))
    g = torch.Generator().manual_seed(seed)
    layers = list(soralab.adapter_modules(model))
    with torch.no_grad():
        for i, (_, m) in enumerate(layers):
            m.lora_A.copy_(torch.randn(m.lora_A.shape, generator=g))
            m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g) * 0.1)
            m.gate.copy_(torch.randn(4, generator=g))
            m.gate[i % 4] = 0.0  # one dead rank per module...
        layers[0][1].gate.zero_()  # ...and a module with no active rank
        for p in head_parameters(model, HEADS[arch]):  # a trained head differs from a fresh model's
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model


@torch.no_grad()
def perturbed(model, std=0.3):
    """Give every adapter parameter a random non-zero value (B starts at 0, so outputs would not move)."""
    for _, m in soralab.adapter_modules(model):
        for p in m.parameters(recurse=False):
            p.normal_(0, std)
    return model


def tight(a, b):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["bert", "gpt2", "deberta-v2"])
def test_prune_keeps_outputs_and_removes_predicted_params(arch, batch):
    model = trained_sora(arch)
    before = logits(model, batch)
    report = soralab.gate_report(model)
    n_before = soralab.count_trainable(model)
    soralab.prune(model)
    tight(logits(model, batch), before)
    assert not any(isinstance(m, soralab.SoRALinear) for _, m in soralab.adapter_modules(model))
    first = report.rows[0].name
    assert not isinstance(model.get_submodule(first), soralab.AdapterLayer)  # rank 0 -> base layer
    assert report.params - report.params_after_prune == n_before - soralab.count_trainable(model)
    assert soralab.gate_report(model).params == report.params_after_prune
    assert soralab.gate_report(model).ranks() == {k: v for k, v in report.ranks().items() if v > 0}


@pytest.mark.parametrize("method", ["lora", "sora", "nola"])
def test_merge_keeps_outputs_and_restores_layer_types(method, batch):
    cls = {"lora": soralab.LoRAConfig, "sora": soralab.SoRAConfig, "nola": soralab.NOLAConfig}[method]
    for arch in ("bert", "gpt2"):
        base = tiny_model(arch)
        types = {n: type(m) for n, m in base.named_modules()}
        model = perturbed(soralab.inject(copy.deepcopy(base), cls(r=3, target_modules=TARGETS[arch])))
        out = logits(model, batch)
        soralab.merge(model)
        tight(logits(model, batch), out)
        assert {n: type(m) for n, m in model.named_modules()} == types
        assert not torch.allclose(logits(base, batch), out, atol=1e-4)


@pytest.mark.parametrize("method", ["lora", "sora", "nola", "pruned"])
def test_save_load_roundtrip(method, batch, tmp_path):
    if method in ("sora", "pruned"):
        model = trained_sora()
        if method == "pruned":
            soralab.prune(model)
    else:
        cls = soralab.LoRAConfig if method == "lora" else soralab.NOLAConfig
        model = perturbed(soralab.inject(tiny_model("bert"), cls(r=3, target_modules=TARGETS["bert"],
                                                                  modules_to_save=["classifier"])))
        with torch.no_grad():
            model.classifier.weight.normal_()
    out = logits(model, batch)
    soralab.save_adapter(model, tmp_path / "a")
    fresh = soralab.load_adapter(tiny_model("bert"), tmp_path / "a")
    tight(logits(fresh, batch), out)
    assert soralab.count_trainable(fresh) == soralab.count_trainable(model)
    # loading into a model that already has the same layout works too
    again = soralab.load_adapter(fresh, tmp_path / "a")
    tight(logits(again, batch), out)
    assert {p.name for p in (tmp_path / "a").iterdir()} == {CONFIG_NAME, "soralab_adapter.safetensors"}


def test_nola_file_holds_only_coefficients(tmp_path):
    model = soralab.inject(tiny_model("bert"), soralab.NOLAConfig(r=3, target_modules=["query"], num_basis_A=5,
                                                                   num_basis_B=6, seed=11))
    soralab.save_adapter(model, tmp_path)
    from safetensors.torch import load_file

    tensors = load_file(str(tmp_path / "soralab_adapter.safetensors"))
    assert {k.rsplit(".", 1)[1] for k in tensors} == {"coef_A", "coef_B"}
    assert sum(v.numel() for v in tensors.values()) == 2 * (5 + 6)
    meta = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert meta["config"]["seed"] == 11 and meta["config"]["method"] == "nola"


def test_load_into_mismatched_model_is_a_clear_error(tmp_path):
    model = soralab.inject(tiny_model("bert"), soralab.LoRAConfig(r=3, target_modules=["query"]))
    soralab.save_adapter(model, tmp_path / "a")
    with pytest.raises(ValueError, match="targets 'bert.encoder.layer.0.attention.self.query', which this model"):
        soralab.load_adapter(tiny_model("gpt2"), tmp_path / "a")
    other = soralab.inject(tiny_model("bert"), soralab.LoRAConfig(r=2, target_modules=["query"]))
    snapshot = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(ValueError, match="does not fit this model's adapters"):
        soralab.load_adapter(other, tmp_path / "a")
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in snapshot.items())  # nothing half-loaded
    with pytest.raises(FileNotFoundError, match="not a soralab adapter folder"):
        soralab.load_adapter(tiny_model("bert"), tmp_path / "missing")


def test_load_with_tampered_weights_changes_nothing(tmp_path):
    from safetensors.torch import load_file, save_file

    model = soralab.inject(tiny_model("bert"), soralab.LoRAConfig(r=3, target_modules=["query"]))
    soralab.save_adapter(model, tmp_path)
    tensors = load_file(str(tmp_path / "soralab_adapter.safetensors"))
    key = sorted(tensors)[0]
    tensors[key] = torch.zeros(1, 1)
    save_file(tensors, str(tmp_path / "soralab_adapter.safetensors"))
    fresh = tiny_model("bert")
    with pytest.raises(ValueError, match="wrong shape"):
        soralab.load_adapter(fresh, tmp_path)
    assert not list(soralab.adapter_modules(fresh))  # no layers installed


@pytest.mark.parametrize("arch", ["bert", "gpt2", "roberta"])
def test_export_pruned_sora_to_peft(arch, batch, tmp_path):
    model = trained_sora(arch)
    soralab.prune(model)
    out = logits(model, batch)
    soralab.export_peft(model, tmp_path)
    cfg = json.loads((tmp_path / "adapter_config.json").read_text())
    # trained_sora: one dead rank of 4 in every module, and the first module dead: rank 3 everywhere else
    assert cfg["peft_type"] == "LORA" and set(cfg["rank_pattern"].values()) == {3}
    assert len(cfg["rank_pattern"]) == len(TARGETS[arch]) * 2 - 1  # tiny models: 2 blocks
    assert soralab.gate_report(model).ranks() == cfg["rank_pattern"]
    peft_model = PeftModel.from_pretrained(tiny_model(arch), tmp_path)
    tight(logits(peft_model, batch), out)


def test_export_lora_and_nola_to_peft(batch, tmp_path):
    for i, cls in enumerate((soralab.LoRAConfig, soralab.NOLAConfig)):
        model = perturbed(soralab.inject(tiny_model("bert"), cls(r=3, target_modules=TARGETS["bert"],
                                                                  modules_to_save=["classifier"])))
        out = logits(model, batch)
        soralab.export_peft(model, tmp_path / str(i))
        tight(logits(PeftModel.from_pretrained(tiny_model("bert"), tmp_path / str(i)), batch), out)


def test_export_unpruned_sora_is_refused(tmp_path):
    with pytest.raises(ValueError, match="call soralab.prune"):
        soralab.export_peft(trained_sora(), tmp_path)
    assert not any(tmp_path.iterdir())


def test_nola_adapter_refuses_a_model_with_other_bases(tmp_path):
    def nola(seed):
        return soralab.inject(tiny_model("bert"), soralab.NOLAConfig(r=2, target_modules=["query"], seed=seed,
                                                                      num_basis_A=3, num_basis_B=3))
    soralab.save_adapter(perturbed(nola(1)), tmp_path)
    with pytest.raises(ValueError, match="NOLA bases of seed 1; this model's NOLA layers use seed 2"):
        soralab.load_adapter(nola(2), tmp_path)
    soralab.load_adapter(nola(1), tmp_path)  # same bases: fine


def test_load_into_a_model_in_eval_mode_answers_deterministically(batch, tmp_path):
    """A model from from_pretrained is in eval mode: the adapters load_adapter puts in must be too, or their dropout
    would make every answer random."""
    model = perturbed(soralab.inject(tiny_model("bert"), soralab.LoRAConfig(
        r=3, lora_dropout=0.5, target_modules=TARGETS["bert"], modules_to_save=["classifier"])))
    soralab.save_adapter(model, tmp_path / "a")
    fresh = soralab.load_adapter(tiny_model("bert").eval(), tmp_path / "a")
    assert not any(m.training for m in fresh.modules()), "every module, adapters and their dropout included, evals"
    with torch.no_grad():
        first, second = fresh(**batch).logits, fresh(**batch).logits
    assert torch.equal(first, second)
    tight(first, logits(model, batch))
    assert all(m.training for m in soralab.load_adapter(tiny_model("bert").train(), tmp_path / "a").modules())


def test_prune_and_load_leave_the_global_rng_alone(tmp_path):
    """The layers prune and load_adapter build get their weights copied in: their throwaway initialisation must not
    move the global RNG (a seeded script would draw other numbers after a prune)."""
    model = trained_sora()
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    soralab.prune(model)
    assert torch.equal(torch.rand(4), expected), "prune drew from the global RNG"
    soralab.save_adapter(model, tmp_path / "a")
    fresh = tiny_model("bert")
    torch.manual_seed(123)
    soralab.load_adapter(fresh, tmp_path / "a")
    assert torch.equal(torch.rand(4), expected), "load_adapter drew from the global RNG"


def test_merge_inside_autocast_computes_the_update_in_float32(batch):
    """A merge called inside a bf16 autocast (say, in a Trainer's evaluation) must not round B @ A to bf16."""
    model = trained_sora()
    twin = copy.deepcopy(model)
    soralab.merge(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        soralab.merge(twin)
    for (name, p), (_, q) in zip(model.named_parameters(), twin.named_parameters(), strict=True):
        assert torch.equal(p, q), name


def test_prune_keeps_a_frozen_sora_layer_frozen():
    model = trained_sora()
    for _, m in soralab.adapter_modules(model):
        for p in m.parameters(recurse=False):
            p.requires_grad_(False)
    soralab.prune(model)
    assert all(not p.requires_grad for _, m in soralab.adapter_modules(model) for p in m.parameters(recurse=False))
