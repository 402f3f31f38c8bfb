"""Twin of notebooks/00_quickstart.ipynb on a tiny checkpoint: run_glue trains SoRA clearly above chance and
kills gates -> gate_report agrees with run_glue -> prune keeps the logits and removes exactly what the report
predicted -> export_peft + PeftModel.from_pretrained on a fresh base gives identical logits -> the files hold
exactly the counted values, 4 bytes each, and the pruned adapter is smaller than the unpruned one.

The data is a small keyword-sentiment file in the SST-2 layout (tests/keyword_fixture.py): a random-label
fixture cannot show learning.
"""

import copy
import json

import pytest
import torch
from keyword_fixture import write_keyword_sst2
from peft import PeftModel

import soralab
from soralab.experiments.costs import file_cost
from soralab.experiments.models import load_classifier, save_tiny_checkpoint
from soralab.experiments.train import run_glue

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads only add contention


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("nb00")
    sentences = [s for s, _ in write_keyword_sst2(root / "glue")["validation"][:16]]
    ckpt = save_tiny_checkpoint(root / "bert")
    res = run_glue("sst2", "sora", model_name_or_path=ckpt, data_dir=str(root / "glue"), num_train_epochs=4,
                   learning_rate=1e-2, xi=1.0, max_seq_length=32, per_device_train_batch_size=8,
                   per_device_eval_batch_size=32, progress=False,
                   model_dropout=None)  # the tiny model's 0.1: whether this run learns turns on the seed's draws
    _, tokenizer = load_classifier(ckpt)
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    return {"res": res, "ckpt": ckpt, "batch": batch, "out": root / "out"}


def test_sora_learns_and_kills_gates(trained):
    res = trained["res"]
    assert 0.0 <= res.best["eval_validation_accuracy"] <= 1.0
    assert res.score / 100 > 0.7, res.history  # a random-label or untrained model sits near 0.5
    report = soralab.gate_report(res.model)
    assert 0 < report.active_rank < report.r_max, report  # gates died, the model is not empty
    model = copy.deepcopy(res.model).eval()
    with torch.no_grad():
        trained_logits = model(**trained["batch"]).logits
        for _, m in soralab.adapter_modules(model):
            m.lora_B.zero_()
        without = model(**trained["batch"]).logits
    # the identity checks below use atol=1e-5; the adapters move the logits far more than that
    assert (without - trained_logits).abs().max() > 1e-2


def test_the_model_is_the_final_evaluation_and_beats_its_majority_baseline(trained):
    """The notebook reads one checkpoint: res.model is the model the last evaluation scored (its live ranks are the
    ones logged there), and check_learned's claim holds: the score (x100) clears the majority class by 10 points."""
    res = trained["res"]
    report = soralab.gate_report(res.model)
    assert res.final["step"] == max(h["step"] for h in res.history)
    assert res.final["active_rank"] == report.active_rank
    assert res.final["adapter_params_after_prune"] == report.params_after_prune
    assert res.baseline is not None and 0 <= res.baseline <= 100
    assert res.above_baseline(10), (res.score, res.baseline)
    assert 0 <= 100 * res.final["eval_validation_accuracy"] <= 100


def test_gate_report_agrees_with_run_glue(trained):
    res, r_max = trained["res"], 8
    model = res.model
    report = soralab.gate_report(model)
    assert len(report.rows) == 6 * model.config.num_hidden_layers
    assert report.r_max == r_max * len(report.rows)
    layers = [m for _, m in soralab.adapter_modules(model)]
    assert report.params == sum(r_max * (m.in_features + m.out_features + 1) for m in layers)
    assert report.params_after_prune == sum(m.active_rank() * (m.in_features + m.out_features) for m in layers)
    assert res.params_after_prune == res.trainable_params - report.params + report.params_after_prune
    assert res.active_ranks == report.ranks()
    assert "| **total** |" in report.to_markdown()


def test_prune_export_reload_and_file_sizes(trained):
    res, batch, out = trained["res"], trained["batch"], trained["out"]
    model = copy.deepcopy(res.model).eval()
    report = soralab.gate_report(model)

    unpruned_dir = soralab.save_adapter(model, out / "sora_unpruned")
    n_before = soralab.count_trainable(model)
    with torch.no_grad():
        before = model(**batch).logits
    soralab.prune(model)
    with torch.no_grad():
        after = model(**batch).logits
    n_after = soralab.count_trainable(model)
    assert torch.allclose(after, before, atol=1e-5)
    assert not list(soralab.adapter_modules(model, soralab.SoRALinear))
    assert n_before - n_after == report.params - report.params_after_prune
    assert n_after == res.params_after_prune
    assert n_after < n_before - report.r_max  # dead ranks removed, not only the gates

    peft_dir = soralab.export_peft(model, out / "peft_adapter")
    pruned_dir = soralab.save_adapter(model, out / "sora_pruned")
    peft_config = json.loads((peft_dir / "adapter_config.json").read_text())
    assert peft_config["peft_type"] == "LORA"
    assert peft_config["rank_pattern"] == soralab.gate_report(model).ranks()
    fresh, _ = load_classifier(trained["ckpt"])
    reloaded = PeftModel.from_pretrained(fresh, peft_dir).eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(**batch).logits, after, atol=1e-5)

    unpruned = file_cost(unpruned_dir / "soralab_adapter.safetensors")
    pruned = file_cost(pruned_dir / "soralab_adapter.safetensors")
    peft = file_cost(peft_dir / "adapter_model.safetensors")
    assert unpruned.values == res.trainable_params
    assert pruned.values == peft.values == n_after
    for c in (unpruned, pruned, peft):
        assert c.payload_bytes == 4 * c.values
    assert peft.bytes < unpruned.bytes
