"""Twin of notebooks/01_lora_from_scratch.ipynb: the same claims on a tiny BERT and the planted task."""

import copy

import pytest
import torch
from torch import nn

import soralab
from soralab.experiments.models import TARGETS, tiny_model
from soralab.teaching.planted import fit_planted


@pytest.mark.parametrize("d_in, d_out", [(384, 384), (384, 1536)])
@pytest.mark.parametrize("r", [1, 8, 64])
def test_lora_layer_trains_r_times_in_plus_out(d_in, d_out, r):
    layer = soralab.LoRALinear(nn.Linear(d_in, d_out), r=r, lora_alpha=16)
    assert layer.lora_A.shape == (r, d_in) and layer.lora_B.shape == (d_out, r)
    assert soralab.count_trainable(layer) == r * (d_in + d_out) < d_in * d_out
    assert torch.count_nonzero(layer.lora_B) == 0 and torch.count_nonzero(layer.lora_A) > 0


def test_minilm_shaped_model_with_all_six_targets_has_331776_lora_params():
    """The notebook's whole-MiniLM count, on a model of MiniLM's shape built on the meta device (no weights)."""
    from transformers import AutoConfig, BertForSequenceClassification

    from soralab.experiments.models import minilm_path

    with torch.device("meta"):
        model = BertForSequenceClassification(AutoConfig.from_pretrained(minilm_path(), num_labels=2))
    model = soralab.inject(model, soralab.LoRAConfig(r=8, lora_alpha=16, target_modules=TARGETS["bert"]))
    layers = dict(soralab.adapter_modules(model))
    assert len(layers) == 36
    assert soralab.count_trainable(model) == 6 * (4 * 8 * 768 + 2 * 8 * 1920) == 331_776
    assert sum(m.base_layer.weight.numel() for m in layers.values()) == 10_616_832


@pytest.fixture
def tiny_pair():
    base = tiny_model("bert").eval()
    model = soralab.inject(copy.deepcopy(base), soralab.LoRAConfig(r=4, lora_alpha=16, target_modules=TARGETS["bert"]))
    return base, model.eval()


def test_b_at_zero_gives_identical_output_and_only_b_gets_gradient(tiny_pair, batch):
    base, model = tiny_pair
    with torch.no_grad():
        ref = base(**batch).logits
    out = model(**batch).logits
    assert torch.equal(out, ref)
    out.sum().backward()
    layers = [m for _, m in soralab.adapter_modules(model)]
    assert all(torch.count_nonzero(m.lora_A.grad) == 0 for m in layers)
    assert sum(torch.count_nonzero(m.lora_B.grad) for m in layers) > 0


@pytest.mark.parametrize("r", [1, 4, 8, 16, 64])
def test_scaling_is_alpha_over_r(r):
    assert soralab.LoRALinear(nn.Linear(8, 8), r=r, lora_alpha=16).scaling == 16 / r


def test_merge_keeps_outputs_and_restores_linear_layers(tiny_pair, batch):
    base, model = tiny_pair
    names = [n for n, _ in soralab.adapter_modules(model)]
    assert all(m.scaling == 4 for _, m in soralab.adapter_modules(model))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, m in soralab.adapter_modules(model):
            m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=gen) * 0.1)
        ref = base(**batch).logits
        unmerged = model(**batch).logits
        soralab.merge(model)
        merged = model(**batch).logits
    assert (unmerged - ref).abs().max() > 1e-3
    assert torch.allclose(merged, unmerged, atol=1e-5, rtol=1e-4)
    assert not any(True for _ in soralab.adapter_modules(model))
    assert all(type(model.get_submodule(n)) is nn.Linear for n in names)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in base.parameters())


@pytest.fixture(scope="module")
def rank_sweep():
    """LoRA of rank 1..8 on a planted rank-3 update: the smoke profile's 150 steps."""
    return {r: fit_planted(soralab.LoRAConfig(r=r, lora_alpha=8, target_modules=["0"]), steps=150, lr=1e-2)
            for r in (1, 2, 3, 4, 8)}


def test_lora_reaches_zero_error_iff_rank_reaches_the_true_rank(rank_sweep):
    for r, fit in rank_sweep.items():
        if r >= 3:
            assert fit.relative_mse < 1e-3, (r, fit.relative_mse)
        else:
            assert fit.relative_mse > 0.25, (r, fit.relative_mse)
            # below the true rank: the best rank-r approximation leaves (3 - r) / 3 of the update
            assert abs(fit.relative_mse - (3 - r) / 3) < 0.1, (r, fit.relative_mse)


@pytest.mark.parametrize("gate", [False, True])
def test_lora_diagram_names_every_part_and_the_gate_only_for_sora(gate):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from soralab.teaching.plots import plot_lora_diagram

    fig = plot_lora_diagram(gate=gate)
    ax = fig.axes[0]
    texts = {t.get_text() for t in ax.texts}
    assert {"x", "h", "W0", "A", "B", "r × in", "out × r"} <= texts, texts
    assert ("g" in texts) is gate
    assert ("g ⊙ A x" in ax.get_title()) is gate and "s" in ax.get_title()
    assert len(ax.patches) == (3 if gate else 2) + 2  # W0, A, (g,) B and the "+" node
    plt.close(fig)
