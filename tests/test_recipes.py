"""Recipes fill what the user leaves unset; precision is detected; the holdout protocol never touches dev."""

import pytest
import torch
from glue_fixtures import write_glue_fixture

from soralab.cli import main as cli_main
from soralab.experiments import glue, hardware, metrics, recipes
from soralab.experiments.models import HEADS, TARGETS, tiny_model
from soralab.experiments.train import GlueConfig, head_parameters


def test_unset_options_come_from_the_recipe_and_are_named():
    c = GlueConfig(task="mrpc", method="lora")
    r = recipes.recipe("mrpc", "lora")
    assert c.learning_rate == r["learning_rate"] and c.num_train_epochs == r["num_train_epochs"]
    assert "learning_rate" in c.from_recipe and "keep" not in c.from_recipe and c.keep is None
    given = GlueConfig(task="mrpc", method="lora", learning_rate=3e-4)
    assert given.learning_rate == 3e-4 and "learning_rate" not in given.from_recipe


def test_sora_shares_lora_values_and_gets_a_strength():
    lora, sora = GlueConfig(task="rte", method="lora"), GlueConfig(task="rte", method="sora")
    assert sora.learning_rate == lora.learning_rate and sora.head_lr == lora.head_lr
    assert sora.keep == recipes.BASE["keep"] and sora.xi is None and sora.gate_init == recipes.BASE["gate_init"]
    raw = GlueConfig(task="rte", method="sora", xi=0.5)
    assert raw.keep is None and "keep" not in raw.from_recipe


def test_method_and_task_layers_apply_in_order(monkeypatch):
    monkeypatch.setitem(recipes.FOUND, ("rte", "lora"), {"learning_rate": 7e-4})
    assert recipes.recipe("rte", "sora")["learning_rate"] == 7e-4  # SoRA inherits LoRA's found value
    assert recipes.recipe("rte", "full")["learning_rate"] == recipes.BY_METHOD["full"]["learning_rate"]
    assert recipes.recipe("sst2", "lora")["max_seq_length"] == recipes.BY_TASK["sst2"]["max_seq_length"]
    assert recipes.recipe("cola", "lora")["num_train_epochs"] == recipes.BASE["num_train_epochs"]
    monkeypatch.setitem(recipes.FOUND, ("rte", "adalora"), {"learning_rate": 3e-3})
    assert recipes.recipe("rte", "adalora")["learning_rate"] == 3e-3  # a method's own found value wins
    assert recipes.recipe("rte", "peft-lora")["learning_rate"] == 7e-4  # without one, its family's
    monkeypatch.setitem(recipes.FOUND, ("rte", "bitfit"), {"learning_rate": 4e-3})
    assert recipes.recipe("rte", "bitfit")["learning_rate"] == 4e-3  # FOUND comes after BY_METHOD


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="lora", keep=0.5), "keep is a SoRA option"),
    (dict(method="sora", keep=0.5, xi=1.0), "not both"),
    (dict(method="sora", keep=0.0), "keep must be a share"),
    (dict(method="sora", keep=1.5), "keep must be a share"),
])
def test_strength_options_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GlueConfig(task="rte", **kwargs)


def test_a_head_lr_equal_to_the_learning_rate_is_the_same_config_as_none():
    """STS-B's recipe trains the head at 5e-3; the head at the adapters' own rate must still be expressible, and as
    the one configuration a run saved with head_lr=None (one rate for everything) is."""
    assert GlueConfig(task="stsb", method="lora").head_lr == 5e-3  # FOUND
    same = GlueConfig(task="stsb", method="lora", learning_rate=1e-3, head_lr=1e-3)
    assert same.head_lr is None and "head_lr" not in same.from_recipe
    assert GlueConfig(task="stsb", method="lora", learning_rate=1e-3, head_lr=2e-3).head_lr == 2e-3


def test_a_saved_config_rebuilds_unchanged():
    c = GlueConfig(task="sst2", method="sora")
    assert GlueConfig(**c.to_dict()).to_dict() == c.to_dict()


def test_precision_is_detected_not_assumed(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hardware, "cpu_bf16_is_fast", lambda: True)
    assert hardware.resolve_precision("auto") == "bf16"
    monkeypatch.setattr(hardware, "cpu_bf16_is_fast", lambda: False)
    assert hardware.resolve_precision("auto") == "fp32" and hardware.resolve_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match="fp16.*needs a CUDA GPU"):
        hardware.resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        hardware.resolve_precision("int8")
    assert GlueConfig(task="rte", method="lora", precision="fp32").precision == "fp32"


def test_bf16_on_a_cpu_trains_on_sdpa_math_kernel_and_fp32_keeps_the_fused_one():
    fused = torch.backends.cuda.flash_sdp_enabled()  # the flag SDPA's CPU flash-attention kernel obeys too
    with hardware.attention_kernel("bf16", "cpu"):
        assert not torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.math_sdp_enabled()
        q = torch.randn(2, 4, 8, 16)
        math = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    assert torch.backends.cuda.flash_sdp_enabled() == fused  # restored on leaving
    assert torch.allclose(math, torch.nn.functional.scaled_dot_product_attention(q, q, q), atol=1e-5)  # same maths
    with hardware.attention_kernel("fp32", "cpu"):
        assert torch.backends.cuda.flash_sdp_enabled() == fused


def test_holdout_protocol_splits_train_and_drops_dev(tmp_path):
    write_glue_fixture(tmp_path, "rte", n_train=40, n_dev=12)
    full = glue.load_glue("rte", tmp_path)
    held = glue.load_glue("rte", tmp_path, split_protocol="holdout", seed=3)
    assert set(held) == {"train", "validation"}
    assert len(held["validation"]) == int(40 * glue.HOLDOUT_FRACTION)
    train_idx, val_idx = set(held["train"]["idx"]), set(held["validation"]["idx"])
    assert not train_idx & val_idx and train_idx | val_idx == set(full["train"]["idx"])
    texts = set(full["train"]["sentence1"])
    assert set(held["validation"]["sentence1"]) <= texts  # validation rows come from train.tsv, not dev.tsv
    assert held["validation"]["idx"] != glue.load_glue("rte", tmp_path, split_protocol="holdout", seed=4)[
        "validation"]["idx"]


def test_majority_baseline():
    assert metrics.majority_baseline("rte", [0, 0, 1], [0, 1, 1, 1]) == pytest.approx(0.25)
    # MRPC's main metric is F1: always "equivalent" gives F1 = 2p / (1 + p) with p the positive share
    assert metrics.majority_baseline("mrpc", [1, 1, 0], [1, 0, 1, 0]) == pytest.approx(2 * 0.5 / 1.5)
    assert metrics.majority_baseline("stsb", [1.0, 2.0], [3.0, 4.0]) == 0.0
    with pytest.raises(ValueError, match="non-empty"):
        metrics.majority_baseline("rte", [], [1])


@pytest.mark.parametrize("arch", ["bert", "roberta", "deberta-v2", "gpt2"])
def test_head_parameters_are_every_layer_after_the_encoder(arch):
    import soralab

    model = soralab.inject(tiny_model(arch), soralab.LoRAConfig(target_modules=TARGETS[arch],
                                                                modules_to_save=HEADS[arch]))
    head = head_parameters(model, HEADS[arch])
    trainable = [p for p in model.parameters() if p.requires_grad]
    adapters = {id(p) for _, m in soralab.adapter_modules(model) for p in m.parameters(recurse=False)}
    assert {id(p) for p in head} == {id(p) for p in trainable} - adapters and head


def test_bert_trains_its_pooler():
    model = tiny_model("bert")
    assert any(n.endswith("pooler") for n, _ in model.named_modules()) and "pooler" in HEADS["bert"]


def test_cli_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        cli_main(["glue", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for f in GlueConfig.__dataclass_fields__.values():
        if f.name != "from_recipe":
            assert f.metadata.get("help") and " ".join(f.metadata["help"].split()) in text, f.name


def test_keep_schedule_options_are_checked():
    c = GlueConfig(task="mrpc", method="sora")
    assert (c.keep_start, c.keep_end, c.keep_final) == (recipes.BASE["keep_start"], recipes.BASE["keep_end"],
                                                        recipes.BASE["keep_final"])  # the recipe's, named as such
    assert {"keep_start", "keep_end", "keep_final"} <= set(c.from_recipe)
    raw = GlueConfig(task="mrpc", method="sora", xi=0.5)
    assert (raw.keep_start, raw.keep_end, raw.keep_final) == (None, None, None)
    with pytest.raises(ValueError, match="no keep schedule"):
        GlueConfig(task="mrpc", method="sora", xi=0.5, keep_final=True)
    with pytest.raises(ValueError, match="keep_start must come before keep_end"):
        GlueConfig(task="mrpc", method="sora", keep_start=0.5, keep_end=0.4)
    with pytest.raises(ValueError, match="keep_final is a SoRA option"):
        GlueConfig(task="mrpc", method="lora", keep_final=True)
    with pytest.raises(ValueError, match=r"keep_end must be a share of the run in \(0, 1\]"):
        GlueConfig(task="mrpc", method="sora", keep_end=1.5)


def test_a_result_saved_before_the_keep_schedule_options_reads_as_it_ran(tmp_path, monkeypatch):
    """Runs saved before keep_start/keep_end/keep_final existed ran 0.1 / 0.7 / False, whatever the recipe says now."""
    import json

    from soralab.experiments.train import GlueResult

    monkeypatch.setitem(recipes.BASE, "keep_final", True)  # a later recipe
    old = GlueConfig(task="mrpc", method="sora").to_dict()
    for name in ("keep_start", "keep_end", "keep_final"):
        del old[name]
    raw = {**GlueConfig(task="mrpc", method="sora", xi=0.5).to_dict()}
    for name in ("keep_start", "keep_end", "keep_final"):
        del raw[name]
    for name, config in (("old", old), ("raw", raw)):
        (tmp_path / f"{name}.json").write_text(json.dumps(
            {"config": config, "history": [], "best": {}, "final": {}, "main_metric": "f1", "trainable_params": 1,
             "params_after_prune": 1}))
    read = GlueResult.from_json(tmp_path / "old.json").config
    assert (read["keep_start"], read["keep_end"], read["keep_final"]) == (0.1, 0.7, False)
    read = GlueResult.from_json(tmp_path / "raw.json").config
    assert (read["keep_start"], read["keep_end"], read["keep_final"]) == (None, None, None)
