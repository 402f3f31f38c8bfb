"""Recipe search: choose each task's learning rates on held-out *training* data, never on the dev set.

Every run uses ``split_protocol="holdout"``: a seeded 20% slice of the training set (at most 1,000 rows) is the
validation set, the rest trains, and the GLUE dev set that results report is not loaded. For each task the setting
of the grid (``SETTINGS``: learning rates of the adapters and of the head) with the best held-out score (main
metric, best epoch) became ``soralab.experiments.recipes.FOUND[(task, "lora")]``, which SoRA and PEFT LoRA share
(AdaLoRA too, until its own search below); ``--table`` marks the setting FOUND holds. Epochs, batch size, warm-up
and sequence length stay at the recipe's base values (``soralab.experiments.recipes.BASE`` / ``BY_TASK``). RTE,
which learned at no setting of the grid, has more runs (``EXTRA``): more epochs, full fine-tuning as a ceiling, and
other lengths, batch sizes and weight decay. They were a check whether anything learns RTE, and none did;
recipes_results.md says why the recipe kept the grid's value.

AdaLoRA and BitFit (``--method adalora`` / ``--method bitfit``, added 2026-11-29 before any of their runs): until
then AdaLoRA took LoRA's values and BitFit lr 5e-3 everywhere, and both sat near a constant answer on MRPC (AdaLoRA
on held-out slices in dropout_results.md, BitFit on the dev set in record v2). Each gets its own learning rate from
``OWN[method]`` (the head at the same rate), plus, for AdaLoRA, the LoRA value it had. The rule, fixed before the
first run: on MRPC, STS-B and SST-2 the setting with the best held-out score (main metric, best epoch, seed 7, as
LoRA's) becomes ``FOUND[(task, method)]``; RTE is not searched (nothing learned it above, so a search there would
pick noise) and keeps what the method had. These runs use the model's dropout as it is the default now (off), where
LoRA's grid ran with the checkpoint's. A second round (``BEYOND``, declared after the first round's results and
before its runs) goes one step past the edge of a method's grid where its best sat at that edge, and the same rule
picks over the whole grid.

AdaLoRA's runs at the values it had are the dropout check's seed-7 runs with dropout off (their result.json copied
in; ``run_glue`` reuses a result only if its configuration is this one).

Resumable (each run's result.json is reused), on 2 CPU cores about 70 minutes for LoRA, an hour for AdaLoRA and 25
minutes for BitFit:

    SORALAB_GLUE_DIR=../shared/data/glue python benchmarks/recipes.py            # writes runs/recipes/
    SORALAB_GLUE_DIR=../shared/data/glue python benchmarks/recipes.py --method adalora   # or bitfit
    python benchmarks/recipes.py --table [--method adalora]    # the tables in benchmarks/recipes_results.md
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from soralab.experiments.recipes import FOUND
from soralab.experiments.run_config import CHECKPOINT_DROPOUT
from soralab.experiments.train import GlueResult, run_glue

TASKS = {"mrpc": {}, "rte": {}, "stsb": {}, "sst2": {"max_train_samples": 20_000}}
SEED = 7  # not one of the record's seeds (0, 21, 42, 81, 100)
# (learning rate of the adapters, learning rate of the head (None: the same), epochs (None: the recipe's), other
# run_glue options (None: none))
SETTINGS = [(5e-4, None, None, None), (1e-3, None, None, None), (2e-3, None, None, None), (1e-3, 5e-3, None, None)]
# RTE (2,490 pairs) stayed near chance at every rate with 3 epochs: a longer run at the best rate, then (second
# round, 2026-11-28) full fine-tuning as a ceiling (does this checkpoint learn RTE at all?) and the knobs the first
# round left at the recipe's base: 256 tokens, batch 16, no weight decay.
EXTRA = {"rte": [(2e-3, None, 8.0, None),
                 (5e-5, None, None, {"method": "full"}), (2e-5, None, None, {"method": "full"}),
                 (2e-3, None, None, {"max_seq_length": 256}),
                 (1e-3, None, None, {"per_device_train_batch_size": 16, "weight_decay": 0.0}),
                 ]}
METHOD = "lora"
# Learning rates searched for the methods that get their own (the head at the same rate); tasks: OWN_TASKS.
OWN = {"adalora": (1e-3, 2e-3, 5e-3), "bitfit": (1e-3, 5e-3, 2e-2)}
# Second round (declared after the first round's results, before its runs): where the first round's best sat at the
# edge of the grid, the grid goes one step further, on every task of that method, and the same rule picks over it.
# AdaLoRA's best was 5e-3, the top of its grid, on all three tasks; BitFit's on MRPC was 1e-3, the bottom of its.
BEYOND = {"adalora": (1e-2,), "bitfit": (5e-4,)}
OWN_TASKS = ("mrpc", "stsb", "sst2")


def settings(task: str, method: str = METHOD) -> list[tuple]:
    if method == METHOD:
        return SETTINGS + EXTRA.get(task, [])
    grid = [(lr, None, None, {"method": method}) for lr in OWN[method] + BEYOND.get(method, ())]
    if method == "adalora":  # and the value it shared with LoRA before this search
        had = FOUND[(task, METHOD)]
        if (had := (had["learning_rate"], had.get("head_lr"), None, {"method": method})) not in grid:
            grid.append(had)
    return sorted(grid, key=lambda s: (s[0], s[1] or s[0]))


def tasks_of(method: str) -> tuple[str, ...]:
    return tuple(TASKS) if method == METHOD else OWN_TASKS


def folder(root: Path, task: str, lr: float, head_lr: float | None, epochs: float | None,
           other: dict | None) -> Path:
    other = dict(other or {})
    method = other.pop("method", METHOD)
    name = f"lr={lr:g}_head={head_lr or 'same'}" + (f"_epochs={epochs:g}" if epochs else "")
    name += "".join(f"_{k}={v:g}" for k, v in sorted(other.items()))
    return root / task / method / name


def search(root: Path, tasks: list[str], method: str = METHOD) -> None:
    for task in tasks:
        extra = TASKS[task]
        for lr, head_lr, epochs, other in settings(task, method):
            out = folder(root, task, lr, head_lr, epochs, other)
            # LoRA's grid ran when the checkpoint's dropout was the default; the later searches run today's (off)
            options = {"method": METHOD, **(CHECKPOINT_DROPOUT if method == METHOD else {}), **extra, **(other or {})}
            # "same": the head at lr, given explicitly (None would take the recipe's head_lr, which FOUND now sets)
            res = run_glue(task, split_protocol="holdout", seed=SEED, learning_rate=lr, head_lr=head_lr or lr,
                           num_train_epochs=epochs, output_dir=out, progress=False, **options)
            print(f"{out.relative_to(root)}: epochs={res.config['num_train_epochs']:g} held-out "
                  f"{res.main_metric} {res.score:.2f} ({res.wall_time_s:.0f} s{', reused' if res.reused else ''})",
                  flush=True)


def table(root: Path, method: str = METHOD) -> str:
    """Markdown table of the finished runs; per task, the run whose values the recipe holds (FOUND) is marked."""
    lines = ["| task | method, options | lr | head lr | epochs | held-out score per epoch (x100) | best | time (s) "
             "| chosen |", "|---|---|---:|---:|---:|---|---:|---:|:---:|"]
    warnings = []
    for task in tasks_of(method):
        results = [(s, GlueResult.from_json(folder(root, task, *s) / "result.json")) for s in settings(task, method)
                   if (folder(root, task, *s) / "result.json").is_file()]
        if not results:
            continue
        found = FOUND.get((task, method), {})
        chosen = (found.get("learning_rate"), found.get("head_lr"), None,
                  None if method == METHOD else {"method": method})
        grid = [sr for sr in results if method != METHOD or sr[0] in SETTINGS]
        # FOUND must be the grid's best; a run that scores nan (constant predictions: no Pearson) is the worst
        if grid and max(grid, key=lambda sr: -math.inf if math.isnan(sr[1].score) else sr[1].score)[0] != chosen:
            warnings.append(f"- **{task}: FOUND {found or '(none)'} is not the grid's best held-out setting.**")
        for s, r in results:
            key = f"eval_validation_{r.main_metric}"
            curve = " / ".join(f"{100 * row[key]:.1f}" for row in r.history)
            what = ", ".join([r.config["method"]] + [f"{k} {v:g}" for k, v in sorted((s[3] or {}).items())
                                                     if k != "method"])
            lines.append(f"| {task} ({r.main_metric}) | {what} | {s[0]:g} | {s[1] or 'same'} "
                         f"| {r.config['num_train_epochs']:g} | {curve} | {r.score:.2f} | {r.wall_time_s:.0f} "
                         f"| {'**yes**' if s == chosen else ''} |")
    return "\n".join(lines + ([""] + warnings if warnings else []))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output-dir", default="runs/recipes")
    ap.add_argument("--tasks", nargs="+", choices=list(TASKS), help="tasks to search (default: all the method's)")
    ap.add_argument("--method", default=METHOD, choices=[METHOD, *OWN],
                    help="lora: the grid every LoRA-family method shares; adalora, bitfit: their own learning rates")
    ap.add_argument("--table", action="store_true", help="print the table of finished runs instead of running")
    args = ap.parse_args()
    mine = tasks_of(args.method)
    tasks = args.tasks or list(mine)
    if off := set(tasks) - set(mine):
        ap.error(f"--method {args.method} searches {', '.join(mine)} only, not {', '.join(sorted(off))}")
    if args.table:
        print(table(Path(args.output_dir), args.method))
    else:
        search(Path(args.output_dir), tasks, args.method)
