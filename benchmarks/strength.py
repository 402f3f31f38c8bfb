"""Does one SoRA strength mean the same sparsity at any task and budget?

SoRA r_max=8 on four GLUE tasks at two budgets (640 training rows for one epoch: 20 steps; 1,920 rows for two
epochs: 120 steps), each with the recipe's default ``keep=0.5`` (soralab.experiments.sparsity: the ramp from 5% to
40% of the run, then a final cut), with ``keep=0.5`` on the schedule the quality record used (10% to 70%, xi holding
the share to the end), and with the constant ``xi=10`` that was soralab's default before (threshold ``lr * xi`` per
step, gates at the adapters' learning rate). Everything else comes from the recipes. The full-budget rows come from
the quality record (``runs/quality``, the recipe's schedule) and its first SoRA rows on the record's earlier schedule
(``runs/quality-superseded``), and the record's earlier SST-2 runs on 20,000 training rows (``runs/quality-sst2-20k``:
1,250 steps, where the record's all-row runs take 4,210), where present.
Prints a Markdown table of the share of ranks kept. Resumable; about 15 minutes on 2 cores, run it alone:

    SORALAB_GLUE_DIR=../shared/data/glue python benchmarks/strength.py > benchmarks/strength_results.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from quality_table import ranks_kept as kept

from soralab.experiments import sparsity
from soralab.experiments.run_config import ADDED_LATER, CHECKPOINT_DROPOUT, KEEP_SCHEDULE
from soralab.experiments.sweep import collect
from soralab.experiments.train import run_glue

TASKS = ("mrpc", "rte", "stsb", "sst2")
BUDGETS = ((640, 1.0), (1920, 2.0))
# name: (folder, options)
STRENGTHS = {
    "keep=0.5": ("keep=0.5-final", {"keep": 0.5, "keep_start": sparsity.START, "keep_end": sparsity.END,
                                    "keep_final": sparsity.FINAL}),  # the recipe's
    "keep=0.5, record's schedule": ("keep=0.5", {"keep": 0.5, **{k: ADDED_LATER[k] for k in KEEP_SCHEDULE}}),
    "xi=10": ("xi=10", {"xi": 10.0}),
}
SEED = 7


def column(config: dict) -> str | None:
    """The strength a saved SoRA run used, if it is one of STRENGTHS."""
    return next((name for name, (_, kw) in STRENGTHS.items() if all(config.get(k) == v for k, v in kw.items())), None)


def main(root: Path, full_dirs: list[Path]) -> None:
    print("| task | training rows x epochs | steps | " + " | ".join(f"{s}: ranks kept" for s in STRENGTHS)
          + " | " + " | ".join(f"{s}: dev score" for s in STRENGTHS) + " |")
    print("|---|---|---:|" + "---:|" * (2 * len(STRENGTHS)))
    for task in TASKS:
        for n, epochs in BUDGETS:
            res = {name: run_glue(task, "sora", max_train_samples=n, num_train_epochs=epochs, max_eval_samples=400,
                                  seed=SEED, output_dir=root / task / f"{n}x{epochs:g}" / folder, progress=False, **kw,
                                  **CHECKPOINT_DROPOUT)
                   for name, (folder, kw) in STRENGTHS.items()}
            steps = res["keep=0.5"].history[-1]["step"]
            print(f"| {task} | {n} x {epochs:g} | {steps} | " + " | ".join(f"{kept(r):.1f}%" for r in res.values())
                  + " | " + " | ".join(f"{r.score:.1f}" for r in res.values()) + " |", flush=True)
        full = [(d, r) for d in full_dirs if d.is_dir() for r in collect(d) if r.config["task"] == task
                and r.config["method"] == "sora" and r.config["split_protocol"] == "glue" and column(r.config)]
        for d, r in sorted(full, key=lambda dr: (list(STRENGTHS).index(column(dr[1].config)), full_dirs.index(dr[0]),
                                                  dr[1].config["seed"])):
            cells = {name: "" for name in STRENGTHS}
            rows = r.config["max_train_samples"] or "all"
            print(f"| {task} | {rows} x {r.config['num_train_epochs']:g} (`{d}`, seed {r.config['seed']}) | "
                  f"{r.history[-1]['step']} | " + " | ".join({**cells, column(r.config): f"{kept(r):.1f}%"}.values())
                  + " | " + " | ".join({**cells, column(r.config): f"{r.score:.1f}"}.values()) + " |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output-dir", default="runs/strength")
    ap.add_argument("--full-dirs", nargs="+",
                    default=["runs/quality", "runs/quality-superseded", "runs/quality-sst2-20k"],
                    help="folders of full-budget SoRA runs to list beside the small budgets")
    args = ap.parse_args()
    main(Path(args.output_dir), [Path(d) for d in args.full_dirs])
