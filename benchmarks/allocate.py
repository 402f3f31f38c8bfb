"""Issue 12: does a SoRA-found rank pattern beat uniform LoRA ranks at the same number of trained parameters?

Per task (MRPC, STS-B: both learn on CPU) and seed (0, 21, 42, 81, 100), MiniLM, every training value from the recipes
but SoRA's keep schedule and the model's dropout, pinned to the values the committed runs were made with (below):

* **uniform**: PEFT LoRA r=4 on the six linear layers of every block, lora_alpha=8 (scale alpha/r = 2, the recipes'
  r=8 / alpha=16 scale).
* **sora-pattern**: PEFT LoRA trained from scratch with the pattern ``soralab.allocate`` found: a short SoRA run of
  the same seed (``soralab.experiments.allocate.FIND_DEFAULTS``: 1,000 training rows, one epoch, 200 dev rows per
  evaluation; r_max=8, keep=0.5 from the recipe), its live ranks scaled to uniform r=4's adapter parameters (never more;
  rounding in ``soralab.patterns.ROUNDING_RULE``), scale 2 in every module.
* **sora**: the pruned SoRA model itself, a full run (r_max=8, keep=0.5), at its own parameter count (keep=0.5 of
  r=8 is about r=4's size, but SoRA decides, so the table gives its count).
* **adalora-pattern**: the same as sora-pattern with AdaLoRA as the finder: a short AdaLoRA run (same rows and
  epoch, target_r=4 from init_r=6, PEFT's schedule as in ``soralab.experiments.methods``), its final per-module
  ranks (PEFT's rank_pattern masks, read by ``soralab.experiments.methods.active_ranks``) scaled the same way,
  then PEFT LoRA from scratch.

All three LoRA arms are PEFT's LoRA through ``run_glue(method="peft-lora")`` with the same recipe, so they differ only
in where the ranks sit. Scores are x100 on the GLUE dev set at the best of one evaluation per epoch; differences are
paired by seed with a 95% t-interval (``quality_table.paired``). Each finding run's cost (wall time, steps) is
reported beside a full training run's. Resumable: every run keeps its ``result.json`` under ``--output-dir`` and is
reused. Per task 5 x 3 full runs plus 5 x 2 short ones: several hours on the 2-core CPU (run it alone there):

    SORALAB_GLUE_DIR=../shared/data/glue python benchmarks/allocate.py --output-dir runs/allocate

The committed results were made on a lent H200 in about 7 minutes: one ``--runs-only --tasks T --seeds S`` process
per task and seed side by side, then the report pass above with ``--precision bf16`` (what ``auto`` chose there), which
reuses every run.

It writes ``benchmarks/allocate_results.md``, ``allocate_results.csv`` (one row per run, read by notebook 09) and
one pattern figure per task (``allocate_pattern_<task>.png``).
``--dry-run`` lists the runs and which are already done, without training.
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from quality_table import baseline, device, mean_std, paired  # noqa: E402

from soralab.experiments.allocate import FIND_DEFAULTS, allocate  # noqa: E402
from soralab.experiments.run_config import ADDED_LATER, CHECKPOINT_DROPOUT, KEEP_SCHEDULE  # noqa: E402
from soralab.experiments.train import RESULT_NAME, run_glue  # noqa: E402
from soralab.files import atomic_write_text  # noqa: E402

TASKS = ("mrpc", "stsb")
SEEDS = (0, 21, 42, 81, 100)  # the paper's
BUDGET_RANK = 4
SCALE = 2.0  # alpha / r in every LoRA arm: the recipes' r=8, alpha=16
ARMS = ("uniform", "sora-pattern", "sora", "adalora-pattern")
LABELS = {"uniform": f"(a) uniform LoRA r={BUDGET_RANK}", "sora-pattern": "(b) LoRA, SoRA-found pattern",
          "sora": "(c) pruned SoRA (r_max=8, keep=0.5)", "adalora-pattern": "(d) LoRA, AdaLoRA-found pattern"}
# The committed SoRA runs reached keep=0.5 on the record's first schedule (before keep_schedule.py's final cut)
RECORD_SCHEDULE = {k: ADDED_LATER[k] for k in KEEP_SCHEDULE}
FINDERS = {"sora-pattern": ("sora", RECORD_SCHEDULE),
           "adalora-pattern": ("adalora", {"r": BUDGET_RANK, "lora_alpha": 8.0})}


def folder(root: Path, task: str, seed: int, name: str) -> Path:
    return root / task / f"seed{seed}" / name


def plan(tasks, seeds, root: Path) -> list[tuple[str, int, str, Path]]:
    """Every run in the order ``main`` makes them: per task and seed the two finders, then the four arms."""
    runs = []
    for task in tasks:
        for seed in seeds:
            runs += [(task, seed, f"find-{finder}", folder(root, task, seed, f"find-{finder}"))
                     for finder, _ in FINDERS.values()]
            runs += [(task, seed, arm, folder(root, task, seed, arm)) for arm in ARMS]
    return runs


def run_task_seed(task: str, seed: int, root: Path, common: dict) -> tuple[dict, dict]:
    """The four arms of one task and seed: ``({arm: GlueResult}, {arm: pattern})`` (patterns for the two
    pattern arms)."""
    patterns = {}
    for arm, (finder, extra) in FINDERS.items():
        out = folder(root, task, seed, f"pattern-{finder}.json")
        patterns[arm] = allocate(task, BUDGET_RANK, method=finder, scaling=SCALE, seed=seed, output=out,
                                 output_dir=folder(root, task, seed, f"find-{finder}"), **extra, **common)
    results = {
        "uniform": run_glue(task, "peft-lora", r=BUDGET_RANK, lora_alpha=SCALE * BUDGET_RANK, seed=seed,
                            output_dir=folder(root, task, seed, "uniform"), progress=False, **common),
        "sora": run_glue(task, "sora", seed=seed, output_dir=folder(root, task, seed, "sora"), progress=False,
                         **RECORD_SCHEDULE, **common),
    }
    for arm in FINDERS:
        pattern_file = folder(root, task, seed, f"pattern-{FINDERS[arm][0]}.json")
        results[arm] = run_glue(task, "peft-lora", rank_pattern=str(pattern_file), seed=seed,
                                output_dir=folder(root, task, seed, arm), progress=False, **common)
    return results, patterns


def adapter_params(results: dict, pattern: dict) -> dict[str, int]:
    """Adapter parameters per arm: trainable after pruning minus the head, which is the same in every arm
    (uniform's trainable count minus its exactly known adapters)."""
    head = results["uniform"].trainable_params - pattern["budget"]["budget_params"]
    return {arm: r.params_after_prune - head for arm, r in results.items()}


def csv_rows(by: dict) -> list[dict]:
    """One row per run: what notebook 09 reads (``allocate_results.csv``)."""
    rows = []
    for (task, seed), (results, patterns) in sorted(by.items()):
        params = adapter_params(results, patterns["sora-pattern"])
        rows += [{"task": task, "arm": arm, "seed": seed, "metric": results[arm].main_metric,
                  "score": round(results[arm].score, 4), "adapter_params": params[arm],
                  "wall_time_s": round(results[arm].wall_time_s, 1)} for arm in ARMS]
    return rows


def made_on(by: dict) -> set[str]:
    """The devices and precisions the runs in ``by`` were made with (``quality_table.device``)."""
    return {device(r) for results, _ in by.values() for r in results.values()}


def markdown(by: dict, tasks, seeds, baselines: dict, command: str) -> str:
    """``by[(task, seed)] = (results, patterns)``."""
    out = ["# SoRA as a rank finder: found patterns vs uniform LoRA at equal parameters (issue 12)", "",
           f"Generated by `SORALAB_GLUE_DIR=../shared/data/glue {command}` (see its docstring for the four arms). "
           "Model: the packaged all-MiniLM-L6-v2; scores x100 "
           "on the GLUE dev set (MRPC F1, STS-B Pearson) at the best of one evaluation per epoch; every training value "
           "from `soralab.experiments.recipes`, except two: SoRA reaches keep=0.5 on the record's first schedule (xi "
           "from 10% of the run, keep at 70%, the cut not final) and every arm keeps the checkpoint's dropout, the "
           "defaults when these runs were made. Adapter parameters exclude the task head (pooler + classifier), which "
           f"trains in every arm. Budget: uniform LoRA r={BUDGET_RANK} on the six linear layers of every block; "
           "patterns never "
           "exceed it.", "",
           f"Seeds present: {', '.join(str(s) for s in seeds)}. Made on: "
           f"{', '.join(sorted(made_on(by)))}. Wall times are each run's own; runs made side by side (`--runs-only` "
           "in parallel processes) shared the machine, so compare them within this file only.", ""]
    for task in tasks:
        cells = [(s, *by[(task, s)]) for s in seeds if (task, s) in by]
        if not cells:
            continue
        score = {arm: {s: r[arm].score for s, r, _ in cells} for arm in ARMS}
        params = {arm: [adapter_params(r, p["sora-pattern"])[arm] for _, r, p in cells] for arm in ARMS}
        budget = cells[0][2]["sora-pattern"]["budget"]["budget_params"]
        out += [f"## {task} ({cells[0][1]['uniform'].main_metric})", "",
                "| arm | score (mean ± std) | n | adapter params (mean) | share of the budget |",
                "|---|---:|---:|---:|---:|"]
        for arm in ARMS:
            m = statistics.mean(params[arm])
            out.append(f"| {LABELS[arm]} | {mean_std(list(score[arm].values()))} | {len(score[arm])} | {m:,.0f} | "
                       f"{m / budget:.1%} |")
        out.append(f"| *majority class* | {baselines[task]:.2f} | | | |")
        out += ["", "Paired by seed, minus uniform (95% t-interval over seeds):", "",
                "| arm | difference | 95% interval | pairs | reading |", "|---|---:|---|---:|---|"]
        for arm in ARMS[1:]:
            p = paired(score[arm], score["uniform"])
            reading = p.reading("better than uniform", "**worse** than uniform") if p else "fewer than two seeds"
            out.append(f"| {LABELS[arm]} | " + (f"{p.mean:+.2f} | {p.bounds()} | {p.n}" if p else " | | ")
                       + f" | {reading} |")
        out += ["", "Cost of finding a pattern (mean over seeds) beside one full training run:", "",
                "| run | wall time (s) | optimiser steps |", "|---|---:|---:|"]
        for arm in FINDERS:
            runs = [p[arm]["finding_run"] for _, _, p in cells]
            out.append(f"| short {runs[0]['method']} finding run ({FIND_DEFAULTS['max_train_samples']} rows, "
                       f"{FIND_DEFAULTS['num_train_epochs']:g} epoch) | "
                       f"{statistics.mean(r['wall_time_s'] for r in runs):.0f} | "
                       f"{statistics.mean(r['steps'] for r in runs):.0f} |")
        for arm in ("uniform", "sora"):
            rs = [r[arm] for _, r, _ in cells]
            out.append(f"| full run: {LABELS[arm]} | {statistics.mean(r.wall_time_s for r in rs):.0f} | "
                       f"{statistics.mean(r.history[-1]['step'] for r in rs):.0f} |")
        dropped = [len(p["sora-pattern"]["dropped_modules"]) for _, _, p in cells]
        n_modules = len(cells[0][2]["sora-pattern"]["found_ranks"])
        out += ["", f"SoRA-found patterns dropped {', '.join(map(str, dropped))} of {n_modules} modules (per seed); "
                f"figure: `allocate_pattern_{task}.png` (seed {cells[0][0]}).", ""]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output-dir", default="runs/allocate", help="where every run keeps its result.json")
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    ap.add_argument("--model-name-or-path", default=None, help="default: the packaged MiniLM")
    ap.add_argument("--data-dir", default=None, help="default: $SORALAB_GLUE_DIR")
    ap.add_argument("--results", default=str(HERE / "allocate_results.md"))
    ap.add_argument("--precision", default=None, help="run_glue's precision (default: auto); a report pass over "
                    "runs made elsewhere needs theirs, e.g. bf16 for runs made on a GPU")
    ap.add_argument("--dry-run", action="store_true", help="list the runs and which are done; train nothing")
    ap.add_argument("--runs-only", action="store_true", help="train the runs, write no report (to run seeds in "
                    "parallel processes, then one pass without it that reuses them all)")
    args = ap.parse_args()
    root = Path(args.output_dir)
    common = {k: v for k, v in (("model_name_or_path", args.model_name_or_path), ("data_dir", args.data_dir),
                                ("precision", args.precision)) if v is not None} | CHECKPOINT_DROPOUT
    if args.dry_run:
        runs = plan(args.tasks, args.seeds, root)
        for task, seed, name, path in runs:
            print(f"{task}\tseed {seed}\t{name:16s}\t{'done' if (path / RESULT_NAME).is_file() else 'to run'}\t{path}")
        print(f"{sum((p / RESULT_NAME).is_file() for *_, p in runs)}/{len(runs)} runs done")
        return
    by = {}
    for task in args.tasks:
        for seed in args.seeds:
            by[(task, seed)] = run_task_seed(task, seed, root, common)
            print(f"{task} seed {seed}: " + ", ".join(f"{arm} {r.score:.2f}" for arm, r in by[(task, seed)][0].items()),
                  flush=True)
    if args.runs_only:
        return
    import matplotlib

    matplotlib.use("Agg")
    from soralab.teaching.plots import plot_rank_pattern

    for task in args.tasks:
        fig = plot_rank_pattern(by[(task, args.seeds[0])][1]["sora-pattern"])
        fig.savefig(Path(args.results).parent / f"allocate_pattern_{task}.png", dpi=120, bbox_inches="tight")
    command = " ".join(["python benchmarks/allocate.py", *sys.argv[1:]])
    text = markdown(by, args.tasks, args.seeds, {t: baseline(t, args.data_dir) for t in args.tasks}, command)
    rows = csv_rows(by)
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(Path(args.results).with_suffix(".csv"), buf.getvalue())  # never half-written
    atomic_write_text(Path(args.results), text)
    print(f"-> {args.results}")


if __name__ == "__main__":
    main()
