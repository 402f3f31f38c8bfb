"""Grids of GLUE runs (``sweep``) and their aggregation into a table (``report``).

Each run writes ``<root>/<task>/<method>/<setting>/seed<k>/result.json``; a sweep that is interrupted
and started again skips every run whose result is already there (``run_glue`` reuses it).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import statistics
from collections import defaultdict
from pathlib import Path

from tqdm.auto import tqdm

from .io import atomic_write_text
from .train import RESULT_NAME, GlueResult, run_glue

# Options that only mean something for one method; a grid over them does not multiply the other methods' runs.
METHOD_ONLY = {"xi": "sora", "gate_lr": "sora", "prox": "sora", "gate_init": "sora", "gate_l1_loss": "sora",
               "num_basis": "nola"}
REFERENCES = Path(__file__).resolve().parents[1] / "data" / "reference_glue.csv"


def _setting_name(setting: dict) -> str:
    return "_".join(f"{k}={v}" for k, v in sorted(setting.items())) or "default"


def plan(tasks: list[str], methods: list[str], seeds: list[int], grid: dict[str, list] | None = None) -> list[dict]:
    """Every (task, method, setting, seed) of the sweep, without duplicates."""
    grid = grid or {}
    runs, seen = [], set()
    for task, method, seed in itertools.product(tasks, methods, seeds):
        keys = [k for k in grid if METHOD_ONLY.get(k, method) == method]
        for values in itertools.product(*(grid[k] for k in keys)):
            setting = dict(zip(keys, values, strict=True))
            key = (task, method, _setting_name(setting), seed)
            if key not in seen:
                seen.add(key)
                runs.append({"task": task, "method": method, "setting": setting, "seed": seed})
    return runs


def sweep(tasks: list[str], methods: list[str], seeds: list[int], output_dir: str | Path,
          grid: dict[str, list] | None = None, progress: bool = True, **common) -> list[Path]:
    """Run the grid; ``common`` are ``GlueConfig`` options shared by every run. Returns the result files."""
    root = Path(output_dir)
    paths = []
    runs = plan(tasks, methods, seeds, grid)
    for run in tqdm(runs, desc="sweep", disable=not progress):
        folder = root / run["task"] / run["method"] / _setting_name(run["setting"]) / f"seed{run['seed']}"
        run_glue(run["task"], run["method"], seed=run["seed"], output_dir=folder, progress=False,
                 **{**common, **run["setting"]})
        paths.append(folder / RESULT_NAME)
    return paths


def _fmt(values: list[float]) -> str:
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def collect(output_dir: str | Path) -> list[GlueResult]:
    return [GlueResult.from_json(p) for p in sorted(Path(output_dir).rglob(RESULT_NAME))]


def report(output_dir: str | Path, markdown: str | Path | None = None, csv_path: str | Path | None = None,
           references: bool = True) -> str:
    """Mean ± std over seeds per (method, setting) and task, with parameters and time; Markdown and CSV."""
    results = collect(output_dir)
    if not results:
        raise FileNotFoundError(f"no {RESULT_NAME} under {output_dir}; run `soralab sweep` first")
    # A row's "setting" is whatever differs between runs of the same method on the same task, seed aside, so
    # options that differ only from task to task (e.g. a subset size per task) do not split a method's row.
    configs = defaultdict(list)
    for r in results:
        configs[(r.config["method"], r.config["task"])].append(r.config)
    varying = defaultdict(set)
    for (method, _), cs in configs.items():
        varying[method] |= {k for k in cs[0] if k != "seed" and len({json.dumps(c.get(k)) for c in cs}) > 1}
    groups: dict[tuple, dict[str, list[GlueResult]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        c = r.config
        setting = {k: c[k] for k in varying[c["method"]]}
        groups[(c["method"], _setting_name(setting), c["model_name_or_path"])][c["task"]].append(r)
    tasks = sorted({r.config["task"] for r in results})
    header = ["method", "setting", "model", *tasks, "mean", "params after prune", "seeds", "time (s)"]
    rows = []
    for (method, setting, model), by_task in sorted(groups.items()):
        means = [statistics.mean(r.score for r in by_task[t]) for t in tasks if by_task.get(t)]
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
    """The literature's numbers for the same tasks (``data/reference_glue.csv``, source named there)."""
    lines = [ln for ln in REFERENCES.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    source = [ln[2:] for ln in REFERENCES.read_text(encoding="utf-8").splitlines() if ln.startswith("# ")][:2]
    rows = list(csv.DictReader(lines))
    cols = [t for t in tasks if t in rows[0]]
    out = ["Reference (" + " ".join(source) + "):", "",
           "| method | model | params | " + " | ".join(cols) + " |", "|---|---|---|" + "---|" * len(cols)]
    out += [f"| {r['method']} | {r['model']} | {r['params']} | " + " | ".join(r[c] for c in cols) + " |" for r in rows]
    return "\n".join(out)


def parse_grid(items: list[str]) -> dict[str, list]:
    """``["xi=1,3", "r=4,8"]`` -> ``{"xi": [1.0, 3.0], "r": [4, 8]}`` (numbers parsed, the rest kept as text)."""
    grid = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"grid entries look like name=v1,v2 (e.g. xi=1,3), got {item!r}")
        name, values = item.split("=", 1)
        grid[name.strip()] = [_parse_value(v.strip()) for v in values.split(",")]
    return grid


def _parse_value(v: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(v)
        except ValueError:
            pass
    return v
