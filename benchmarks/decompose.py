"""Why SoRA trails LoRA in quality record v3: its difference split into what the smaller budget costs and what SoRA's
allocation does at that budget, beside the gates alone.

    SoRA (keep 0.5) - LoRA r=8  =  [LoRA r=4 - LoRA r=8]  +  [SoRA (keep 0.5) - LoRA r=4]
                                    halving the rank          SoRA's ranks against uniform ones of about its size

SoRA at keep 0.5 stores 65% of LoRA r=8's parameters (the head included); LoRA r=4 stores 65% too, so the second
bracket compares the two at about equal size. LoRA r=4 keeps lora_alpha / r = 2, the scale of LoRA r=8 and SoRA
(SoRA's pruned ranks keep alpha / r_max), so that only the rank changes. A third line, SoRA at keep 1.0 (every rank
kept, gates trained) minus LoRA r=8, is the gated parameterisation alone. Every difference is paired by seed with a
95% t-interval (``soralab.experiments.stats.paired``) and pairs only runs made on the same device and precision.
These are dev-set numbers read after the fact: nothing here chooses a setting.

Runs (record v3's defaults, the paper's seeds, one run at a time on the 2-core CPU; resumable):

    for seed in 0 21 42 81 100; do
      soralab sweep --tasks stsb mrpc --methods lora --seeds $seed --grid r=4 lora_alpha=8 --output-dir runs/decompose
      soralab sweep --tasks stsb mrpc --methods sora --seeds $seed --grid keep=1.0 --output-dir runs/decompose
    done

The keep=1.0 runs were made again in session 21 (2026-11-29), after a fix: until then the keep schedule pulled the
gates (xi 0.1 and up from ``keep_start``) even at keep=1.0, and 1-4 of 288 ranks died on 6 of the 10 runs. The kept
runs are the new ones (the first are in git history, commit 44b6c8d; ``quality_v3_reading.md`` compares them).

Table, from kept result.json files: the runs above are kept in ``benchmarks/records/decompose`` (name
``runs/decompose`` instead after making them again), LoRA r=8 and SoRA keep 0.5 come from the record's
``benchmarks/records/quality_v3``:

    python benchmarks/decompose.py benchmarks/records/decompose benchmarks/records/quality_v3 \
        > benchmarks/decompose_results.md
"""

from __future__ import annotations

import argparse
import os
import statistics

from quality_table import device, mean_std

from soralab.experiments.stats import paired
from soralab.experiments.sweep import collect

TASKS = ("stsb", "mrpc")
# label: (method, r, keep)
VARIANTS = {"LoRA r=8": ("lora", 8, None), "LoRA r=4": ("lora", 4, None), "SoRA keep 0.5": ("sora", 8, 0.5),
            "SoRA keep 1.0": ("sora", 8, 1.0)}
DIFFERENCES = [  # (a, b, what a - b measures)
    ("SoRA keep 0.5", "LoRA r=8", "the record's SoRA minus LoRA"),
    ("LoRA r=4", "LoRA r=8", "halving LoRA's rank (the budget)"),
    ("SoRA keep 0.5", "LoRA r=4", "SoRA's ranks against uniform ones at about its size"),
    ("SoRA keep 1.0", "LoRA r=8", "the gates alone (every rank kept)"),
]


def variant(result) -> str | None:
    c = result.config
    for label, (method, r, keep) in VARIANTS.items():
        if c["method"] == method and c["r"] == r and c.get("keep") == keep and c["lora_alpha"] / c["r"] == 2:
            return label
    return None


def table(results) -> str:
    by: dict[tuple[str, str], dict[int, object]] = {}
    for res in results:
        if res.config["task"] in TASKS and (label := variant(res)) is not None:
            by.setdefault((res.config["task"], label), {})[res.config["seed"]] = res
    devices = sorted({device(r) for runs in by.values() for r in runs.values()})
    out = ["# Why SoRA trails LoRA on STS-B and MRPC (record v3's defaults)", "",
           "Made by `python benchmarks/decompose.py benchmarks/records/decompose benchmarks/records/quality_v3` "
           f"(its docstring has the commands). Devices: {', '.join(devices)}. Scores x100 on the GLUE dev set "
           "(STS-B Pearson, MRPC F1); parameters after pruning, head included, as a share of LoRA r=8's.", "",
           "| task | variant | seeds | score (mean ± std) | params after pruning | share of LoRA r=8's |",
           "|---|---|---|---:|---:|---:|"]
    for task in TASKS:
        base = by.get((task, "LoRA r=8"), {})
        base_params = statistics.mean(r.params_after_prune for r in base.values()) if base else None
        for label in VARIANTS:
            runs = by.get((task, label), {})
            if not runs:
                continue
            params = statistics.mean(r.params_after_prune for r in runs.values())
            share = f"{100 * params / base_params:.1f}%" if base_params else ""
            out.append(f"| {task} | {label} | {', '.join(map(str, sorted(runs)))} | "
                       f"{mean_std([r.score for r in runs.values()])} | {params:,.0f} | {share} |")
    out += ["", "Paired by seed (same device and precision only), 95% t-interval:", "",
            "| task | difference | measures | mean [95% interval] | pairs |", "|---|---|---|---|---:|"]
    for task in TASKS:
        for a, b, what in DIFFERENCES:
            ra, rb = by.get((task, a), {}), by.get((task, b), {})
            same = [s for s in set(ra) & set(rb) if device(ra[s]) == device(rb[s])]
            p = paired({s: ra[s].score for s in same}, {s: rb[s].score for s in same})
            cell = p.summary() if p else "fewer than two pairs"
            out.append(f"| {task} | {a} − {b} | {what} | {cell} | {p.n if p else len(same)} |")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", nargs="+", help="folders of result.json (the new runs, the record's kept runs)")
    args = parser.parse_args()
    for root in args.roots:  # a missing folder would silently drop its rows from the table
        if not os.path.isdir(root):
            parser.error(f"{root} is not a folder of result.json files (the kept runs are under benchmarks/records/)")
    print(table([r for root in args.roots for r in collect(root)]), end="")


if __name__ == "__main__":
    main()
