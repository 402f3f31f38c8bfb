"""Twin of notebooks/03_sora_vs_lora_on_glue.ipynb: the parameter bookkeeping of the five methods, on a tiny
BERT checkpoint and a tiny SST-2 fixture (the notebook's accuracy claims need the real model and data).

Parameter counts come from ``soralab.experiments.methods.prepare`` (what ``run_glue`` calls before training); LoRA and
SoRA also go through ``run_glue``, which must report the same counts, and SoRA's pruning needs training.
"""

import copy
from collections import Counter

import pytest
from glue_fixtures import write_glue_fixture
from nb_fixtures import notebook_parameters

import soralab
from soralab.experiments.glue import load_glue
from soralab.experiments.methods import prepare
from soralab.experiments.models import HEADS, TARGETS, load_classifier, save_tiny_checkpoint
from soralab.experiments.recipes import recipe
from soralab.experiments.sparsity import total_steps, xi_for_pull
from soralab.experiments.sweep import reference_table
from soralab.experiments.train import run_glue
from soralab.teaching.plots import plot_frontier, plot_history
from soralab.teaching.profiles import profile

METHODS = ("full", "bitfit", "lora", "adalora", "sora")
R = 8


NB = notebook_parameters("03_sora_vs_lora_on_glue.ipynb")


def sizing(p, n_rows: int) -> tuple[int, int]:
    """The notebook's batch (the profile's ``batch_for``: AdaLoRA needs ten steps), then the package's step count."""
    batch_size = p.batch_for(n_rows, min_batch=NB["min_batch"], min_steps=10)
    return batch_size, total_steps(n_rows, batch_size, p.epochs)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("nb03")
    write_glue_fixture(root / "glue", "sst2", n_train=40, n_dev=8)
    return {"model": save_tiny_checkpoint(root / "bert"), "data": str(root / "glue")}


@pytest.fixture(scope="module")
def counts(tiny):
    out = {}
    for method in METHODS:
        model, _ = load_classifier(tiny["model"], num_labels=2)
        model = prepare(model, method, r=R, lora_alpha=16, lora_dropout=0.0, target_modules=TARGETS["bert"],
                        heads=HEADS["bert"], total_steps=10)
        out[method] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    base, _ = load_classifier(tiny["model"], num_labels=2)
    out["model"] = sum(p.numel() for p in base.parameters())
    return out


@pytest.fixture(scope="module")
def results(tiny):
    batch_size, steps = sizing(profile("smoke", epochs=1), 40)
    assert (batch_size, steps) == (4, 10)
    xi = xi_for_pull(2.0, steps, recipe("sst2", "sora")["learning_rate"])  # a fixed pull: some gates die in 10 steps
    return {m: run_glue("sst2", m, model_name_or_path=tiny["model"], data_dir=tiny["data"], max_seq_length=32,
                        per_device_train_batch_size=batch_size, num_train_epochs=1, r=R, seed=1, progress=False,
                        **({"xi": xi} if m == "sora" else {})) for m in ("lora", "sora")}


def test_sizing_gives_adalora_ten_steps_and_16_per_batch_in_classroom():
    smoke, classroom = profile("smoke"), profile("classroom")
    assert sizing(smoke, smoke.max_train_samples) == (6, 11)  # >= 10 for AdaLoRA
    assert sizing(classroom, min(classroom.max_train_samples, NB["max_train"])) == (16, 76)
    assert len(classroom.seeds) >= 2, "notebook 03 compares the methods on at least two seeds"
    assert recipe("sst2", "sora")["keep"] == 0.5, "SoRA's default strength, as the notebook states"


def test_full_trains_everything_and_the_others_fewer(counts):
    assert counts["full"] == counts["model"]
    assert all(counts[m] < counts["model"] for m in METHODS if m != "full")


def test_bitfit_trains_far_fewer_than_lora(counts):
    assert 2 * counts["bitfit"] < counts["lora"]  # as in the notebook; the head (pooler + classifier) trains in both


def test_run_glue_reports_the_prepared_counts(counts, results):
    assert {m: r.trainable_params for m, r in results.items()} == {m: counts[m] for m in results}
    assert results["lora"].params_after_prune == results["lora"].trainable_params


def test_sora_is_lora_plus_gates_and_pruning_only_removes(results):
    lora, sora = results["lora"], results["sora"]
    report = soralab.gate_report(sora.model)
    assert len(report.rows) == 2 * 6  # 2 blocks x six linear layers
    assert sora.trainable_params - lora.trainable_params == R * len(report.rows)
    assert sora.params_after_prune <= sora.trainable_params
    assert sora.params_after_prune < sora.trainable_params  # a pull of 2 over 10 steps kills some gates
    assert soralab.count_trainable(soralab.prune(copy.deepcopy(sora.model))) == sora.params_after_prune  # counted
    assert sora.params_after_prune < lora.trainable_params  # the gates go too: LoRA minus the dead ranks


def test_history_frontier_and_references(results):
    key = "eval_validation_accuracy"
    for res in results.values():
        assert 0.0 <= res.score <= 100.0 and key in res.final and res.wall_time_s > 0
    fig = plot_history(results, key, baseline=50.0)
    assert len(fig.axes[0].lines) == len(results) + 1  # one per method and the majority-class line
    assert fig.axes[0].lines[0].get_ydata()[-1] == pytest.approx(100 * results["lora"].history[-1][key])  # x100
    fig = plot_frontier([(m, r.params_after_prune, r.score) for m, r in results.items()] * 2)  # two "seeds"
    assert len(fig.axes[0].collections) == 2 * len(results) and len(fig.axes[0].texts) == len(results)
    table = reference_table(["sst2"])
    assert "DeBERTaV3-base" in table and "95.63" in table and "| sst2 |" in table


def test_majority_baseline_scores_the_training_majority_on_dev(results):
    """The notebook prints each run beside res.baseline: the most frequent *training* label, scored on dev (counted
    here from the fixture's files, not by soralab's metrics)."""
    data = load_glue("sst2", results["lora"].config["data_dir"], max_train_samples=results["lora"].config[
        "max_train_samples"], max_eval_samples=results["lora"].config["max_eval_samples"],
        seed=results["lora"].config["seed"])
    train, dev = Counter(data["train"]["label"]), data["validation"]["label"]
    most = min(k for k, n in train.items() if n == max(train.values()))  # ties: the smaller label
    assert results["lora"].baseline == pytest.approx(100 * dev.count(most) / len(dev))
