"""Does one SoRA strength mean the same sparsity at any task and budget?

SoRA r_max=8 on four GLUE tasks at two budgets (640 training rows for one epoch: 20 steps; 1,920 rows for two
epochs: 120 steps), each with the recipe's default ``keep=0.5``
(soralab.experiments.sparsity) and with the constant ``xi=10``
that was soralab's default before (threshold ``lr * xi`` per step, gates at the adapters' learning rate). Everything
else comes from the recipes. The full-budget rows come from the quality record (``runs/quality``), if present.
Prints a Markdown table of the share of ranks kept. Resumable; about 15 minutes on 2 cores, run it alone:

    SORALAB_GLUE_DIR=../shared/data/glue python benchmarks/strength.py > benchmarks/strength_results.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from soralab.experiments.sweep import collect
from soralab.experiments.train import run_glue

TASKS = ("mrpc", "rte", "stsb", "sst2")
BUDGETS = ((640, 1.0), (1920, 2.0))
STRENGTHS = {"keep=0.5": {"keep": 0.5}, "xi=10": {"xi": 10.0}}
SEED = 7


def kept(res) -> float:
    r_max = res.config["r"] * len(res.active_ranks)
    return 100 * sum(res.active_ranks.values()) / r_max


def main(root: Path, quality: Path) -> None:
    print("| task | training rows x epochs | steps | " + " | ".join(f"{s}: ranks kept" for s in STRENGTHS)
          + " | " + " | ".join(f"{s}: dev score" for s in STRENGTHS) + " |")
    print("|---|---|---:|" + "---:|" * (2 * len(STRENGTHS)))
    for task in TASKS:
        for n, epochs in BUDGETS:
            res = {name: run_glue(task, "sora", max_train_samples=n, num_train_epochs=epochs, max_eval_samples=400,
                                  seed=SEED, output_dir=root / task / f"{n}x{epochs:g}" / name, progress=False, **kw)
                   for name, kw in STRENGTHS.items()}
            steps = res["keep=0.5"].history[-1]["step"]
            print(f"| {task} | {n} x {epochs:g} | {steps} | " + " | ".join(f"{kept(r):.1f}%" for r in res.values())
                  + " | " + " | ".join(f"{r.score:.1f}" for r in res.values()) + " |", flush=True)
        full = [r for r in (collect(quality) if quality.is_dir() else []) if r.config["task"] == task
                and r.config["method"] == "sora"]
        for r in full:
            print(f"| {task} | all x {r.config['num_train_epochs']:g} (quality record, seed {r.config['seed']}) | "
                  f"{r.history[-1]['step']} | {kept(r):.1f}% | | {r.score:.1f} | |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output-dir", default="runs/strength")
    ap.add_argument("--quality-dir", default="runs/quality")
    args = ap.parse_args()
    main(Path(args.output_dir), Path(args.quality_dir))
