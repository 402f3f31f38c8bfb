"""run_glue on the stock Trainer: every method, result JSON, reuse, errors, AdaLoRA allocation, CLI."""

import json
import os

import pytest
import torch
from glue_fixtures import TINY_BERT_IN_PLUS_OUT, write_glue_fixture

import soralab
from soralab.cli import main as cli_main
from soralab.experiments.glue import load_glue
from soralab.experiments.metrics import majority_baseline
from soralab.experiments.models import save_tiny_checkpoint
from soralab.experiments.train import RESULT_NAME, GlueResult, run_glue

FAST = dict(max_seq_length=32, per_device_train_batch_size=8, per_device_eval_batch_size=16, progress=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    data = root / "glue"
    for task in ("sst2", "stsb", "rte"):
        write_glue_fixture(data, task, n_train=48, n_dev=16)
    return {"model": save_tiny_checkpoint(root / "bert"), "data": str(data),
            "gpt2": save_tiny_checkpoint(root / "gpt2", arch="gpt2")}


def test_a_model_trained_in_bf16_answers_in_fp32_afterwards(tiny):
    """The Trainer's bf16 autocast (accelerate wraps the model's forward) ends with training: afterwards the model's
    call is its own fp32 forward, so pruning and merging stay exact to float error on a CPU with AMX or a GPU."""
    res = run_glue("sst2", "lora", model_name_or_path=tiny["model"], data_dir=tiny["data"], num_train_epochs=1,
                   precision="bf16", **FAST)
    model = res.model.eval()
    ids = torch.randint(5, 100, (4, 12))
    with torch.no_grad():
        called, own = model(input_ids=ids).logits, type(model).forward(model, input_ids=ids).logits
    assert torch.equal(called, own)  # under autocast the call would round through bf16


@pytest.mark.parametrize("method", ["full", "bitfit", "lora", "peft-lora", "adalora", "sora", "nola"])
def test_every_method_trains_and_reports(method, tiny, tmp_path):
    strength = {"xi": 300.0} if method == "sora" else {}  # a constant xi, not the recipe's keep
    res = run_glue("sst2", method, model_name_or_path=tiny["model"], data_dir=tiny["data"], num_train_epochs=2,
                   output_dir=tmp_path, **strength, **FAST)
    assert len(res.history) == 2 and res.history[-1]["epoch"] == pytest.approx(2.0)
    assert 0.0 <= res.best["eval_validation_accuracy"] <= 1.0
    assert res.trainable_params > 0 and res.params_after_prune <= res.trainable_params
    saved = json.loads((tmp_path / RESULT_NAME).read_text())
    assert saved["config"]["method"] == method and saved["history"] == res.history
    data = load_glue("sst2", tiny["data"])
    train, dev = list(data["train"]["label"]), list(data["validation"]["label"])
    most = max(set(train), key=lambda c: (train.count(c), -c))  # np.unique's argmax: ties go to the smaller label
    assert saved["baseline"] == res.baseline == pytest.approx(100 * dev.count(most) / len(dev))
    if method in ("lora", "peft-lora", "sora", "nola", "adalora"):
        assert len(res.active_ranks) == 12  # 2 blocks x 6 linear layers
    if method == "sora":  # 12 steps: the lr summed over the schedule is about 6 lr, times 300 pulls a gate by > 1
        assert res.params_after_prune < res.trainable_params
        assert "active_rank" in res.history[-1] and sum(res.active_ranks.values()) < 12 * 8
    if method == "adalora":  # update_and_allocate ran: ranks were reallocated from init_r = 12
        assert set(res.active_ranks.values()) != {12}
        # after cutting: the head as it trains, and each module as a plain LoRA at its final rank (E folded into B);
        # at init each module trains 12 * (in + out + 1): A, B and the vector E
        base = res.model.get_base_model()
        shapes = {n: base.get_submodule(n).base_layer.weight.shape for n in res.active_ranks}  # (out, in)
        head = res.trainable_params - sum(12 * (o + i + 1) for o, i in shapes.values())
        assert res.params_after_prune == head + sum(r * sum(shapes[n]) for n, r in res.active_ranks.items())
        assert saved["params_after_prune"] == res.params_after_prune < res.trainable_params
    if method in ("full", "bitfit", "lora", "peft-lora", "nola"):  # nothing to cut
        assert res.params_after_prune == res.trainable_params


def test_regression_task_and_paper_protocol(tiny):
    res = run_glue("stsb", "lora", model_name_or_path=tiny["model"], data_dir=tiny["data"], num_train_epochs=1,
                   split_protocol="paper", **FAST)
    assert {"eval_validation_pearson", "eval_test_pearson", "eval_test_spearmanr"} <= set(res.best)
    assert res.main_metric == "pearson"
    assert res.baseline == 0.0, "a constant prediction has no Pearson correlation: 0"


@pytest.mark.parametrize("protocol, reported", [("glue", "validation_matched"), ("paper", "test_matched")])
def test_mnli_reports_its_matched_dev_set(protocol, reported, tiny, tmp_path):
    """MNLI has no split called validation or test: its score and baseline read the matched dev set (the paper
    protocol's test_matched; under "glue", validation_matched), and the result reads back."""
    # the paper protocol holds out 1,000 training rows (and evaluates them: max_eval_samples keeps that short)
    write_glue_fixture(tmp_path, "mnli", n_train=1004 if protocol == "paper" else 48, n_dev=16)
    res = run_glue("mnli", "lora", model_name_or_path=tiny["model"], data_dir=str(tmp_path), num_train_epochs=1,
                   split_protocol=protocol, max_eval_samples=16, output_dir=tmp_path / "run", **FAST)
    assert res.score == 100 * res.best[f"eval_{reported}_accuracy"]
    assert f"eval_{reported.replace('matched', 'mismatched')}_accuracy" in res.best
    data = load_glue("mnli", tmp_path, split_protocol=protocol, seed=res.config["seed"])
    assert res.baseline == 100 * majority_baseline("mnli", data["train"]["label"], data[reported]["label"])
    assert GlueResult.from_json(tmp_path / "run" / RESULT_NAME).score == res.score


def test_setup_sorts_eval_splits_longest_first_and_keeps_every_example(tiny):
    from soralab.experiments.train import GlueConfig, setup

    p = setup(GlueConfig(task="rte", method="lora", model_name_or_path=tiny["model"], data_dir=tiny["data"]))
    lengths = [len(ids) for ids in p.data["validation"]["input_ids"]]
    assert lengths == sorted(lengths, reverse=True) and len(set(lengths)) > 1
    glue = soralab.experiments.glue
    unsorted = glue.tokenize(glue.load_glue("rte", tiny["data"]), p.tokenizer, "rte")["validation"]
    pairs = [sorted(zip(ds["label"], map(tuple, ds["input_ids"]), strict=True))
             for ds in (p.data["validation"], unsorted)]
    assert pairs[0] == pairs[1], "the same examples, each with its own label"


def test_authors_options_reach_the_trainer_and_optimizer(tiny):
    from soralab.experiments.train import GlueConfig, make_trainer, setup

    config = GlueConfig(task="rte", method="sora", model_name_or_path=tiny["model"], data_dir=tiny["data"],
                        max_grad_norm=0.1, gate_l1_loss=10.0, prox="official", xi=3e-4)
    trainer = make_trainer(setup(config), xi=config.xi, epochs=1, output_dir=None, progress=False)
    gates = [g for g in trainer.optimizer.param_groups if g["name"] == "gates"]
    assert trainer.args.max_grad_norm == 0.1 and trainer.optimizer.prox == "official"
    assert len(gates) == 1 and gates[0]["l1_loss"] == 10.0 and gates[0]["xi"] == 3e-4


def test_gpt2_checkpoint(tiny):
    res = run_glue("rte", "sora", model_name_or_path=tiny["gpt2"], data_dir=tiny["data"], num_train_epochs=1, **FAST)
    assert len(res.active_ranks) == 2 * 4


def test_rerun_reuses_and_other_config_is_refused(tiny, tmp_path, monkeypatch):
    kw = dict(model_name_or_path=tiny["model"], data_dir=tiny["data"], num_train_epochs=1, output_dir=tmp_path, **FAST)
    first = run_glue("sst2", "lora", **kw)
    before = (tmp_path / RESULT_NAME).read_text()

    def no_training(*a, **k):
        raise AssertionError("should have reused the saved result")

    monkeypatch.setattr("transformers.Trainer.train", no_training)
    again = run_glue("sst2", "lora", **kw)
    assert again.reused and again.history == first.history
    with pytest.raises(ValueError, match=r"holds a result from a different configuration.*'r': \(8, 4\)"):
        run_glue("sst2", "lora", r=4, **kw)
    assert (tmp_path / RESULT_NAME).read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # a result saved before an option existed ran with that option's default, so it is still reused
    saved = json.loads(before)
    del saved["config"]["evals_per_epoch"]
    (tmp_path / RESULT_NAME).write_text(json.dumps(saved))
    assert run_glue("sst2", "lora", **kw).reused
    with pytest.raises(ValueError, match=r"different configuration.*'evals_per_epoch': \(1, 2\)"):
        run_glue("sst2", "lora", evals_per_epoch=2, **kw)


def test_the_final_model_is_evaluated_once(tiny, monkeypatch):
    """transformers 5 evaluates the last step itself when it is off the evaluation grid; run_glue evaluates it only
    if nothing did (it used to evaluate it a second time: one more pass over every eval split, counted as time)."""
    from transformers import Trainer

    calls = []
    evaluate = Trainer.evaluate
    def counted(self, eval_dataset=None, *a, **k):  # the Trainer's outer call; it calls evaluate once per split
        if eval_dataset is None:
            calls.append(self.state.global_step)
        return evaluate(self, eval_dataset, *a, **k)

    monkeypatch.setattr(Trainer, "evaluate", counted)
    res = run_glue("sst2", "lora", model_name_or_path=tiny["model"], data_dir=tiny["data"], num_train_epochs=1.5,
                   **FAST)  # 48 rows at batch 8: 6 steps an epoch, 9 in all, evaluated at 6 and at the end
    assert calls == [6, 9] and [row["step"] for row in res.history] == [6, 9]


def test_a_result_of_another_global_batch_is_refused(tiny, tmp_path):
    kw = dict(model_name_or_path=tiny["model"], data_dir=tiny["data"], num_train_epochs=1, output_dir=tmp_path, **FAST)
    run_glue("sst2", "lora", **kw)
    saved = json.loads((tmp_path / RESULT_NAME).read_text())
    assert saved["environment"]["replicas"] == "1"
    saved["environment"]["replicas"] = "4"  # as torchrun --nproc_per_node=4 would have saved it
    (tmp_path / RESULT_NAME).write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="4 batch\\(es\\) per optimiser step .* this run takes 1"):
        run_glue("sst2", "lora", **kw)


def test_result_of_another_devices_auto_precision_is_reused_unless_precision_is_given(tiny, tmp_path, monkeypatch):
    kw = dict(model_name_or_path=tiny["model"], data_dir=tiny["data"], num_train_epochs=1, output_dir=tmp_path,
              device="cpu", **FAST)
    monkeypatch.setattr("soralab.experiments.hardware.cpu_bf16_is_fast", lambda: False)  # auto -> fp32 here
    first = run_glue("sst2", "lora", **kw)
    assert first.config["precision"] == "fp32"
    saved = json.loads((tmp_path / RESULT_NAME).read_text())  # as a GPU would have written it with precision auto
    saved["config"]["precision"] = "bf16"
    saved["environment"]["device"] = "NVIDIA H200"
    (tmp_path / RESULT_NAME).write_text(json.dumps(saved))

    def no_training(*a, **k):
        raise AssertionError("should have reused the saved result")

    monkeypatch.setattr("transformers.Trainer.train", no_training)
    with pytest.warns(UserWarning, match=r"ran in bf16 on NVIDIA H200; precision='auto' would choose fp32 here: "
                                         r"reusing it"):
        again = run_glue("sst2", "lora", **kw)
    assert again.reused and again.history == first.history
    with pytest.raises(ValueError, match=r"different configuration.*'precision': \('bf16', 'fp32'\)"):
        run_glue("sst2", "lora", precision="fp32", **kw)


def test_result_holds_the_model_as_trained_and_saving_does_not_prune_it(tiny, tmp_path, monkeypatch):
    kw = dict(model_name_or_path=tiny["model"], data_dir=tiny["data"], num_train_epochs=1, output_dir=tmp_path,
              save_model=True, xi=300.0, **FAST)
    res = run_glue("sst2", "sora", **kw)
    assert res.params_after_prune < res.trainable_params  # some ranks died, and the saved adapter was pruned...
    assert len(list(soralab.adapter_modules(res.model, soralab.SoRALinear))) == 12  # ...but not result.model
    saved = json.loads((tmp_path / RESULT_NAME).read_text())
    assert "model" not in saved and "reused" not in saved and saved["environment"]["soralab"] == soralab.__version__
    saved["environment"]["soralab"] = "0.0.1"
    (tmp_path / RESULT_NAME).write_text(json.dumps(saved))
    monkeypatch.setattr("transformers.Trainer.train", lambda *a, **k: pytest.fail("retrained"))
    with pytest.warns(UserWarning, match=r"made by soralab 0\.0\.1, this is"):
        again = run_glue("sst2", "sora", **kw)
    assert again.reused and again.model is None and again.history == res.history


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(task="glue9"), ValueError, "unknown GLUE task"),
    (dict(method="qlora"), ValueError, "unknown method 'qlora'; choose one of full, bitfit"),
    (dict(split_protocol="random"), ValueError, "split_protocol must be one of"),
    (dict(xi=-1.0), ValueError, "xi must be >= 0"),
    (dict(gate_l1_loss=-0.1), ValueError, "gate_l1_loss must be >= 0"),
    (dict(data_dir="/nonexistent/glue"), FileNotFoundError, "/nonexistent/glue"),
])
def test_bad_inputs(kwargs, error, match, tiny):
    args = dict(task="sst2", method="lora", model_name_or_path=tiny["model"], data_dir=tiny["data"], **FAST)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        run_glue(**args)


def test_cli_glue_prints_the_table(tiny, tmp_path, capsys):
    code = cli_main(["glue", "--task", "sst2", "--method", "sora", "--model-name-or-path", tiny["model"],
                     "--data-dir", tiny["data"], "--num-train-epochs", "1", "--max-seq-length", "32",
                     "--per-device-train-batch-size", "8", "--output-dir", str(tmp_path), "--no-progress",
                     "--model-dropout", "none"])
    out = capsys.readouterr().out
    assert code == 0 and "sst2 / sora" in out and "| 6 | 1.00 |" in out and "after pruning" in out
    assert "from the recipe: " in out, "which values came from the recipe is printed, progress bars or not"
    saved = GlueResult.from_json(tmp_path / RESULT_NAME)
    assert saved.config["method"] == "sora" and saved.config["model_dropout"] is None  # none: the checkpoint's
    assert sorted(p.name for p in tmp_path.iterdir()) == [RESULT_NAME], "no empty trainer/ folder left behind"


def test_a_saved_result_of_other_data_is_refused_and_the_same_files_elsewhere_reused(tiny, tmp_path, monkeypatch):
    """The data's folder may come from $SORALAB_GLUE_DIR, which the config does not hold: a result records a hash of
    the task's files and is reused only for the same files (a copy elsewhere is the same data)."""
    import shutil

    kw = dict(model_name_or_path=tiny["model"], num_train_epochs=1, output_dir=tmp_path / "run", **FAST)
    monkeypatch.setenv("SORALAB_GLUE_DIR", tiny["data"])
    first = run_glue("sst2", "lora", **kw)
    assert first.environment["data"].startswith("local:")
    copy = shutil.copytree(tiny["data"], tmp_path / "copy")
    monkeypatch.setenv("SORALAB_GLUE_DIR", str(copy))
    assert run_glue("sst2", "lora", **kw).reused
    write_glue_fixture(tmp_path / "other", "sst2", n_train=48, n_dev=16, seed=5)
    monkeypatch.setenv("SORALAB_GLUE_DIR", str(tmp_path / "other"))
    with pytest.raises(ValueError, match=r"holds a result trained on other data \(saved: local:\w+, now: local:"):
        run_glue("sst2", "lora", **kw)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("SORALAB_GLUE_DIR"), reason="set SORALAB_GLUE_DIR to the real GLUE folder")
def test_real_sst2_on_packaged_minilm_beats_chance():
    """A few hundred real SST-2 examples on the real MiniLM: dev accuracy clearly above the 51% majority."""
    res = run_glue("sst2", "sora", max_train_samples=400, max_eval_samples=200, num_train_epochs=2,
                   per_device_train_batch_size=16, progress=False)
    assert res.best["eval_validation_accuracy"] > 0.70, res.history
    assert soralab.gate_report(res.model).active_rank > 0


def test_sparsifying_scheduler_records_every_stage(tiny, tmp_path):
    from soralab.experiments.scheduler import SPARSIFY_NAME, sparsify

    res = sparsify("sst2", xi_start=5.0, xi_end=200.0, n_stages=3, schedule="exp_linear", epochs_per_stage=1,
                   model_name_or_path=tiny["model"], data_dir=tiny["data"], num_train_epochs=1,
                   memorization_samples=20, output_dir=tmp_path, **FAST)
    assert [s.xi for s in res.stages] == pytest.approx([0.0, 5.0, 5.0 * 40**0.5, 200.0])
    params = [s.nonzero_params for s in res.stages]
    dense = 8 * TINY_BERT_IN_PLUS_OUT  # r_max 8, all ranks alive
    assert params[0] == dense and params == sorted(params, reverse=True) and params[-1] < params[0]
    assert res.stages[0].memorization_rel == 100.0
    for s in res.stages[1:]:
        assert s.memorization_rel == pytest.approx(100 * s.memorization / res.stages[0].memorization)
    saved = json.loads((tmp_path / SPARSIFY_NAME).read_text())
    assert len(saved["stages"]) == 4 and "| 3 | 200 |" in res.table()


def test_sparsifying_scheduler_on_mnli_reads_its_matched_dev_set(tiny, tmp_path):
    """MNLI has no split called validation: generalization is scored on validation_matched (it raised KeyError)."""
    from soralab.experiments.scheduler import sparsify

    write_glue_fixture(tmp_path, "mnli", n_train=48, n_dev=16)
    res = sparsify("mnli", xi_start=5.0, xi_end=5.0, n_stages=1, epochs_per_stage=1, model_name_or_path=tiny["model"],
                   data_dir=str(tmp_path), num_train_epochs=1, memorization_samples=16, **FAST)
    assert len(res.stages) == 2 and 0.0 <= res.stages[0].generalization <= 1.0


def test_sweep_is_resumable_and_report_aggregates(tiny, tmp_path, monkeypatch, capsys):
    from soralab.experiments.sweep import parse_grid, plan

    assert parse_grid(["xi=1,3", "r=4", "prox=official"]) == {"xi": [1, 3], "r": [4], "prox": ["official"]}
    assert len(plan(["rte"], ["lora", "sora"], [1, 2], {"xi": [1, 3]})) == 2 + 4  # xi does not multiply lora
    args = ["sweep", "--tasks", "rte", "--methods", "lora", "sora", "--seeds", "1", "2", "--grid", "xi=20",
            "--output-dir", str(tmp_path), "--set", f"model_name_or_path={tiny['model']}",
            f"data_dir={tiny['data']}", "num_train_epochs=1", "max_seq_length=32", "per_device_train_batch_size=8"]
    assert cli_main(args) == 0
    first = capsys.readouterr().out
    assert len(list(tmp_path.rglob(RESULT_NAME))) == 4
    monkeypatch.setattr("transformers.Trainer.train", lambda *a, **k: pytest.fail("resumed sweep retrained"))
    assert cli_main(args) == 0
    table = capsys.readouterr().out
    assert table == first
    lora_row = next(line for line in table.splitlines() if line.startswith("| lora |"))
    assert " ± " in lora_row and "| 2 |" in lora_row  # two seeds aggregated
    assert "| sora | default |" in table and "AdaLoRA" in table and "85.20" in table  # reference RTE, LoRA r=8
    assert cli_main(["report", str(tmp_path), "--csv", str(tmp_path / "t.csv")]) == 0
    assert (tmp_path / "t.csv").read_text().startswith("method,setting,model,rte (accuracy),mean")
    assert "MRPC accuracy" in table, "the reference's note names each task's metric (theirs: MRPC accuracy)"


def test_report_rows_are_methods_and_settings_not_per_task_sizes(tmp_path):
    from soralab.experiments.recipes import recipe
    from soralab.experiments.sweep import report
    from soralab.experiments.train import GlueConfig

    sizes = {"rte": 300, "sst2": 600}
    runs = [("lora", {}, 60.0), ("sora", {"xi": 1.0}, 70.0), ("sora", {"xi": 10.0}, 80.0)]
    for task, n in sizes.items():
        for method, setting, score in runs:
            for seed in (1, 2):
                # seed 2's LoRA is given the recipe's learning rate: same value, other from_recipe, same row
                lora2 = (method, seed) == ("lora", 2)
                given = {"learning_rate": recipe(task, method)["learning_rate"]} if lora2 else {}
                config = GlueConfig(task=task, method=method, max_train_samples=n, seed=seed, **setting, **given)
                assert ("learning_rate" in config.from_recipe) == (not given)
                folder = tmp_path / task / method / str(setting) / f"seed{seed}"
                folder.mkdir(parents=True)
                result = GlueResult(config=config.to_dict(), history=[], main_metric="accuracy",
                                    best={"eval_validation_accuracy": (score + seed) / 100}, final={},
                                    trainable_params=100, params_after_prune=50, wall_time_s=1.0)
                (folder / RESULT_NAME).write_text(json.dumps(result.__dict__))
    rows = [line for line in report(tmp_path, references=False).splitlines()[2:]]
    assert len(rows) == 3, rows  # lora, sora xi=1, sora xi=10: one row each, both tasks in it
    assert rows[0].startswith("| lora | default |") and "61.50 ± 0.71 | 61.50 ± 0.71 | 61.50 |" in rows[0]
    assert rows[1].startswith("| sora | xi=1.0 |") and rows[2].startswith("| sora | xi=10.0 |")
    assert "| 81.50 |" in rows[2]


def test_keep_steers_sora_to_its_share_of_ranks(tiny):
    """The recipe's default strength is a share of ranks to keep; xi follows from it during the run."""
    res = run_glue("sst2", "sora", model_name_or_path=tiny["model"], data_dir=tiny["data"], num_train_epochs=6,
                   keep=0.5, learning_rate=1e-2, **{**FAST, "per_device_train_batch_size": 4})
    assert res.config["keep"] == 0.5 and res.config["xi"] is None
    assert res.history[0]["xi"] > 0 and "xi" in res.history[-1]  # the schedule ran and is recorded
    kept = sum(res.active_ranks.values()) / (8 * len(res.active_ranks))
    assert 0.25 <= kept <= 0.75, (kept, res.history)


def test_bf16_on_cpu(tiny):
    """Mixed precision goes through the Trainer's autocast; on CPU that is bf16 (fp16 needs a GPU)."""
    res = run_glue("sst2", "sora", model_name_or_path=tiny["model"], data_dir=tiny["data"], num_train_epochs=1,
                   precision="bf16", device="cpu", **FAST)
    assert res.config["precision"] == "bf16" and len(res.history) == 1
    assert all(p.dtype == torch.float32 for p in res.model.parameters())  # autocast, weights stay fp32


@pytest.mark.parametrize("arch", ["bert", "roberta", "deberta-v2", "gpt2"])
def test_set_dropout_reaches_every_dropout_attention_included(arch):
    """With every nn.Dropout at 0, a model in train mode is deterministic, which it would not be if its attention
    read its dropout from the config instead of the module; at 0.5 it is not."""
    from soralab.errors import UsageError
    from soralab.experiments.models import set_dropout, tiny_model

    model = tiny_model(arch).train()
    ids = torch.randint(3, 90, (4, 12))
    assert set_dropout(model, 0.0) > 0
    torch.testing.assert_close(model(input_ids=ids).logits, model(input_ids=ids).logits)
    set_dropout(model, 0.5)
    assert not torch.allclose(model(input_ids=ids).logits, model(input_ids=ids).logits)
    with pytest.raises(UsageError, match=r"dropout must be in \[0, 1\), got 1.0"):
        set_dropout(model, 1.0)


def test_model_dropout_sets_the_model_not_the_adapters(tiny):
    from soralab.experiments.run_config import GlueConfig
    from soralab.experiments.train import setup

    p = setup(GlueConfig(task="sst2", method="lora", model_name_or_path=tiny["model"], data_dir=tiny["data"],
                         model_dropout=0.0, lora_dropout=0.2, max_seq_length=32))
    adapters = [m for _, m in soralab.adapter_modules(p.model)]
    assert adapters and all(a.lora_dropout.p == 0.2 for a in adapters)
    own = {id(a.lora_dropout) for a in adapters}
    rest = [m for m in p.model.modules() if isinstance(m, torch.nn.Dropout) and id(m) not in own]
    assert rest and all(m.p == 0.0 for m in rest)
    kw = dict(task="sst2", method="lora", model_name_or_path=tiny["model"], data_dir=tiny["data"], max_seq_length=32)
    default = setup(GlueConfig(**kw))  # off by default (benchmarks/dropout.py)
    assert {m.p for m in default.model.modules() if isinstance(m, torch.nn.Dropout)} == {0.0}
    checkpoint = setup(GlueConfig(**kw, model_dropout=None))
    assert {m.p for m in checkpoint.model.modules() if isinstance(m, torch.nn.Dropout)} == {0.1}  # the checkpoint's


def test_a_result_saved_before_model_dropout_existed_kept_the_checkpoints_dropout(tiny, tmp_path, monkeypatch):
    kw = dict(model_name_or_path=tiny["model"], data_dir=tiny["data"], num_train_epochs=1, output_dir=tmp_path, **FAST)
    run_glue("sst2", "lora", model_dropout=None, **kw)
    saved = json.loads((tmp_path / RESULT_NAME).read_text())
    del saved["config"]["model_dropout"]  # as every result saved before 2026-11-28
    (tmp_path / RESULT_NAME).write_text(json.dumps(saved))
    assert GlueResult.from_json(tmp_path / RESULT_NAME).config["model_dropout"] is None
    monkeypatch.setattr("transformers.Trainer.train", lambda *a, **k: pytest.fail("should have reused the result"))
    assert run_glue("sst2", "lora", model_dropout=None, **kw).reused
    with pytest.raises(ValueError, match=r"different configuration.*'model_dropout': \(None, 0.0\)"):
        run_glue("sst2", "lora", **kw)  # today's default is another configuration
