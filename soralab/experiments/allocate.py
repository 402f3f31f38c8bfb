"""``soralab.allocate``: SoRA as a rank finder. A short ``run_glue`` of SoRA (or AdaLoRA), its per-module ranks
scaled to a parameter budget by ``soralab.patterns``, written as a JSON that ``peft.LoraConfig`` and soralab's
``LoRAConfig`` take (``soralab.patterns.peft_config`` / ``lora_config``; ``run_glue(..., rank_pattern=...)``).
"""

from __future__ import annotations

import math
import os
from typing import Any

from torch import nn

from ..errors import UsageError
from ..files import atomic_write_text
from ..patterns import (
    DEFAULT_BUDGET_RANK,
    FINDERS,
    _check_scaling,
    _positive_int,
    budget_of,
    make_pattern,
    ranks_with_shapes,
    scale_to_budget,
)
from .glue import get_task
from .models import HEADS, load_classifier, model_family
from .recipes import FIND_DEFAULTS
from .results import dumps
from .train import run_glue
from .validate import check_output_dir, check_output_file


def _heads(model: nn.Module) -> list[str]:
    """What trains whole beside the adapters (pooler, classifier), as ``run_glue`` trains it."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return HEADS[model_family(base)]


def allocate(task: str, budget_rank: int | None = None, *, budget_params: int | None = None,
             max_rank: int | None = None, scaling: float | None = None, output: str | os.PathLike | None = None,
             method: str = "sora", output_dir: str | os.PathLike | None = None, progress: bool = False,
             **options: Any) -> dict[str, Any]:
    """Find per-module ranks with a short ``run_glue`` of ``method`` (SoRA; or AdaLoRA, whose final allocation is
    read the same way), scale them to the budget (``scale_to_budget``) and return the pattern, also written
    atomically to ``output`` (JSON) if given.

    options: ``run_glue`` / ``GlueConfig`` options of the finding run; unset ones come from ``FIND_DEFAULTS``
        (1,000 training rows, one epoch) and then from the recipe (SoRA r_max=8, keep=0.5). Pass
        ``max_train_samples=None`` for the whole training set.
    budget_rank / budget_params: the budget (``budget_of``); default: uniform LoRA r=4 on the same modules.
    scaling: ``alpha / r`` of every module of the pattern; default: the finding run's ``lora_alpha / r``.
    output_dir: where the finding run keeps its ``result.json``; an identical later call reuses it.
    The pattern records the finding run's cost (wall time, optimiser steps, its options) under ``finding_run``.
    """
    if method not in FINDERS:
        raise UsageError(f"allocate finds ranks with {' or '.join(FINDERS)}, got method={method!r}")
    check_output_file(output, "output", "pattern.json")
    check_output_dir(output_dir)
    if max_rank is not None:
        _positive_int(max_rank, "max_rank", "the largest rank any module may get, e.g. 16")
    budget_of([], budget_rank, budget_params)  # a bad budget is refused before anything trains
    if scaling is not None:
        _check_scaling(scaling)
    if "rank_pattern" in options and options["rank_pattern"] is not None:
        raise UsageError("rank_pattern is what allocate writes; the finding run cannot take one")

    result = run_glue(task, method, output_dir=output_dir, progress=progress, **{**FIND_DEFAULTS, **options})
    c = result.config
    model = getattr(result, "model", None)
    if model is None:  # a reused result: only the shapes are needed, from a fresh copy of the model
        model, _ = load_classifier(c["model_name_or_path"], num_labels=get_task(task).num_labels)
    modules = ranks_with_shapes(result.active_ranks, model)
    ranks = scale_to_budget(modules, budget_rank, budget_params, max_rank)
    steps = result.history[-1]["step"] if result.history else None
    finding = {"method": method, "wall_time_s": round(result.wall_time_s, 2),
               "train_time_s": round(result.timings.get("train", math.nan), 2), "steps": steps,
               "max_train_samples": c["max_train_samples"], "epochs": c["num_train_epochs"], "r": c["r"],
               "main_metric": result.main_metric, "score": result.score, "reused": result.reused, "config": c}
    pattern = make_pattern(
        modules, ranks, scaling=c["lora_alpha"] / c["r"] if scaling is None else scaling,
        budget_params=budget_of(modules, budget_rank, budget_params),
        budget_rank=DEFAULT_BUDGET_RANK if budget_rank is None and budget_params is None else budget_rank,
        max_rank=max_rank, modules_to_save=_heads(model), task=result.config["task"], finding_run=finding)
    if output is not None:
        atomic_write_text(output, dumps(pattern))
    return pattern
