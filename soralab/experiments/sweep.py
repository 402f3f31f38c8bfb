"""Grids of GLUE runs (``sweep``) and their aggregation into a table (``report``).

Each run writes ``<root>/<task>/<method>/<setting>/seed<k>/result.json``; a sweep that is interrupted
and started again skips every run whose result is already there (``run_glue`` reuses it).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import statistics
from collections import defaultdict
from importlib import resources
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..errors import MissingFileError, UsageError
from ..files import atomic_write_text
from .glue import get_task
from .run_config import METHOD_ONLY, uses  # a grid over one method's options does not multiply others' runs
from .train import RESULT_NAME, GlueConfig, GlueResult, run_glue
from .validate import check_output_dir, check_output_file, check_run, field_kind, options, parse_option, user_input

REFERENCES = resources.files("soralab") / "data" / "reference_glue.csv"  # package data: in a wheel too
SWEEP_SETS = {"task": "--tasks", "method": "--methods", "seed": "--seeds"}  # options the sweep sets per run


def _setting_name(setting: dict) -> str:
    def text(v):
        return "+".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)

    return "_".join(f"{k}={text(v)}" for k, v in sorted(setting.items())) or "default"


def plan(tasks: list[str], methods: list[str], seeds: list[int], grid: dict[str, list] | None = None) -> list[dict]:
    """Every (task, method, setting, seed) of the sweep, without duplicates."""
    grid = grid or {}
    runs, seen = [], set()
    tasks = list(dict.fromkeys(get_task(t).name for t in tasks))  # "RTE" and "rte" are one task
    for task, method, seed in itertools.product(tasks, methods, seeds):
        keys = [k for k in grid if uses(method, k)]  # r=4,8 does not run full fine-tuning twice
        for values in itertools.product(*(grid[k] for k in keys)):
            setting = dict(zip(keys, values, strict=True))
            key = (task, method, _setting_name(setting), seed)
            if key not in seen:
                seen.add(key)
                runs.append({"task": task, "method": method, "setting": setting, "seed": seed})
    return runs


def sweep(tasks: list[str], methods: list[str], seeds: list[int], output_dir: str | Path,
          grid: dict[str, list] | None = None, progress: bool = True, **common) -> list[Path]:
    """Run the grid; ``common`` are ``GlueConfig`` options shared by every run. Returns the result files.

    Every run's options, model and data files are checked before the first run starts.
    """
    root = Path(output_dir)
    paths = []
    runs = plan(tasks, methods, seeds, grid)
    check_sweep(runs, root, grid or {}, common)
    for run in tqdm(runs, desc="sweep", disable=not progress):
        folder = root / run["task"] / run["method"] / _setting_name(run["setting"]) / f"seed{run['seed']}"
        run_glue(run["task"], run["method"], seed=run["seed"], output_dir=folder, progress=False,
                 **_options(run, common))
        paths.append(folder / RESULT_NAME)
    return paths


def _options(run: dict, common: dict) -> dict:
    """A run's options: the shared ones its method uses (``--set xi=1`` reaches only SoRA), then its setting."""
    shared = {k: v for k, v in common.items() if uses(run["method"], k)}
    return {**shared, **run["setting"]}


def check_sweep(runs: list[dict], root: Path, grid: dict[str, list], common: dict) -> None:
    """Refuse, before anything trains: options the sweep sets itself or that do not exist, an output folder that
    is a file, any run whose options are invalid, and missing model folders or GLUE files."""
    for name in [*grid, *common]:
        if name in SWEEP_SETS:
            raise UsageError(f"{name} is set per run by the sweep; use {SWEEP_SETS[name]} instead of --set/--grid")
        known = [f for f in options(GlueConfig) if f not in SWEEP_SETS]
        if name not in known:
            raise UsageError(f"unknown option {name!r} in the sweep's grid or --set; valid options: {', '.join(known)}")
    if not runs:
        raise UsageError("the sweep has no runs: give at least one task, method and seed")
    check_output_dir(root)
    for name, values in grid.items():  # also values no planned run uses (e.g. xi in a sweep without sora)
        for value in values:
            method = METHOD_ONLY.get(name, runs[0]["method"])
            others = {k: v[0] for k, v in grid.items() if uses(method, k)}  # (prox needs xi)
            user_input(GlueConfig, task=runs[0]["task"], method=method,
                       **{**_options({"method": method, "setting": {}}, common), **others, name: value})
    checked = set()
    for run in runs:
        config = user_input(GlueConfig, task=run["task"], method=run["method"], seed=run["seed"],
                            **_options(run, common))
        key = (config.task, config.model_name_or_path, config.data_dir)
        if key not in checked:
            checked.add(key)
            check_run(config)


def _same(value: Any) -> Any:
    """A setting's value as the report compares and names it: 3.0 and 3 are one setting (a recipe's 3.0 epochs and a
    --set of 3 reuse each other's results too)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _fmt(values: list[float]) -> str:
    """Mean ± std over seeds; degenerate runs (score NaN, see ``soralab.results``) are left out and counted."""
    good = [v for v in values if not math.isnan(v)]
    note = f" ({len(values) - len(good)} of {len(values)} degenerate)" if len(good) < len(values) else ""
    if not good:
        return "degenerate (NaN)" if values else ""
    if len(good) == 1:
        return f"{good[0]:.2f}{note}"
    return f"{statistics.mean(good):.2f} ± {statistics.stdev(good):.2f}{note}"


def _mean_score(results: list[GlueResult]) -> float:
    good = [r.score for r in results if not r.degenerate]
    return statistics.mean(good) if good else math.nan


def collect(output_dir: str | Path) -> list[GlueResult]:
    return [GlueResult.from_json(p) for p in sorted(Path(output_dir).rglob(RESULT_NAME))]


def report(output_dir: str | Path, markdown: str | Path | None = None, csv_path: str | Path | None = None,
           references: bool = True) -> str:
    """Mean ± std over seeds per (method, setting) and task (its main metric named in the header), with parameters
    and time; Markdown and CSV."""
    check_output_file(markdown, "markdown", "table.md")
    check_output_file(csv_path, "csv_path", "table.csv")
    results = collect(output_dir)
    if not results:
        raise MissingFileError(f"no {RESULT_NAME} under {output_dir}; run `soralab sweep` first")
    # A row's "setting" is whatever differs between runs of the same method on the same task, seed aside, so
    # options that differ only from task to task (e.g. a subset size per task) do not split a method's row; nor does
    # where a value came from (from_recipe: the recipe, or given, with the same value).
    configs = defaultdict(list)
    for r in results:
        configs[(r.config["method"], r.config["task"])].append(r.config)
    varying = defaultdict(set)
    for (method, _), cs in configs.items():
        varying[method] |= {k for k in cs[0] if k not in ("seed", "from_recipe")
                            and len({json.dumps(_same(c.get(k))) for c in cs}) > 1}
    groups: dict[tuple, dict[str, list[GlueResult]]] = defaultdict(lambda: defaultdict(list))
    shown: dict[tuple, str] = {}  # a group's setting as its first run wrote it (xi=1.0, not the compared xi=1)
    for r in results:
        c = r.config
        key = (c["method"], _setting_name({k: _same(c[k]) for k in varying[c["method"]]}), c["model_name_or_path"])
        groups[key][c["task"]].append(r)
        shown.setdefault(key, _setting_name({k: c[k] for k in varying[c["method"]]}))
    tasks = sorted({r.config["task"] for r in results})
    header = ["method", "setting", "model", *(f"{t} ({get_task(t).main_metric})" for t in tasks), "mean",
              "params after prune", "seeds", "time (s)"]
    rows = []
    for (method, key, model), by_task in sorted(groups.items()):
        setting = shown[(method, key, model)]
        means = [m for t in tasks if by_task.get(t) and not math.isnan(m := _mean_score(by_task[t]))]
        all_runs = [r for rs in by_task.values() for r in rs]
        rows.append([method, setting, Path(model).name, *(_fmt([r.score for r in by_task.get(t, [])]) for t in tasks),
                     f"{statistics.mean(means):.2f}" if len(means) == len(tasks) else "",
                     f"{statistics.mean(r.params_after_prune for r in all_runs):,.0f}",
                     str(max(len(v) for v in by_task.values())),
                     f"{statistics.mean(r.wall_time_s for r in all_runs):.0f}"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    text = "\n".join(lines)
    if references and REFERENCES.is_file():
        text += "\n\n" + reference_table(tasks)
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *rows])
    if markdown:
        atomic_write_text(markdown, text + "\n")
    if csv_path:
        atomic_write_text(csv_path, buf.getvalue())
    return text


def reference_table(tasks: list[str]) -> str:
    """The literature's numbers for the same tasks (``soralab/data/reference_glue.csv``, source named there)."""
    lines = [ln for ln in REFERENCES.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    # the whole note: which paper and table, and each task's metric (theirs may differ from ours: MRPC accuracy)
    source = [ln[2:] for ln in REFERENCES.read_text(encoding="utf-8").splitlines() if ln.startswith("# ")]
    rows = list(csv.DictReader(lines))
    cols = [t for t in tasks if t in rows[0]]
    out = ["Reference (" + " ".join(source) + "):", "",
           "| method | model | params | " + " | ".join(cols) + " |", "|---|---|---|" + "---|" * len(cols)]
    out += [f"| {r['method']} | {r['model']} | {r['params']} | " + " | ".join(r[c] for c in cols) + " |" for r in rows]
    return "\n".join(out)


def _split(item: str, example: str) -> tuple[str, str]:
    if "=" not in item:
        raise UsageError(f"options look like {example}, got {item!r}")
    name, value = item.split("=", 1)
    return name.strip(), value


def parse_grid(items: list[str]) -> dict[str, list]:
    """``["xi=1,3.5", "r=4,8"]`` -> ``{"xi": [1, 3.5], "r": [4, 8]}``: each value parsed by the type of the
    ``GlueConfig`` field it sets (``soralab.validate.parse_option``); unknown names are refused.

    Values are separated by commas; a list option joins its names with ``+`` (``target_modules=query+value,query``).
    """
    grid = {}
    for item in items:
        name, values = _split(item, "name=v1,v2 (e.g. xi=1,3)")
        field = GlueConfig.__dataclass_fields__.get(name)
        is_list = field is not None and field_kind(field)[0] == "list"
        if name in grid:
            raise UsageError(f"--grid names {name} twice; give its values once, comma-separated: {name}=v1,v2")
        grid[name] = [parse_option(GlueConfig, name, v.replace("+", ",") if is_list else v) for v in values.split(",")]
    return grid


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["torch_compile=false", "target_modules=query,value"]`` ->
    ``{"torch_compile": False, "target_modules": ["query", "value"]}``:
    one value per option, parsed by the type of its ``GlueConfig`` field; unknown names are refused."""
    options = {}
    for item in items:
        name, value = _split(item, "name=value (e.g. max_train_samples=1000)")
        options[name] = parse_option(GlueConfig, name, value)
    return options
