"""soralab: SoRA, LoRA and their baselines on GLUE, from the command line.

    soralab quickstart                      # SoRA on the packaged MiniLM, SST-2 subset, prune, export, reload
    soralab glue --task rte --method sora --max-train-samples 1000 --output-dir runs/rte-sora
    soralab allocate --task mrpc --budget-rank 4 --output pattern.json   # SoRA-found ranks at LoRA r=4's size
    soralab sweep --tasks rte mrpc --methods lora sora --seeds 1 2 3 --grid keep=0.25,0.5 --output-dir runs/sweep
        --set max_train_samples=1000 num_train_epochs=3     # (one command)
    soralab report runs/sweep --markdown runs/sweep/table.md --csv runs/sweep/table.csv
    soralab notebooks --profile classroom   # the notebook suite with papermill, summary in runs/notebooks/
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from .errors import UsageError, usage_errors_exit
from .experiments.recipes import FIND_DEFAULTS
from .experiments.run_config import GlueConfig, GlueResult, describe
from .experiments.validate import check_output_dir, field_kind, options, parse_option, user_input


def _typed(name: str):
    """argparse's ``type=`` for option ``name``: the text parsed as ``--set`` parses it (``none`` for an option that
    may be None), a bad value reported by argparse with the reason."""
    def parse(text: str):
        try:
            return parse_option(GlueConfig, name, text)
        except UsageError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    parse.__name__ = name  # argparse names the type in its error
    return parse


def _add_glue_options(p: argparse.ArgumentParser, helps: dict[str, str] | None = None,
                      skip: tuple[str, ...] = (), given_only: bool = False) -> None:
    """One ``--option`` per ``GlueConfig`` option, typed from its annotation (``"int | None"`` -> int, ``none``
    accepted), with the field's help text (or ``helps[name]``); options left out are None (the recipe's value) or the
    field's default. ``given_only``: options left out are not set at all (the command has defaults of its own)."""
    for name, f in options(GlueConfig).items():
        if name in skip:
            continue
        flag = "--" + name.replace("_", "-")
        kind, optional = field_kind(f)
        shown = f" (default: {f.default})" if f.default is not None and kind != "bool" else ""
        help_text = (helps or {}).get(name, f.metadata.get("help", "") + shown)

        def default(value):
            return argparse.SUPPRESS if given_only else value

        if name == "task":
            p.add_argument(flag, required=True, help=help_text)
        elif kind == "bool" and optional:  # unset (None: the recipe's), --flag or --no-flag
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default(None), help=help_text)
        elif kind == "bool":
            p.add_argument(flag, action="store_true", default=default(False), help=help_text)
        elif kind == "list":
            p.add_argument(flag, nargs="+", default=default(f.default), help=help_text)
        else:
            p.add_argument(flag, type=_typed(name), default=default(f.default), help=help_text)


def print_result(result: GlueResult) -> None:
    cfg = result.config
    print(f"\n{cfg['task']} / {cfg['method']} on {cfg['model_name_or_path']}"
          f"{' (reused saved result)' if result.reused else ''}")
    print("| step | epoch | " + " | ".join(k for k in result.best if k.startswith("eval_") and "loss" not in k)
          + " | active rank |")
    keys = [k for k in result.best if k.startswith("eval_") and "loss" not in k]
    print("|---" * (len(keys) + 3) + "|")
    for row in result.history:
        vals = " | ".join(f"{row.get(k, float('nan')):.4f}" for k in keys)
        print(f"| {row['step']} | {row.get('epoch') or 0:.2f} | {vals} | {row.get('active_rank', '')} |")
    score = "degenerate (NaN at every evaluation)" if result.degenerate else f"{result.score:.2f}"
    print(f"score (x100, best {result.main_metric}): {score}   trainable params: {result.trainable_params:,}"
          f"   after pruning: {result.params_after_prune:,}   wall time: {result.wall_time_s:.0f}s")


def quickstart(args: argparse.Namespace) -> int:
    """SoRA end to end on one screen."""
    import torch
    from peft import PeftModel

    import soralab
    from soralab.experiments.models import load_classifier
    from soralab.experiments.train import run_glue
    from soralab.teaching.profiles import quiet

    quiet()  # no load reports ("classifier.weight MISSING": the head is new, as intended) or deprecation notices
    out = Path(args.output_dir)
    check_output_dir(out, "--output-dir")  # before training, not after it
    result = run_glue("sst2", "sora", max_train_samples=args.max_train_samples, max_eval_samples=args.max_eval_samples,
                      num_train_epochs=args.epochs, keep=args.keep, output_dir=None)
    print_result(result)
    model = result.model
    print(soralab.gate_report(model))
    soralab.prune(model)
    soralab.export_peft(model, out / "peft_adapter")
    soralab.save_adapter(model, out / "soralab_adapter")
    base, tokenizer = load_classifier("minilm")
    reloaded = PeftModel.from_pretrained(base, out / "peft_adapter")
    batch = tokenizer(["a gripping, beautifully acted film", "dull and far too long"], return_tensors="pt",
                      padding=True)
    model.eval()
    reloaded.eval()
    with torch.no_grad():
        a, b = model(**batch).logits, reloaded(**batch).logits
    print(f"pruned soralab model vs PEFT reload: max |logit difference| = {(a - b).abs().max().item():.2e}")
    print(f"adapters written to {out / 'peft_adapter'} (PEFT) and {out / 'soralab_adapter'} (soralab)")
    return 0 if torch.allclose(a, b, atol=1e-4) else 1


def allocate_command(args: argparse.Namespace, task: str, method: str, opts: dict) -> int:
    """``soralab allocate``: options left out keep allocate's short-run defaults (then the recipe's)."""
    from .experiments.allocate import allocate

    user_input(GlueConfig, task=task, method=method, **opts)  # every option checked before anything loads
    p = allocate(task, args.budget_rank, budget_params=args.budget_params, max_rank=args.max_rank,
                 scaling=args.scaling, output=args.output, method=method, output_dir=args.output_dir,
                 progress=not args.no_progress, **opts)
    run, budget = p["finding_run"], p["budget"]
    print(f"{task}: {run['method']} found {sum(v > 0 for v in p['found_ranks'].values())}/{len(p['found_ranks'])} "
          f"live modules in {run['steps']} steps ({run['wall_time_s']:.0f}s); pattern of {p['params']:,} LoRA "
          f"parameters for a budget of {budget['budget_params']:,}; {len(p['dropped_modules'])} module(s) dropped "
          f"at rank 0; ranks: {sorted(Counter(p['rank_pattern'].values()).items())} (rank, modules)")
    print(f"written to {args.output}")
    return 0


@usage_errors_exit("soralab")  # a user's mistake: "soralab: error: ..." and exit 2; a bug keeps its traceback
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soralab", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quickstart", help="SoRA on the packaged MiniLM and an SST-2 subset, then prune and export")
    q.add_argument("--max-train-samples", type=int, default=1000, help="SST-2 training rows (default: 1000)")
    q.add_argument("--max-eval-samples", type=int, default=400, help="SST-2 dev rows (default: 400)")
    q.add_argument("--epochs", type=float, default=2.0, help="passes over the training rows (default: 2)")
    q.add_argument("--keep", type=float, default=None, help="share of ranks SoRA keeps (default: the recipe's)")
    q.add_argument("--output-dir", default="runs/quickstart", help="where the adapters go (default: runs/quickstart)")
    g = sub.add_parser("glue", help="train one method on one GLUE task and print the result table")
    _add_glue_options(g)
    g.add_argument("--output-dir", default=None,
                   help="folder for result.json (a rerun with the same options reuses it)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    a = sub.add_parser("allocate", help="per-module LoRA ranks for PEFT's rank_pattern from a short SoRA run, "
                       "scaled to a parameter budget", description="Runs SoRA briefly (by default 1,000 training "
                       "rows, one epoch; every option below overrides that or the recipe), reads the ranks its gates "
                       "kept, scales them to the budget and writes a JSON that peft.LoraConfig and soralab take "
                       "(soralab.patterns: peft_config / lora_config; soralab glue --rank-pattern).")
    _add_glue_options(a, given_only=True, skip=("rank_pattern",), helps={
        "method": "what finds the ranks: sora or adalora (default: sora)",
        "max_train_samples": f"training rows of the finding run (default: {FIND_DEFAULTS['max_train_samples']}; "
                             f"none: all)",
        "num_train_epochs": f"passes over them (default: {FIND_DEFAULTS['num_train_epochs']:g})",
        "max_eval_samples": f"rows per evaluation (default: {FIND_DEFAULTS['max_eval_samples']}; none: all)"})
    a.add_argument("--budget-rank", type=int, default=None, help="budget: the parameters of uniform LoRA of this "
                   "rank on the same target modules (default: 4)")
    a.add_argument("--budget-params", type=int, default=None, help="budget as a number of LoRA parameters instead")
    a.add_argument("--max-rank", type=int, default=None, help="no module gets more (default: min(in, out))")
    a.add_argument("--scaling", type=float, default=None, help="alpha / r of every module (default: the finding "
                   "run's lora_alpha / r)")
    a.add_argument("--output", required=True, help="the pattern's JSON file")
    a.add_argument("--output-dir", default=None, help="folder for the finding run's result.json (reused by a rerun)")
    a.add_argument("--no-progress", action="store_true", help="no progress bars")
    s = sub.add_parser("sweep", help="a grid of GLUE runs (tasks x methods x seeds x settings); resumable")
    s.add_argument("--tasks", nargs="+", required=True, help="GLUE tasks, e.g. rte mrpc")
    s.add_argument("--methods", nargs="+", required=True, help="methods, e.g. lora sora adalora")
    s.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3], help="seeds (default: 1 2 3)")
    s.add_argument("--grid", nargs="*", default=[], help="name=v1,v2 ... e.g. keep=0.25,0.5 (sora-only names stay "
                   "sora-only; a list option joins names with +: target_modules=query+value,query)")
    s.add_argument("--output-dir", required=True, help="root folder; one result.json per run below it")
    s.add_argument("--set", nargs="*", default=[], help="options shared by every run, e.g. max_train_samples=1000 "
                   "precision=fp32 target_modules=query,value")
    rep = sub.add_parser("report", help="aggregate a sweep's results: mean ± std over seeds, Markdown and CSV")
    rep.add_argument("output_dir", help="a sweep's root folder")
    rep.add_argument("--markdown", default=None, help="also write the table as Markdown here")
    rep.add_argument("--csv", default=None, help="also write the table as CSV here")
    nb = sub.add_parser("notebooks", help="run the notebook suite with papermill and write a summary")
    nb.add_argument("--profile", default=None,
                    help="smoke | classroom | paper (default: $SORALAB_PROFILE, else classroom)")
    nb.add_argument("--only", nargs="+", default=None, help="name prefixes, e.g. 00 03")
    nb.add_argument("--output-dir", default=None, help="where executed notebooks and the summary go "
                    "(default: runs/notebooks/<profile>)")
    nb.add_argument("--notebooks-dir", default=None, help="the clone's notebooks/ folder (default: ./notebooks, "
                    "else the clone of an editable install; a wheel install must name it)")
    nb.add_argument("--jobs", type=int, default=1, help="notebooks run at once, each in its own process with "
                    "cores / jobs threads, the longest first by each notebook's declared runtime (default: 1; "
                    "on 2 cores, 2 finishes the classroom suite sooner)")
    args = parser.parse_args(argv)
    if args.command == "notebooks":
        from .teaching.profiles import profile
        from .teaching.suite import run_suite, suite_ok

        name = profile(args.profile).name
        out = args.output_dir or f"runs/notebooks/{name}"
        rows = run_suite(name, out, args.only, args.notebooks_dir, jobs=args.jobs)
        return 0 if suite_ok(rows, name, out) else 1
    if args.command == "quickstart":
        return quickstart(args)
    if args.command in ("sweep", "report"):
        from .experiments.sweep import parse_grid, parse_set, report, sweep

        if args.command == "sweep":
            common = parse_set(args.set)
            sweep(args.tasks, args.methods, args.seeds, args.output_dir, grid=parse_grid(args.grid), **common)
            print(report(args.output_dir))
        else:
            print(report(args.output_dir, markdown=args.markdown, csv_path=args.csv))
        return 0
    opts = {name: getattr(args, name) for name in options(GlueConfig) if hasattr(args, name)}
    task, method = opts.pop("task"), opts.pop("method", "sora")
    if args.command == "allocate":
        return allocate_command(args, task, method, opts)
    config = user_input(GlueConfig, task=task, method=method, **opts)  # every option checked before anything loads
    check_output_dir(args.output_dir, "--output-dir")
    from .experiments.train import run_glue  # here, not at the top: training's imports would slow every --help

    if args.no_progress:  # (with progress, run_glue prints it)
        print(describe(config))
    result = run_glue(task, method, output_dir=args.output_dir, progress=not args.no_progress, **opts)
    print_result(result)
    return 1 if result.degenerate else 0


if __name__ == "__main__":
    sys.exit(main())
