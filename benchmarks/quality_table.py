"""The quality record's tables from a finished (or partial) ``benchmarks/quality.sh`` run.

Writes ``benchmarks/quality_results.csv`` (one row per run, the columns below) and ``benchmarks/quality_results.md``
(per task mean ± std over seeds, the paired SoRA-minus-LoRA and SoRA-minus-AdaLoRA differences with a 95%
t-interval over seeds, SoRA's parameters after pruning as a share of theirs, the issue's bars, each task's
majority-class baseline, and the literature's DeBERTaV3-base rows, one source per table).

    python benchmarks/quality_table.py runs/quality
    python benchmarks/quality_table.py runs/quality --other-rows runs/quality-sst2-20k
    python benchmarks/quality_table.py runs/quality-v3 --name quality_v3 --against runs/quality

``--name`` picks the files' stem (``quality``: the record; another stem keeps a second record, say one made with
newer defaults, beside it); a hand-written ``<name>_reading.md`` beside them is appended to the Markdown.
``--against`` adds this record minus another one, paired by seed (the same recipe under another default, say).
``--other-rows`` adds a section for runs of a task on another number of training rows than the record's (SST-2 on
20,000 rows or on all 67,349, the recipe's default): shown beside the record, never pooled into it.

``runs/`` is not committed and does not survive a fresh clone, so every table run first copies each ``result.json``
under the root into ``benchmarks/records/<name>/`` (committed, same relative paths, no weights) and reads the runs
from there. ``--restore`` copies them back into the root, where they are missing, so that ``quality.sh`` reuses them
instead of training them again. ``--against`` also takes another record's committed CSV (``quality_results.csv``)
when its runs are gone.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import statistics
from collections import defaultdict
from pathlib import Path

from soralab.experiments import glue, metrics
from soralab.experiments.run_config import RESULT_NAME
from soralab.experiments.stats import paired
from soralab.experiments.sweep import collect
from soralab.files import atomic_write_text

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "soralab" / "data"
COLUMNS = ["task", "method", "seed", "metric", "score", "params_after_prune", "trainable_params", "wall_time_s"]
TASKS = ["mrpc", "rte", "stsb", "sst2"]
METHODS = ["lora", "sora", "adalora", "bitfit"]
COUNT = {1: "one", 2: "two", 3: "three", 4: "four"}
SHOWN = {"lora": "LoRA", "sora": "SoRA", "adalora": "AdaLoRA", "bitfit": "BitFit"}  # how the title names a method
TITLES = {"quality": "Quality record v2", "quality_v3": "Quality record v3 (today's defaults: model dropout off)"}
# How each record's runs are made (quality.sh's variables; the v2 record pins the checkpoint's dropout by default)
COMMANDS = {"quality": "SORALAB_GLUE_DIR=../shared/data/glue bash benchmarks/quality.sh",
            "quality_v3": "SET= OTHER= OUT=runs/quality-v3 NAME=quality_v3 AGAINST=benchmarks/quality_results.csv "
                          "bash benchmarks/quality.sh"}
BARS = {"sst2": 88.0, "mrpc": 86.0, "stsb": 84.0, "rte": 60.0}  # LoRA with the recipes, mean over seeds


def ranks_kept(result) -> float | None:
    """Live ranks at the end of a run, in % of r x adapted modules (None for a run without ranks)."""
    if not result.active_ranks:
        return None
    return 100 * sum(result.active_ranks.values()) / (result.config["r"] * len(result.active_ranks))


def rows(root: Path) -> list[dict]:
    out = []
    for r in collect(root):
        c = r.config
        kept = ranks_kept(r)
        out.append({"task": c["task"], "method": c["method"], "seed": c["seed"], "metric": r.main_metric,
                    "score": round(r.score, 4), "params_after_prune": r.params_after_prune,
                    "trainable_params": r.trainable_params, "wall_time_s": round(r.wall_time_s, 1),
                    # not CSV columns: the Markdown shows them
                    "ranks_kept": kept, "device": device(r),
                    "dropout": c["model_dropout"],  # from_json fills it for runs saved before the option
                    "rows": "all" if c["max_train_samples"] is None else f"{c['max_train_samples']:,}"})
    return sorted(out, key=lambda d: (TASKS.index(d["task"]) if d["task"] in TASKS else 99, d["method"], d["seed"]))


def mirror(src: Path, dst: Path, overwrite: bool) -> int:
    """Copy every result.json under ``src`` to the same relative path under ``dst`` (only where missing unless
    ``overwrite``); returns how many were written."""
    n = 0
    for p in sorted(src.rglob(RESULT_NAME)):
        dest = dst / p.relative_to(src)
        text = p.read_text(encoding="utf-8")
        if not dest.is_file() or (overwrite and dest.read_text(encoding="utf-8") != text):
            atomic_write_text(dest, text)
            n += 1
    return n


def missing(committed: Path, data: list[dict]) -> list[tuple[str, str, int]]:
    """(task, method, seed) of the rows in a committed CSV that ``data`` lacks: a table must not silently drop them."""
    if not committed.is_file():
        return []
    have = {(d["task"], d["method"], d["seed"]) for d in data}
    return [k for r in csv.DictReader(committed.read_text(encoding="utf-8").splitlines())
            if (k := (r["task"], r["method"], int(r["seed"]))) not in have]


def from_csv(path: Path) -> list[dict]:
    """Another record's committed CSV as rows (its dropout, device and rows are not in it)."""
    if not path.is_file():
        raise SystemExit(f"--against {path}: no such file; give a record's folder of runs or its _results.csv")
    out = []
    for r in csv.DictReader(path.read_text(encoding="utf-8").splitlines()):
        if set(COLUMNS) - set(r):
            raise SystemExit(f"--against {path}: not a record's CSV (columns {', '.join(COLUMNS)})")
        out.append({**r, "seed": int(r["seed"]), "score": float(r["score"]), "dropout": "not in the CSV"})
    return out


def device(result) -> str:
    """Where a run ran, from the environment its result records (runs saved before that field existed: the CPU)."""
    where = result.environment.get("device", "cpu*")
    kind = where.split(":")[1].strip().replace("NVIDIA ", "") + " GPU" if where.startswith("cuda") else "CPU"
    return f"{kind}{'*' if where == 'cpu*' else ''}, {result.config['precision']}"


def mean_std(xs: list[float]) -> str:
    """Mean ± sample std of the scores; a NaN (a degenerate run, no score) is left out and counted."""
    nan = sum(math.isnan(x) for x in xs)
    xs = [x for x in xs if not math.isnan(x)]
    text = (f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs):.2f}" if len(xs) > 1
            else f"{xs[0]:.2f}" if xs else "")
    return text + (f" ({nan} degenerate left out)" if nan else "")


def baseline(task: str, data_dir: str | None = None) -> float:
    """Majority-class score x100 on the dev set (``soralab.experiments.metrics.majority_baseline``)."""
    data = glue.load_glue(task, data_dir)
    return 100 * metrics.majority_baseline(task, data["train"]["label"], data["validation"]["label"])


def literature(path: Path, tasks: list[str]) -> str:
    text = path.read_text(encoding="utf-8").splitlines()
    source = " ".join(ln[2:] for ln in text if ln.startswith("# "))
    table = list(csv.DictReader(ln for ln in text if ln and not ln.startswith("#")))
    lines = [f"*{source}*", "", "| method | params | " + " | ".join(tasks) + " |", "|---|---|" + "---|" * len(tasks)]
    lines += [f"| {r['method']} | {r['params']} | " + " | ".join(r[t] for t in tasks) + " |" for r in table]
    return "\n".join(lines)


def by_seed(data: list[dict]) -> dict[tuple[str, str], dict[int, dict]]:
    """(task, method) -> {seed: row}."""
    by = defaultdict(dict)
    for d in data:
        if d["seed"] in by[(d["task"], d["method"])]:
            raise SystemExit(f"two runs of {d['task']} / {d['method']} with seed {d['seed']}: a record holds one per "
                             "task, method and seed (move one out of the record's folder)")
        by[(d["task"], d["method"])][d["seed"]] = d
    return by


def other_rows(extra: list[dict], data: list[dict]) -> list[str]:
    """Runs on another number of training rows than the record's, against the record's runs of the same seeds: each
    method's change with the rows, SoRA minus LoRA, LoRA's bar, and SoRA's bar with these runs in place of the
    record's."""
    by, rec = by_seed(extra), by_seed(data)
    out = ["## Other training rows, beside the record (`--other-rows`; not pooled into the tables above)", "",
           "| task | rows | method | seeds | score | the record, same seeds | these rows - record, paired | "
           "time (s) |", "|---|---|---|---|---:|---:|---|---:|"]
    order = {m: i for i, m in enumerate(METHODS)}
    for (t, m), runs in sorted(by.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 99), kv[0][1])):
        same = {s: r["score"] for s, r in rec.get((t, m), {}).items() if s in runs}
        p = paired({s: r["score"] for s, r in runs.items()}, same)
        out.append(f"| {t} | {', '.join(sorted({r['rows'] for r in runs.values()}))} | {m} | "
                   f"{', '.join(map(str, sorted(runs)))} | "
                   f"{mean_std([r['score'] for r in runs.values()])} | {mean_std(list(same.values()))} | "
                   + (p.summary() if p else "") + " | "
                   + f"{statistics.mean(r['wall_time_s'] for r in runs.values()):.0f} |")
    out.append("")
    for t in sorted({t for t, _ in by}):
        lo, so = by.get((t, "lora"), {}), by.get((t, "sora"), {})
        p = paired({s: r["score"] for s, r in so.items()}, {s: r["score"] for s, r in lo.items()})
        if p:
            out.append(f"- {t}, SoRA minus LoRA paired by seed on these rows: {p.summary()}, {p.n} pairs.")
        if lo:
            m = statistics.mean(r["score"] for r in lo.values())
            out.append(f"- {t}, LoRA's bar ({BARS[t]:.0f}) on these rows: {m:.2f}, "
                       f"{'holds' if m >= BARS[t] else '**does not hold**'} (n = {len(lo)} seeds).")
    swapped = dict(rec)
    swapped.update({k: v for k, v in by.items() if k[1] in ("lora", "sora")})
    tasks = [t for t in TASKS if (t, "lora") in swapped]
    if all((t, m) in swapped for t in tasks for m in ("lora", "sora")) and \
            any((t, "lora") in by and (t, "sora") in by for t in tasks):
        n = {t: min(len(by.get((t, m), {})) for m in ("lora", "sora")) for t, _ in by}
        out += ["", "SoRA's bar with these rows in place of the record's for LoRA and SoRA ("
                + ", ".join(f"{t}: {k} seeds" for t, k in sorted(n.items())) + "; the other tasks: the record's):", ""]
        return out + sora_bar(swapped, tasks)[2:]
    return out + [""]


def dropout(data: list[dict]) -> str:
    """The pretrained model's dropout in these runs, in words (``GlueConfig.model_dropout``; None: the checkpoint's)."""
    said = {None: "the checkpoint's own, 0.1", 0.0: "off"}
    count = {v: sum(d["dropout"] == v for d in data) for v in {d["dropout"] for d in data}}
    def rank(v):  # the checkpoint's first, then by value; words (a CSV's "not in the CSV") last
        return -1.0 if v is None else 99.0 if isinstance(v, str) else v
    return ", ".join(f"{said.get(v, v)} ({n} run{'s' * (n != 1)})" for v, n in sorted(count.items(),
                                                                                     key=lambda kv: rank(kv[0])))


def where_pairs_ran(data: list[dict]) -> str:
    """Whether the runs that the tables pair shared one device and precision (``device``: "CPU, bf16", ...)."""
    every = {d["device"].replace("*", "") for d in data}
    if len(every) == 1:
        return f"Every run ran on one device and precision ({every.pop()}), so each pair shares them."
    devs = {d["device"].replace("*", "") for d in data if d["method"] in ("lora", "sora")}
    if len(devs) == 1:
        return (f"LoRA and SoRA ran on one device and precision ({devs.pop()}) for every seed, so each SoRA-minus-LoRA "
                "pair shares them; the other methods' runs did not all (below), so their pairs may not.")
    return "The runs ran on more than one device or precision (below); a pair may not share them."


def against(data: list[dict], other: list[dict], other_root: str) -> list[str]:
    """This record minus another (say, the same recipe with another default), paired by seed per task and method."""
    by, them = by_seed(data), by_seed(other)
    mine_at, theirs_at = ({d["device"].replace("*", "") for d in rows if d.get("device")} for rows in (data, other))
    where = (f"Those runs' device and precision are not in their CSV; these ran on {', '.join(sorted(mine_at))}. A "
             "difference here also holds any change of device or precision between the two records (each record's "
             "table of where its runs ran says)." if not theirs_at else
             f"Both records ran on {', '.join(sorted(mine_at))}." if mine_at == theirs_at else
             f"These runs ran on {', '.join(sorted(mine_at))}, those on {', '.join(sorted(theirs_at))}: a difference "
             "here also holds that change.")
    out = [f"## Against `{other_root}` (paired by seed: these runs minus those; their dropout: {dropout(other)})", "",
           where, "",
           "| task | method | seeds | these runs | those runs, same seeds | difference (95%) |",
           "|---|---|---|---:|---:|---|"]
    for t in TASKS:
        for m in METHODS:
            mine, theirs = by.get((t, m), {}), them.get((t, m), {})
            seeds = sorted(set(mine) & set(theirs))
            if not seeds:
                continue
            a, b = ({s: runs[s]["score"] for s in seeds} for runs in (mine, theirs))
            p = paired(a, b)
            out.append(f"| {t} | {m} | {', '.join(map(str, seeds))} | {mean_std(list(a.values()))} | "
                       f"{mean_std(list(b.values()))} | "
                       + (p.summary() if p else
                          f"{statistics.mean(a.values()) - statistics.mean(b.values()):+.2f} (one seed)") + " |")
    return out + [""]


def sora_minus(by: dict, tasks: list[str], base: str) -> list[str]:
    """SoRA minus ``base`` per task, paired by seed, with SoRA's parameters after pruning as a share of ``base``'s."""
    name = SHOWN[base]
    out = [f"## SoRA minus {name}, paired by seed (95% t-interval over seeds)", "",
           f"| task | difference | 95% interval | pairs | SoRA params after pruning / {name}'s | SoRA ranks kept |",
           "|---|---:|---|---:|---:|---:|"]
    for t in tasks:
        bo, so = by.get((t, base), {}), by.get((t, "sora"), {})
        p = paired({s: r["score"] for s, r in so.items()}, {s: r["score"] for s, r in bo.items()})
        share = (statistics.mean(r["params_after_prune"] for r in so.values()) /
                 statistics.mean(r["params_after_prune"] for r in bo.values())) if bo and so else None
        kept = [r["ranks_kept"] for r in so.values() if r["ranks_kept"] is not None]
        out.append(f"| {t} | " + (f"{p.mean:+.2f} | {p.bounds()} | {p.n}" if p else "| | ")
                   + (f" | {share:.1%}" if share is not None else " | ")
                   + (f" | {statistics.mean(kept):.1f}% |" if kept else " | |"))
    if base == "adalora":
        rows = [r for t in tasks for r in by.get((t, base), {}).values()]
        if rows and all(r["params_after_prune"] == r["trainable_params"] for r in rows):  # counted before 2026-11-29
            out += ["", "AdaLoRA's count is its trainable parameters (the run's `params_after_prune`: PEFT's AdaLoRA "
                    "starts at rank 12 and masks ranks, it cuts none); its final budget, an average rank of 8, would "
                    "store about LoRA's count."]
        elif any(r["params_after_prune"] == r["trainable_params"] for r in rows):
            out += ["", "AdaLoRA's count mixes two ways of counting: some runs have their trainable rank-12 count, "
                    "others their final ranks; run `benchmarks/recount_adalora.py` on this record's runs to make "
                    "them one."]
        else:
            out += ["", "AdaLoRA's count is at the ranks its allocator left (an average of 8 per module): what its "
                    "final allocation stores as a plain LoRA, plus the head (`soralab.experiments.methods."
                    "pruned_params`). PEFT trains it at rank 12 (`trainable_params`) and masks ranks, cutting none. "
                    "Runs saved before 2026-11-29 had the rank-12 count here; `benchmarks/recount_adalora.py` "
                    "recounted them from the ranks each result kept."]
    return out + [""]


def markdown(data: list[dict], extra: list[dict] | None = None, name: str = "quality",
             other: tuple[str, list[dict]] | None = None, root: str = "runs/quality") -> str:
    by = by_seed(data)
    tasks = [t for t in TASKS if any(k[0] == t for k in by)]
    methods = [m for m in METHODS if any(k[1] == m for k in by)]
    seeds = sorted({d["seed"] for d in data})
    shown = [SHOWN[m] for m in methods]
    out = [f"# {TITLES.get(name, f'Quality record {name}')}: "
           + (", ".join(shown[:-1]) + " and " + shown[-1] if len(shown) > 1 else "".join(shown))
           + f" on {COUNT.get(len(tasks), len(tasks))} GLUE task{'s' if len(tasks) != 1 else ''} (MiniLM)", "",
           f"Generated by `python benchmarks/quality_table.py {root}"
           + ("" if name == "quality" else f" --name {name}") + (f" --against {other[0]}" if other else "")
           + "` from the runs of "
           f"`{COMMANDS.get(name, f'NAME={name} bash benchmarks/quality.sh')}`; every run's numbers are in "
           f"`{name}_results.csv`. Model: the packaged all-MiniLM-L6-v2 (22.7M parameters). Scores are x100 on the "
           "GLUE dev set (MRPC F1, STS-B Pearson, SST-2 and RTE accuracy), at the best of one evaluation per epoch. "
           "Every training value comes from `soralab.experiments.recipes` (chosen on held-out training data, "
           "`benchmarks/recipes_results.md`), the same for LoRA and SoRA on a task; full fine-tuning, BitFit and "
           "(in runs made since 2026-11-29, after record v2) AdaLoRA have learning rates of their own; SoRA keeps "
           "50% of its ranks (the recipe's `keep`) with the recipe's schedule: xi rises from 5% of the run, the live "
           "share reaches `keep` at 40%, and then the cut is final (xi 0, dead ranks held at zero; "
           "`keep_schedule_results.md`). " + where_pairs_ran(data), "",
           f"The pretrained model's dropout: {dropout(data)}.", "",
           f"Runs so far: {len(data)}; seeds present: {', '.join(map(str, seeds))}. Training rows: "
           + ", ".join(f"{t} {'/'.join(sorted({d['rows'] for d in data if d['task'] == t}))}" for t in tasks) + ".", ""]
    out += devices(data)
    base = {t: baseline(t) for t in tasks}
    out += ["## Score per task (mean ± std over seeds; n = seeds)", "",
            "| method | " + " | ".join(f"{t} ({by[(t, methods[0])][next(iter(by[(t, methods[0])]))]['metric']})"
                                    if by.get((t, methods[0])) else t for t in tasks) + " | mean | n |",
            "|---|" + "---:|" * (len(tasks) + 2)]
    for m in methods:
        cells, means = [], []
        for t in tasks:
            xs = [r["score"] for r in by.get((t, m), {}).values()]
            cells.append(mean_std(xs))
            means.append(statistics.mean(xs) if xs else None)
        avg = f"{statistics.mean(means):.2f}" if means and all(x is not None for x in means) else ""
        n = min((len(by.get((t, m), {})) for t in tasks), default=0)
        out.append(f"| {m} | " + " | ".join(cells) + f" | {avg} | {n} |")
    out.append("| *majority class* | " + " | ".join(f"{base[t]:.2f}" for t in tasks) + " | | |")
    out += ["", "The majority-class row predicts the most frequent training label for every dev example (STS-B: a "
            "constant, whose Pearson counts as 0). A score at or below it means the run learned nothing.", ""]
    for base_method in ("lora", "adalora"):  # SoRA against each baseline it is measured against
        if base_method in methods and "sora" in methods:
            out += sora_minus(by, tasks, base_method)
    if "lora" in methods:
        out += ["## The issue's bars for LoRA (mean over seeds)", "", "| task | bar | LoRA | holds |",
                "|---|---:|---:|---|"]
        for t in tasks:
            xs = [r["score"] for r in by.get((t, "lora"), {}).values()]
            if xs:
                out.append(f"| {t} | {BARS[t]:.0f} | {statistics.mean(xs):.2f} | "
                           f"{'yes' if statistics.mean(xs) >= BARS[t] else '**no**'} |")
        out.append("")
    if "lora" in methods and "sora" in methods:
        out += sora_bar(by, tasks)
    out += ["## Time per run (s, mean over seeds, per device)", ""]
    if any("GPU" in d["device"] for d in data):
        out += ["GPU runs shared the card with up to 11 others (`JOBS=12`), so their times are upper bounds.", ""]
    out += ["| method | device | " + " | ".join(tasks) + " |", "|---|---|" + "---:|" * len(tasks)]
    for m in methods:
        for dev in sorted({d["device"] for d in data}):
            cells = [[r["wall_time_s"] for r in by.get((t, m), {}).values() if r["device"] == dev] for t in tasks]
            if any(cells):
                out.append(f"| {m} | {dev} | " + " | ".join(f"{statistics.mean(c):.0f}" if c else "" for c in cells)
                           + " |")
    if extra:
        out += ["", *other_rows(extra, data)]
    if other:
        out += ["", *against(data, other[1], other[0])]
    reading = HERE / f"{name}_reading.md"  # the hand-written reading of the numbers so far, kept beside them
    if reading.is_file():
        out += ["", reading.read_text(encoding="utf-8").strip()]
    out += ["", "## The literature (DeBERTaV3-base, 184M parameters: a far larger model; one source per table)", "",
            literature(DATA / "reference_glue.csv", tasks), "", literature(DATA / "reference_aflora.csv", tasks), ""]
    return "\n".join(out)


def devices(data: list[dict]) -> list[str]:
    """Which seeds ran where, and each method's mean per task on each device (does the hardware move the score?)."""
    where = defaultdict(set)
    for d in data:
        where[d["device"]].add(d["seed"])
    out = ["## Where the runs ran", "", "| device, precision | seeds | runs |", "|---|---|---:|"]
    out += [f"| {dev} | {', '.join(map(str, sorted(seeds)))} | {sum(d['device'] == dev for d in data)} |"
            for dev, seeds in sorted(where.items())]
    if any("*" in dev for dev in where):
        out.append("\n\\* saved before results recorded their environment; every such run was made on the "
                   "project's 2-core CPU (the GPU was first used later).")
    if len(where) > 1:
        out += ["", "Mean score per device (same task and method; only cells with runs on more than one device):",
                "", "| task | method | " + " | ".join(sorted(where)) + " |", "|---|---|" + "---:|" * len(where)]
        cells = defaultdict(list)
        for d in data:
            cells[(d["task"], d["method"], d["device"])].append(d["score"])
        for t in TASKS:
            for m in METHODS:
                row = [cells.get((t, m, dev)) for dev in sorted(where)]
                if sum(bool(c) for c in row) > 1:
                    out.append(f"| {t} | {m} | " + " | ".join(
                        f"{statistics.mean(c):.2f} (n={len(c)})" if c else "" for c in row) + " |")
    return out + [""]


def sora_bar(by: dict, tasks: list[str]) -> list[str]:
    """The issue's bar for SoRA: mean over the tasks >= LoRA's, with at most 70% of LoRA's parameters."""
    def mean_over_tasks(m):
        per = [[r["score"] for r in by.get((t, m), {}).values()] for t in tasks]
        return statistics.mean(statistics.mean(x) for x in per) if all(per) else None
    lora, sora = mean_over_tasks("lora"), mean_over_tasks("sora")
    if lora is None or sora is None:
        return []
    share = statistics.mean(
        statistics.mean(r["params_after_prune"] for r in by[(t, "sora")].values()) /
        statistics.mean(r["params_after_prune"] for r in by[(t, "lora")].values()) for t in tasks)
    holds = sora >= lora and share <= 0.70
    return ["## The issue's bar for SoRA (mean over the four tasks)", "",
            "| SoRA | LoRA | SoRA - LoRA | SoRA params / LoRA's | holds (>= LoRA at <= 70%) |",
            "|---:|---:|---:|---:|---|",
            f"| {sora:.2f} | {lora:.2f} | {sora - lora:+.2f} | {share:.1%} | {'yes' if holds else '**no**'} |", ""]


def main(root: str, extra_root: str | None = None, name: str = "quality", against_root: str | None = None) -> None:
    keep = HERE / "records" / name
    mirror(Path(root), keep, overwrite=True)  # the runs outlive runs/ (committed)
    data = rows(keep)
    if not data:
        raise SystemExit(f"no result.json under {root} or {keep}; run benchmarks/quality.sh first")
    lost = missing(HERE / f"{name}_results.csv", data)
    if lost:
        raise SystemExit(f"{name}_results.csv holds {len(lost)} run(s) whose result.json is neither under {root} nor "
                         f"in {keep} (made before runs were kept there), e.g. {' '.join(map(str, lost[0]))}; the "
                         "table would drop them. Rerun them into the root first (quality.sh with their SEEDS "
                         "reproduces them), or write a new record with another --name")
    extra = rows(Path(extra_root)) if extra_root else None
    if extra_root and not extra:
        raise SystemExit(f"--other-rows {extra_root}: no result.json there; give the --output-dir of those runs")
    if against_root and Path(against_root).suffix == ".csv":
        other = (against_root, from_csv(Path(against_root)))
    else:
        other = (against_root, rows(Path(against_root))) if against_root else None
    if other and not other[1]:
        raise SystemExit(f"--against {against_root}: no result.json there; give another record's --output-dir "
                         "or its committed _results.csv")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(data)
    csv_path, md_path = HERE / f"{name}_results.csv", HERE / f"{name}_results.md"
    atomic_write_text(csv_path, buf.getvalue())  # beside, then renamed: never half-written
    atomic_write_text(md_path, markdown(data, extra, name, other, root))
    print(f"{len(data)} runs -> {csv_path}, {md_path}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", nargs="?", default="runs/quality", help="the record's --output-dir (runs/quality)")
    ap.add_argument("--other-rows", help="runs of a task on another number of training rows, shown beside the "
                                         "record (runs/quality-sst2-20k)")
    ap.add_argument("--name", default="quality", help="the files' stem: benchmarks/<name>_results.csv and .md "
                                                     "(default quality, the record; quality_v3 for today's defaults)")
    ap.add_argument("--against", help="another record's --output-dir or committed CSV: this one minus that one, "
                                      "paired by seed (runs/quality or benchmarks/quality_results.csv)")
    ap.add_argument("--restore", action="store_true", help="copy the committed runs (benchmarks/records/<name>) back "
                                                           "into the root where missing, write no table")
    a = ap.parse_args()
    if not a.name.replace("_", "").isalnum():
        ap.error(f"--name {a.name!r}: use letters, digits and '_' only (a file stem, like quality_v3)")
    if a.restore:
        print(f"{mirror(HERE / 'records' / a.name, Path(a.root), overwrite=False)} runs restored into {a.root}")
    else:
        main(a.root, a.other_rows, a.name, a.against)
