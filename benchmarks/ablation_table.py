"""SoRA at ``keep=1.0`` (gates, no sparsity) against the quality record's LoRA and SoRA (``keep=0.5``), paired by seed.

Separates the two things SoRA adds to LoRA: the gated parameterisation, and the pruning. A pair counts only when
both runs were made on the same device and precision (``quality_table.device``), so a GPU ablation never pairs with a
CPU record run. The ablation runs are made by

    soralab sweep --tasks mrpc stsb --methods sora --seeds 42 81 100 --set keep=1.0 model_dropout=none \\
        --output-dir runs/ablation-gpu
    soralab sweep --tasks sst2 --methods sora --seeds 42 81 100 --set keep=1.0 max_train_samples=20000 \\
        model_dropout=none --output-dir runs/ablation-gpu

(on a lent H200, with the checkpoint's dropout like the record, the default then; the first ablation, MRPC seeds 0 21
42 on the CPU, went to ``runs/ablation``) and the table by

    python benchmarks/ablation_table.py runs/ablation runs/ablation-gpu --record runs/quality runs/quality-superseded \\
        > benchmarks/ablation_results.md

The SoRA ``keep=0.5`` it compares with is the record's first SoRA, on the schedule of its time (``ADDED_LATER``); when
the record was remade with the recipe's final cut, those runs and the GPU LoRA runs they paired with moved to
``runs/quality-superseded``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from quality_table import TASKS, device, mean_std, paired, rows

from soralab.experiments.run_config import ADDED_LATER, KEEP_SCHEDULE
from soralab.experiments.sweep import collect


def setting(result) -> str:
    """Where a run ran and on what, as far as pairing goes: device and precision, then its training rows and the
    model's dropout where they are set ("CPU, fp32, 20000 rows"). Runs saved before results recorded their device
    (``quality_table.device`` marks them ``CPU*``) were made on the CPU, and pair with it."""
    c = result.config
    return (device(result).replace("*", "") + (f", {c['max_train_samples']} rows" if c.get("max_train_samples") else "")
            + (f", dropout {c['model_dropout']}" if c.get("model_dropout") is not None else ""))


def scores(results, task: str, method: str, keep: float | None = None, match=None) -> dict[tuple[str, int], float]:
    """``{(setting, seed): score}`` of one task and method (and ``keep``, and configs for which ``match(config)`` is
    true, where given); only runs of one setting (``setting``) pair. Two runs of one setting and seed are refused."""
    out: dict[tuple[str, int], float] = {}
    for r in results:
        if (r.config["task"] == task and r.config["method"] == method and (keep is None or r.config.get("keep") == keep)
                and (match is None or match(r.config))):
            key = (setting(r), r.config["seed"])
            if key in out:
                raise SystemExit(f"two runs of {task} / {method} on {key[0]} with seed {key[1]}: give folders that "
                                 "hold one each")
            out[key] = r.score
    return out


def on(where: str, runs: dict[tuple[str, int], float]) -> dict[int, float]:
    return {seed: score for (d, seed), score in runs.items() if d == where}


def pair(a: dict[int, float], b: dict[int, float]) -> tuple[dict[int, float], dict[int, float]]:
    seeds = sorted(set(a) & set(b))
    return {s: a[s] for s in seeds}, {s: b[s] for s in seeds}


def interval(p) -> str:
    if not p:
        return "fewer than two same-device pairs"
    return f"{p.summary()} (n={p.n})"


def record_schedule(config: dict) -> bool:
    """Whether a SoRA run used the schedule of the record's first SoRA rows (saved before the options existed: yes)."""
    return all(config.get(k, ADDED_LATER[k]) == ADDED_LATER[k] for k in KEEP_SCHEDULE)


def markdown(ablation_roots: list[Path], record_roots: list[Path]) -> str:
    abl = [r for root in ablation_roots for r in collect(root)]
    rec = [r for root in record_roots for r in collect(root)]
    out = ["# SoRA with every rank kept (`keep=1.0`) against LoRA and SoRA `keep=0.5`", "",
           f"Ablation runs: {', '.join(f'`{r}`' for r in ablation_roots)}; record runs: "
           f"{', '.join(f'`{r}`' for r in record_roots)} (`benchmarks/quality.sh`; SoRA on the schedule of its first "
           "rows: xi from 10% of the run, `keep` reached at 70% and held). Scores x100 on the GLUE dev set, one row "
           "per task and device; the LoRA and keep=0.5 columns are means over the seeds that pair (same device and "
           "precision), differences are paired by seed with a 95% t-interval. Made by "
           "`python benchmarks/ablation_table.py ... --record ...` (its docstring has the commands).", "",
           "| task | device | seeds | keep=1.0 | LoRA r=8 | SoRA keep=0.5 | keep=1.0 − LoRA | keep=1.0 − keep=0.5 |",
           "|---|---|---|---:|---:|---:|---|---|"]
    for task in TASKS:
        ablated = scores(abl, task, "sora", keep=1.0)
        lora, sora = scores(rec, task, "lora"), scores(rec, task, "sora", keep=0.5, match=record_schedule)
        for where in sorted({d for d, _ in ablated}):
            a = on(where, ablated)
            al, lo = pair(a, on(where, lora))
            aso, so = pair(a, on(where, sora))
            out.append(f"| {task} | {where} | {', '.join(map(str, sorted(a)))} | {mean_std(list(a.values()))}"
                       f" | {mean_std(list(lo.values()))} | {mean_std(list(so.values()))} | {interval(paired(al, lo))}"
                       f" | {interval(paired(aso, so))} |")
    kept = sorted({r["ranks_kept"] for root in ablation_roots for r in rows(root) if r["ranks_kept"] is not None})
    out += ["", f"Ranks kept by the ablation runs at the end: {', '.join(f'{k:.0f}%' for k in kept)}.", "",
            "These keep=1.0 runs were made before 2026-11-29, when the keep schedule still set xi to 0.1 from "
            "keep_start on whatever the target: their gates were pulled by the L1 step during the ramp even though "
            "no rank had to go. Since then keep=1.0 trains the gates with no pull at all (`decompose_results.md` "
            "has runs of both).", ""]
    return "\n".join(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ablation", nargs="+", help="folders of the keep=1.0 runs")
    ap.add_argument("--record", nargs="+", required=True, help="folders of the quality record's runs")
    args = ap.parse_args()
    print(markdown([Path(a) for a in args.ablation], [Path(r) for r in args.record]))
