"""Twin of notebooks/07_nola_and_the_parameter_frontier.ipynb on tiny models: NOLA is a seeded combination of
frozen bases, a saved NOLA adapter holds only its coefficients, and stored-parameter counts are exact."""

import dataclasses

import pytest
import torch
import transformers
from glue_fixtures import TINY_BERT_IN_PLUS_OUT, write_glue_fixture

import soralab
from soralab.experiments.costs import count_stored, saved_tensors, stored_params
from soralab.experiments.models import HEADS, TARGETS, save_tiny_checkpoint, tiny_model
from soralab.experiments.train import head_parameters, run_glue

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads only add contention

N_MODULES = 12  # tiny bert: 2 blocks x 6 linear layers
IN_PLUS_OUT = TINY_BERT_IN_PLUS_OUT
FAST = dict(max_seq_length=32, per_device_train_batch_size=8, per_device_eval_batch_size=16, num_train_epochs=1,
            seed=0, progress=False)


def nola_model(k=5, seed=3, arch_model=None):
    config = soralab.NOLAConfig(r=4, lora_alpha=8, num_basis_A=k, num_basis_B=k, seed=seed,
                                target_modules=TARGETS["bert"])
    return soralab.inject(arch_model if arch_model is not None else tiny_model("bert"), config), config


def test_nola_is_a_seeded_combination_of_frozen_bases():
    model, config = nola_model(k=5)
    layers = dict(soralab.adapter_modules(model))
    layer = next(iter(layers.values()))
    manual_A = sum(layer.coef_A[i] * layer.basis_A[i] for i in range(5))
    assert torch.allclose(layer.lora_A, manual_A, atol=1e-6)
    assert soralab.count_trainable(model) == N_MODULES * 2 * 5  # only the coefficients train
    assert not torch.any(layer.coef_B)
    same = dict(soralab.adapter_modules(soralab.inject(tiny_model("bert"), config)))
    other = dict(soralab.adapter_modules(soralab.inject(tiny_model("bert"), dataclasses.replace(config, seed=4))))
    assert all(torch.equal(layers[n].basis_A, same[n].basis_A) and torch.equal(layers[n].basis_B, same[n].basis_B)
               for n in layers)
    assert not any(torch.equal(layers[n].basis_A, other[n].basis_A) for n in layers)
    assert not torch.equal(layer.basis_A, layers[list(layers)[1]].basis_A)


def test_saved_nola_holds_only_coefficients_and_rebuilds_every_update(tmp_path):
    model, _ = nola_model(k=6)
    torch.manual_seed(0)
    with torch.no_grad():
        for _, m in soralab.adapter_modules(model):
            m.coef_B.normal_(std=0.1)
    folder = soralab.save_adapter(model, tmp_path / "nola")
    tensors = saved_tensors(folder)
    assert {t.rsplit(".", 1)[1] for t in tensors} == {"coef_A", "coef_B"}
    assert len(tensors) == 2 * N_MODULES and all(shape == (6,) for shape in tensors.values())
    assert stored_params(folder) == N_MODULES * (6 + 6) == count_stored(model)
    reloaded = dict(soralab.adapter_modules(soralab.load_adapter(tiny_model("bert"), folder)))
    assert all(torch.equal(m.delta_weight(), reloaded[n].delta_weight()) for n, m in soralab.adapter_modules(model))


def test_nola_64_is_cheaper_than_lora_rank_1_on_minilm_widths_only():
    """The notebook's claim on MiniLM's layer shapes (hidden 384, FFN 1536); on a width-32 model it reverses."""
    cfg = transformers.BertConfig(vocab_size=99, hidden_size=384, num_hidden_layers=1, num_attention_heads=6,
                                  intermediate_size=1536)
    lora_r1 = count_stored(soralab.inject(transformers.BertForSequenceClassification(cfg),
                                          soralab.LoRAConfig(r=1, target_modules=TARGETS["bert"])))
    nola64 = count_stored(nola_model(k=64, arch_model=transformers.BertForSequenceClassification(cfg))[0])
    assert lora_r1 == 4 * 768 + 2 * 1920 and nola64 == 6 * 128
    assert nola64 < lora_r1
    tiny_lora_r1 = count_stored(soralab.inject(tiny_model("bert"),
                                               soralab.LoRAConfig(r=1, target_modules=TARGETS["bert"])))
    assert tiny_lora_r1 == IN_PLUS_OUT and count_stored(nola_model(k=64)[0]) > tiny_lora_r1  # 128 > in + out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny07")
    write_glue_fixture(root / "glue", "sst2", n_train=32, n_dev=8)
    return dict(model_name_or_path=save_tiny_checkpoint(root / "bert"), data_dir=str(root / "glue"))


def test_frontier_runs_store_exactly_what_the_formulas_say(tiny, tmp_path):
    settings = {"nola-4": dict(method="nola", num_basis=4), "lora-r1": dict(method="lora", r=1, lora_alpha=2),
                "sora-r8": dict(method="sora", r=8, lora_alpha=16, xi=200.0)}
    results = {n: run_glue("sst2", **kw, **tiny, **FAST) for n, kw in settings.items()}
    report = soralab.gate_report(results["sora-r8"].model)
    soralab.prune(results["sora-r8"].model)
    stored, with_head = {}, {}
    for n, res in results.items():
        folder = soralab.save_adapter(res.model, tmp_path / n)
        stored[n], with_head[n] = stored_params(folder), stored_params(folder, head=True)
        assert stored[n] == count_stored(res.model)
    head = sum(p.numel() for p in head_parameters(results["nola-4"].model, HEADS["bert"]))
    assert stored == {"nola-4": N_MODULES * 8, "lora-r1": IN_PLUS_OUT, "sora-r8": report.params_after_prune}
    assert report.params_after_prune < 8 * IN_PLUS_OUT  # below LoRA r=8: xi=200 gives threshold 1 per step
    assert all(with_head[n] - stored[n] == head for n in results)
    assert all(with_head[n] == results[n].params_after_prune for n in results)
