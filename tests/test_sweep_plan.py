"""soralab.experiments.sweep: what a grid plans (no duplicate runs), how --grid is read, and how report groups
settings. No training: plans are lists, results are written by hand."""

import json

import numpy as np
import pytest

from soralab.errors import UsageError
from soralab.experiments.run_config import RESULT_NAME, GlueConfig, GlueResult
from soralab.experiments.sweep import parse_grid, plan, report


def test_an_adapter_grid_does_not_repeat_full_fine_tuning_and_task_names_are_one():
    runs = plan(["RTE", "rte"], ["full", "bitfit", "lora"], [1], {"r": [4, 8], "lora_alpha": [8, 16]})
    assert [(r["task"], r["method"], r["setting"]) for r in runs if r["method"] != "lora"] == [
        ("rte", "full", {}), ("rte", "bitfit", {})]
    assert len([r for r in runs if r["method"] == "lora"]) == 4


def test_a_grid_name_given_twice_is_refused():
    with pytest.raises(UsageError, match="--grid names xi twice"):
        parse_grid(["xi=1", "xi=2"])


def test_report_reads_3_and_3_0_as_one_setting(tmp_path):
    for seed, epochs in ((1, 3.0), (2, 3)):  # the recipe's 3.0, and a --set num_train_epochs=3
        config = GlueConfig(task="rte", method="lora", seed=seed, num_train_epochs=epochs)
        folder = tmp_path / f"seed{seed}"
        folder.mkdir()
        result = GlueResult(config=config.to_dict(), history=[], main_metric="accuracy",
                            best={"eval_validation_accuracy": 0.6}, final={}, trainable_params=1, params_after_prune=1,
                            wall_time_s=1.0)
        (folder / RESULT_NAME).write_text(json.dumps(result.__dict__))
    rows = report(tmp_path, references=False).splitlines()[2:]
    assert len(rows) == 1 and rows[0].startswith("| lora | default |") and "| 2 |" in rows[0]


def test_options_are_stored_as_the_saved_json_will_hold_them():
    """numpy numbers (a loop over np.arange) and a tuple of module names: plain int, float and list, so the result
    can be written and a rerun compares equal to it; an empty from_recipe (every value given) round-trips."""
    c = GlueConfig(task="rte", method="lora", seed=np.int64(3), learning_rate=np.float64(1e-3),
                   target_modules=("query", "value"))
    assert (type(c.seed), type(c.learning_rate), c.target_modules) == (int, float, ["query", "value"])
    json.dumps(c.to_dict())
    given = {"learning_rate": 1e-3, "num_train_epochs": 3.0, "per_device_train_batch_size": 32, "warmup_ratio": 0.06,
             "max_seq_length": 128}
    full = GlueConfig(task="rte", method="lora", **given)
    assert full.from_recipe == [] and GlueConfig(**full.to_dict()).to_dict() == full.to_dict()
    with pytest.raises(UsageError, match=r"seed must be in \[0, 2\*\*32\)"):
        GlueConfig(task="rte", method="lora", seed=2**32)
