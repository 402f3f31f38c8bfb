"""Training recipes: the value ``run_glue`` uses for every option a user leaves unset (``None``).

A recipe is looked up per task and method, most specific last: ``BASE``, then ``BY_METHOD[method]``, then
``BY_TASK[task]``, then ``FOUND[(task, method)]`` (or, where it has none, ``FOUND[(task, family)]``). ``FOUND``
holds the values chosen by ``benchmarks/recipes.py``, which trains on a training set minus a held-out slice and
selects on that slice (``split_protocol="holdout"``), never on the dev set that results report;
``benchmarks/recipes_results.md`` has the search's table and command. SoRA and PEFT's LoRA share LoRA's found values
(``FAMILY``): SoRA is LoRA plus gates, so a difference between them is SoRA's doing, not a tuning advantage. AdaLoRA
and BitFit, the baselines, have learning rates of their own from the same kind of search (since 2026-11-29); on a
task their search skipped (RTE) AdaLoRA falls back to LoRA's values and BitFit to ``BY_METHOD``.

Every value can be overridden by passing it to ``run_glue`` (or ``--option`` on the command line); a run
records which values came from the recipe.
"""

from __future__ import annotations

from typing import Any

from . import sparsity

RECIPE_FIELDS = ("learning_rate", "head_lr", "num_train_epochs", "per_device_train_batch_size", "warmup_ratio",
                 "max_seq_length", "keep", "gate_init", "keep_start", "keep_end", "keep_final")

# Any task, any method: what a task we never searched gets.
BASE: dict[str, Any] = {
    "learning_rate": 1e-3,
    "head_lr": None,  # None: the head trains at learning_rate
    "num_train_epochs": 3.0,
    "per_device_train_batch_size": 32,
    "warmup_ratio": 0.06,
    "max_seq_length": 128,
    # SoRA's strength: keep half of the ranks (see soralab.experiments.sparsity). Half is where the paper's claim is
    # tested: with MiniLM's head (pooler + classifier, 148,610 parameters) it leaves 65% of LoRA r=8's trainable
    # parameters, under the 70% the paper's claim allows.
    "keep": 0.5,
    # With keep, equal gates: which ranks die is decided by training, not by the draw of the initial gates
    # (an earlier notebook 05, commit 681401f, found randn starts deciding the allocation at GLUE budgets). A run
    # given a constant xi
    # instead gets SoRAConfig's default (the authors' randn).
    "gate_init": "ones",
    # How keep is reached (sparsity.KeepSchedule): xi rises from 5% of the run, the live share reaches keep
    # at 40%, and there the cut is final: the surviving ranks train on, unshrunk, for the rest of the run. Chosen on
    # held-out training data by benchmarks/keep_schedule.py (keep_schedule_results.md): SoRA minus LoRA went from
    # -1.75 (the quality record's 0.1 / 0.7 / not final) to -0.88, mean of STS-B and MRPC, one seed.
    "keep_start": sparsity.START,
    "keep_end": sparsity.END,
    "keep_final": sparsity.FINAL,
}

BY_METHOD: dict[str, dict[str, Any]] = {
    "full": {"learning_rate": 5e-5},  # the usual full fine-tuning rate for BERT-size models
    "bitfit": {"learning_rate": 5e-3},
    "nola": {"learning_rate": 1e-2},  # only a few coefficients per layer: larger steps
}

BY_TASK: dict[str, dict[str, Any]] = {
    "sst2": {"num_train_epochs": 2.0, "max_seq_length": 64},  # short sentences, 67k of them
    "qnli": {"num_train_epochs": 2.0},
    "qqp": {"num_train_epochs": 2.0},
    "mnli": {"num_train_epochs": 2.0},
}

# Chosen on held-out training data by benchmarks/recipes.py (see benchmarks/recipes_results.md): the best of
# lr 5e-4 / 1e-3 / 2e-3 with the head at the same rate, and lr 1e-3 with the head at 5e-3, one seed each.
FOUND: dict[tuple[str, str], dict[str, Any]] = {
    ("mrpc", "lora"): {"learning_rate": 1e-3},                    # held-out F1 84.9 (84.4-84.9 for all four)
    # RTE: held-out accuracy 56.2, near chance at every setting, full fine-tuning included (a second round tried
    # full fine-tuning, 256 tokens, and batch 16 without weight decay: 50.4-57.0 against 54.8 for a constant answer)
    ("rte", "lora"): {"learning_rate": 2e-3},
    ("stsb", "lora"): {"learning_rate": 1e-3, "head_lr": 5e-3},   # held-out Pearson 86.0 (85.9 with the head at 1e-3)
    ("sst2", "lora"): {"learning_rate": 2e-3},                    # held-out accuracy 91.8 (89.6 at 5e-4)
    # AdaLoRA's own (2026-11-29): the best of lr 1e-3 / 2e-3 / 5e-3 / 1e-2 (and LoRA's value, which it had), the head
    # at the same rate, model dropout off; RTE not searched (it keeps LoRA's values).
    ("mrpc", "adalora"): {"learning_rate": 5e-3},  # held-out F1 85.2 (83.8 at LoRA's 1e-3; a constant answer at 1e-2)
    ("stsb", "adalora"): {"learning_rate": 5e-3},  # held-out Pearson 86.3 (86.2 at 1e-2; 84.5 at LoRA's values)
    ("sst2", "adalora"): {"learning_rate": 5e-3},  # held-out accuracy 90.6 (89.9 at LoRA's 2e-3, 90.0 at 1e-2)
    # BitFit's own (2026-11-29): the best of lr 5e-4 / 1e-3 / 5e-3 / 2e-2, the head at the same rate, model dropout
    # off; RTE not searched (it keeps BY_METHOD's 5e-3).
    ("mrpc", "bitfit"): {"learning_rate": 1e-3},   # held-out F1 82.9: every rate 82.2-82.9, a constant answer 82.2
    ("stsb", "bitfit"): {"learning_rate": 5e-3},   # held-out Pearson 85.3 (84.1 at 1e-3; no Pearson at 2e-2)
    ("sst2", "bitfit"): {"learning_rate": 5e-3},   # held-out accuracy 88.0 (87.4 at 2e-2, 85.7 at 5e-4)
}

FAMILY = {"sora": "lora", "peft-lora": "lora", "adalora": "lora"}

# ``soralab.allocate``'s finding run, where its caller gives nothing: 1,000 training rows, one pass, 200 rows per
# evaluation. With the recipes' batch of 32 that is 32 optimiser steps; a full MRPC run (3,668 rows x 3 epochs) takes
# 345, so the search costs about a tenth of one training run. Any run_glue option overrides these.
FIND_DEFAULTS: dict[str, Any] = {"max_train_samples": 1000, "num_train_epochs": 1.0, "max_eval_samples": 200}


def recipe(task: str, method: str) -> dict[str, Any]:
    """The recipe's value for every field in ``RECIPE_FIELDS`` for this task and method."""
    values = dict(BASE)
    values.update(BY_METHOD.get(method, {}))
    values.update(BY_TASK.get(task, {}))
    # the method's own found values; without them (a task its own search skipped) its family's
    values.update(FOUND.get((task, method), FOUND.get((task, FAMILY.get(method, method)), {})))
    return values
