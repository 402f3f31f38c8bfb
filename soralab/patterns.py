"""Rank patterns: per-module LoRA ranks read from a SoRA (or AdaLoRA) model, scaled to a parameter budget.

SoRA's gates decide how much rank each module keeps. ``soralab.allocate`` (``soralab/experiments/allocate.py``)
runs SoRA briefly on a GLUE task and uses this module to read those ranks and
turns them into a ``rank_pattern`` / ``alpha_pattern`` that plain LoRA (PEFT's ``LoraConfig`` or soralab's
``LoRAConfig``) can train from scratch at a parameter budget the user names, e.g. "the parameters of uniform LoRA
r=4 on the same modules". Whether such a pattern beats uniform ranks is a question for
``benchmarks/allocate.py``, not something this module assumes.

The steps, each usable alone:

* ``module_ranks(model)``: live rank and shape of every adapted module of a soralab model (by layer type:
  a ``SoRALinear`` counts its non-zero gates, a ``LoRALinear`` its ``r``, a targeted layer that ``prune`` turned
  back into a plain linear layer counts 0). ``ranks_with_shapes(ranks, model)`` does the same for a plain
  ``{name: rank}`` table (a saved result's ``active_ranks``, AdaLoRA's allocation).
* ``scale_to_budget(modules, budget_rank=4)``: the rounding rule, ``ROUNDING_RULE`` below.
* ``make_pattern(...)``: the JSON-able pattern; ``load_pattern``, ``peft_config`` and ``lora_config`` read it back.
* ``soralab.allocate(task, budget_rank=4, ...)`` (in ``soralab.experiments.allocate``): the short run
  (``run_glue``) plus all of the above, written atomically.

A module's LoRA parameters are ``r * (in + out)`` (A is r x in, B is out x r); every count here is that sum over
the adapted modules, without the task head, which trains whole beside any pattern.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from torch import nn

from .config import LoRAConfig
from .errors import MissingFileError, UsageError
from .inject import adapter_config, matches
from .layers import SUPPORTED_BASE_TYPES, AdapterLayer, NOLALinear, _in_out

FORMAT = "soralab-rank-pattern"
VERSION = 1
FINDERS = ("sora", "adalora")
DEFAULT_BUDGET_RANK = 4

ROUNDING_RULE = (
    "Proportional with largest remainders, never over the budget. Each module's ideal rank is t * found_rank, "
    "with one factor t for all modules chosen so that the ideal ranks spend exactly the budget; a module whose "
    "ideal exceeds its cap (max_rank, and never more than min(in, out)) is fixed at the cap and t is recomputed "
    "for the others. Each module then gets floor(ideal), and modules with a fractional part take one more rank, "
    "largest fractional part first (ties: larger found rank, then name), each only if its r*(in+out) cost still "
    "fits in what is left of the budget. So every rank is floor or ceil of its ideal and the total never "
    "exceeds the budget; what cannot be spent is reported as the gap between 'params' and the budget.")
DROP_RULE = (
    "Modules whose rank is 0 (SoRA killed every gate, or their share rounded down to 0) are left out of "
    "target_modules, rank_pattern and alpha_pattern: PEFT's LoraConfig cannot build a layer of r=0, and "
    "leaving a module out keeps it frozen, which is exactly what rank 0 means. They are listed under "
    "'dropped_modules'.")


@dataclass(frozen=True)
class ModuleRank:
    """One adapted module: the rank found for it and its shape."""

    name: str
    rank: int
    in_features: int
    out_features: int

    @property
    def cost(self) -> int:
        """LoRA parameters per unit of rank: a row of A (in) and a column of B (out)."""
        return self.in_features + self.out_features


def _shape(module: nn.Module) -> tuple[int, int]:
    if isinstance(module, SUPPORTED_BASE_TYPES):
        return _in_out(module)
    if isinstance(getattr(module, "in_features", None), int) and isinstance(getattr(module, "out_features", None), int):
        return module.in_features, module.out_features  # soralab's and PEFT's adapter layers
    raise UsageError(f"cannot read the input/output size of a {type(module).__name__}; ranks are allocated "
                     f"over linear layers")


def module_ranks(model: nn.Module) -> list[ModuleRank]:
    """Live rank and shape of every module a soralab adapter was put on, in model order.

    Found by layer type, never by name substrings: a ``SoRALinear`` (trained, not yet pruned) counts its non-zero
    gates; a ``LoRALinear`` (a pruned SoRA, or plain LoRA) its ``r``. ``prune`` turns a module whose gates all
    died back into its base layer, so a plain linear layer that the model's ``target_modules`` still names counts
    as rank 0: a pruned model gives the same table as the model before pruning.
    """
    config = adapter_config(model)  # a clear error for a model without soralab adapters
    rows, adapters = [], []
    for name, m in model.named_modules():
        if any(name.startswith(a + ".") for a in adapters):
            continue  # an adapter's own base layer
        if isinstance(m, NOLALinear):
            raise UsageError(f"{name!r} is a NOLA layer: its rank is fixed by its bases, not found by training; "
                             f"read ranks from a SoRA model (pruned or not)")
        if isinstance(m, AdapterLayer):
            adapters.append(name)
            rows.append(ModuleRank(name, m.active_rank(), m.in_features, m.out_features))
        elif name and isinstance(m, SUPPORTED_BASE_TYPES) and matches(name, config.target_modules):
            rows.append(ModuleRank(name, 0, *_in_out(m)))
    return rows


def ranks_with_shapes(ranks: dict[str, int], model: nn.Module) -> list[ModuleRank]:
    """``{module name: rank}`` (e.g. a saved result's ``active_ranks``) with each module's shape read from
    ``model`` (the base model, or one holding soralab or PEFT adapters at those names)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PeftModel
    rows = []
    for name, rank in ranks.items():
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
            raise UsageError(f"rank of {name!r} must be an integer >= 0, got {rank!r}")
        try:
            module = base.get_submodule(name)
        except AttributeError:
            raise UsageError(f"the model has no module {name!r}; the ranks come from another model") from None
        rows.append(ModuleRank(name, rank, *_shape(module)))
    return rows


def _check_scaling(scaling: Any) -> None:
    if not (isinstance(scaling, (int, float)) and not isinstance(scaling, bool) and 0 < scaling < math.inf):
        raise UsageError(f"scaling (alpha / r of every module) must be a finite number > 0, e.g. 2, got {scaling!r}")


def _positive_int(value: Any, name: str, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UsageError(f"{name} must be a positive integer ({example}), got {value!r}")
    return value


def budget_of(modules: list[ModuleRank], budget_rank: int | None = None, budget_params: int | None = None) -> int:
    """The budget in LoRA parameters: ``budget_rank * sum(in + out)`` over *all* the modules (uniform LoRA of that
    rank on the same modules, dead ones included), or ``budget_params`` as given. Default: ``budget_rank=4``."""
    if budget_rank is not None and budget_params is not None:
        raise UsageError(f"give the budget as budget_rank or as budget_params, not both "
                         f"(got budget_rank={budget_rank!r}, budget_params={budget_params!r})")
    if budget_params is not None:
        return _positive_int(budget_params, "budget_params", "a number of LoRA parameters, e.g. 147456")
    rank = DEFAULT_BUDGET_RANK if budget_rank is None else budget_rank
    _positive_int(rank, "budget_rank", "the rank of the uniform LoRA whose parameter count is the budget, e.g. 4")
    return rank * sum(m.cost for m in modules)


def lora_params(ranks: dict[str, int], modules: list[ModuleRank]) -> int:
    """Sum of ``r * (in + out)`` over the modules."""
    return sum(ranks[m.name] * m.cost for m in modules)


def scale_to_budget(modules: list[ModuleRank], budget_rank: int | None = None, budget_params: int | None = None,
                    max_rank: int | None = None) -> dict[str, int]:
    """Ranks proportional to the found ranks, rounded by ``ROUNDING_RULE``: ``{name: rank}`` for every module,
    0 for modules to drop (``DROP_RULE``). The total ``lora_params`` never exceeds the budget.

    Exact arithmetic (fractions), so the result does not depend on floating-point rounding.
    """
    if not modules:
        raise UsageError("no modules to allocate ranks over")
    budget = budget_of(modules, budget_rank, budget_params)
    if max_rank is not None:
        _positive_int(max_rank, "max_rank", "the largest rank any module may get, e.g. 16")
    cap = {m.name: min(max_rank or math.inf, m.in_features, m.out_features) for m in modules}
    live = [m for m in modules if m.rank > 0]
    if not live:
        raise UsageError("every found rank is 0 (all gates died), so there is nothing to scale: find ranks with a "
                         "higher keep or a smaller xi")
    capped: set[str] = set()
    while True:  # water-filling: fix modules at their cap until the factor t leaves every other under its own
        free = [m for m in live if m.name not in capped]
        left = budget - sum(cap[m.name] * m.cost for m in live if m.name in capped)
        t = Fraction(left, sum(m.rank * m.cost for m in free)) if free else Fraction(0)
        over = [m.name for m in free if t * m.rank >= cap[m.name]]
        if not over:
            break
        capped.update(over)
    ideal = {m.name: Fraction(cap[m.name]) if m.name in capped else t * m.rank for m in live}
    ranks = {m.name: 0 for m in modules} | {n: math.floor(x) for n, x in ideal.items()}
    left = budget - lora_params(ranks, modules)
    for m in sorted(live, key=lambda m: (-(ideal[m.name] - ranks[m.name]), -m.rank, m.name)):
        if ideal[m.name] > ranks[m.name] and m.cost <= left:
            ranks[m.name] += 1
            left -= m.cost
    if not any(ranks.values()):
        cheapest = min(m.cost for m in live)
        raise UsageError(f"a budget of {budget} LoRA parameters gives no module a whole rank (the cheapest live "
                         f"module needs {cheapest} per rank); give a larger budget_rank or budget_params")
    return ranks


def make_pattern(modules: list[ModuleRank], ranks: dict[str, int], *, scaling: float, budget_params: int,
                 budget_rank: int | None = None, max_rank: int | None = None,
                 modules_to_save: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """The pattern as a JSON-able dict: what PEFT's ``LoraConfig`` and soralab's ``LoRAConfig`` take, plus where it
    came from.

    Every kept module gets the same scale ``scaling`` (``alpha_pattern[name] = scaling * rank``), so a module at
    rank r trains exactly as it would in uniform LoRA of rank r and that scale; only the ranks differ from uniform
    LoRA. ``r`` is the most common kept rank (ties: the larger) and ``lora_alpha = scaling * r``: every kept module
    is named in ``rank_pattern``, so these two are only PEFT's defaults and change no module.
    """
    _check_scaling(scaling)
    kept = [m.name for m in modules if ranks[m.name] > 0]
    if not kept:
        raise UsageError("every module has rank 0: a pattern needs at least one module with a rank")
    counts = Counter(ranks[n] for n in kept)
    r = max(counts, key=lambda k: (counts[k], k))
    return {
        "format": FORMAT, "version": VERSION,
        "target_modules": kept, "r": r, "lora_alpha": scaling * r,
        "rank_pattern": {n: ranks[n] for n in kept},
        "alpha_pattern": {n: scaling * ranks[n] for n in kept},
        "scaling": scaling, "modules_to_save": list(modules_to_save or []),
        "dropped_modules": [m.name for m in modules if ranks[m.name] == 0], "dropped_rule": DROP_RULE,
        "budget": {"budget_rank": budget_rank, "budget_params": budget_params, "max_rank": max_rank,
                   "rounding_rule": ROUNDING_RULE},
        "params": lora_params(ranks, modules),
        "found_ranks": {m.name: m.rank for m in modules},
        "found_params": sum(m.rank * m.cost for m in modules),
        "shapes": {m.name: [m.in_features, m.out_features] for m in modules},
        **extra,
    }


def load_pattern(source: str | os.PathLike | dict) -> dict[str, Any]:
    """A pattern from its JSON file (or the dict ``make_pattern`` returned), every field ``peft_config`` and
    ``lora_config`` use checked; a ``UsageError`` names the file and the field."""
    where = "rank pattern" if isinstance(source, dict) else f"rank pattern {str(source)!r}"
    if isinstance(source, dict):
        p = source
    else:
        path = Path(source)
        if not path.is_file():
            raise MissingFileError(f"{where} does not exist or is not a file; write one with `soralab allocate`")
        try:
            p = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise UsageError(f"{where} is not valid JSON ({err}); write it again with `soralab allocate`") from None
    if not isinstance(p, dict) or p.get("format") != FORMAT:
        raise UsageError(f"{where} is not a soralab rank pattern (expected \"format\": \"{FORMAT}\")")
    if not isinstance(p.get("version"), int) or p["version"] > VERSION:
        raise UsageError(f"{where} has format version {p.get('version')!r}; this soralab reads up to {VERSION}")
    targets, ranks, alphas = p.get("target_modules"), p.get("rank_pattern"), p.get("alpha_pattern")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t for t in targets):
        raise UsageError(f"{where}: 'target_modules' must be a non-empty list of module names, got {targets!r}")
    for key, table in (("rank_pattern", ranks), ("alpha_pattern", alphas)):
        if not isinstance(table, dict) or set(table) != set(targets):
            raise UsageError(f"{where}: '{key}' must be an object with one entry per module of target_modules")
    try:  # the same checks LoRAConfig makes (positive integer ranks, finite alphas > 0)
        lora_config(p)
    except ValueError as err:
        raise UsageError(f"{where}: {err}") from None
    return p


def peft_config(pattern: str | os.PathLike | dict, **overrides: Any):
    """``peft.LoraConfig`` of the pattern (``overrides``, e.g. ``lora_dropout=0.1``, are passed on)."""
    from peft import LoraConfig

    p = load_pattern(pattern) if not isinstance(pattern, dict) else pattern
    kw = dict(r=p["r"], lora_alpha=p["lora_alpha"], target_modules=list(p["target_modules"]),
              rank_pattern=dict(p["rank_pattern"]), alpha_pattern=dict(p["alpha_pattern"]),
              modules_to_save=list(p.get("modules_to_save") or []) or None)
    return LoraConfig(**{**kw, **overrides})


def lora_config(pattern: str | os.PathLike | dict, **overrides: Any) -> LoRAConfig:
    """soralab ``LoRAConfig`` of the pattern, for ``soralab.inject`` (per-module ranks by ``rank_pattern``)."""
    p = load_pattern(pattern) if not isinstance(pattern, dict) else pattern
    kw = dict(r=p["r"], lora_alpha=p["lora_alpha"], target_modules=list(p["target_modules"]),
              rank_pattern=dict(p["rank_pattern"]), alpha_pattern=dict(p["alpha_pattern"]),
              modules_to_save=list(p.get("modules_to_save") or []))
    return LoRAConfig(**{**kw, **overrides})
