"""``run_glue``: fine-tune a model on a GLUE task with one method, on the stock transformers Trainer.

Keyword names follow HF's ``run_glue.py`` and ``TrainingArguments``. soralab's ``ProximalAdamW`` is
passed through ``optimizers=`` for every method (with ``xi = 0`` it is exactly AdamW), so the methods
differ only in what trains. Options left at ``None`` come from the task's and method's recipe
(``soralab.recipes``); the saved configuration holds the values that ran and names those the recipe gave.
The result is written atomically to ``<output_dir>/result.json``; a rerun with the same configuration and
folder returns it instead of training again.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
import warnings
import weakref
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from . import glue, sparsity
from .config import SoRAConfig
from .errors import UsageError
from .hardware import environment, resolve_precision, use_cpu
from .inject import matches
from .io import CONFIG_NAME, atomic_write_text, save_adapter
from .methods import AdaLoraCallback, GateStatsCallback, KeepCallback, active_ranks, check_method, prepare
from .models import DEFAULT_MODEL, HEADS, TARGETS, load_classifier, model_family
from .optim import PROX_MODES, ProximalAdamW, param_groups
from .prune import gate_report, prune
from .recipes import RECIPE_FIELDS, recipe
from .results import CorruptResultError, dumps, read_result, select_best
from .validate import check_options, check_run

RESULT_NAME = "result.json"


def _opt(default: Any, help: str) -> Any:
    """A ``GlueConfig`` field with its command-line help (``soralab glue --help`` prints it)."""
    return field(default=default, metadata={"help": help})


RECIPE = "None: from the recipe (soralab.recipes)"


@dataclass
class GlueConfig:
    """Everything that defines a run. Two runs with equal configs give the same result."""

    task: str = _opt(None, "GLUE task: cola sst2 mrpc qqp stsb mnli qnli rte wnli")
    method: str = _opt("sora", "what trains: full bitfit lora peft-lora adalora sora nola")
    model_name_or_path: str = _opt(DEFAULT_MODEL, "'minilm' (packaged all-MiniLM-L6-v2), a hub id or a local folder")
    data_dir: str | None = _opt(None, "GLUE folder in the original layout (default: $SORALAB_GLUE_DIR, else the hub)")
    split_protocol: str = _opt("glue", "glue: train / dev; paper: the authors' splits; holdout: a slice of train "
                                       "as validation, no dev (for choosing hyperparameters)")
    max_train_samples: int | None = _opt(None, "a seeded subset of this many training rows (None: all)")
    max_eval_samples: int | None = _opt(None, "cap on every eval split (None: all)")
    max_seq_length: int | None = _opt(None, f"tokens per example, longer ones truncated; {RECIPE}")
    num_train_epochs: float | None = _opt(None, f"passes over the training set; {RECIPE}")
    learning_rate: float | None = _opt(None, f"peak learning rate (linear warm-up, linear decay); {RECIPE}")
    head_lr: float | None = _opt(None, f"learning rate of the task head (pooler, classifier); None in the recipe: "
                                       f"learning_rate; {RECIPE}")
    per_device_train_batch_size: int | None = _opt(None, f"training batch size; {RECIPE}")
    per_device_eval_batch_size: int = _opt(64, "evaluation batch size (no effect on results)")
    weight_decay: float = _opt(0.1, "AdamW weight decay on weights (not biases, norms or gates); SoRA needs it on "
                                    "A and B, or they grow while the gates shrink")
    max_grad_norm: float = _opt(1.0, "gradient clipping (the Trainer's default; the authors' SoRA script uses 0.1)")
    warmup_ratio: float | None = _opt(None, f"share of the steps spent warming the lr up; {RECIPE}")
    seed: int = _opt(42, "seed for data subsets, splits, initialisation and shuffling")
    r: int = _opt(8, "adapter rank (SoRA: r_max, the rank before pruning)")
    lora_alpha: float = _opt(16.0, "adapter scale numerator: the update is multiplied by lora_alpha / r")
    lora_dropout: float = _opt(0.0, "dropout on the adapter's input")
    target_modules: list[str] | None = _opt(None, "module names to adapt (None: all six linear layers of a block)")
    rank_pattern: str | None = _opt(None, "lora, peft-lora: a rank pattern JSON from `soralab allocate`; its "
                                          "target_modules, per-module ranks and alphas are used instead of "
                                          "target_modules, r and lora_alpha")
    keep: float | None = _opt(None, "SoRA: share of ranks to keep, in (0, 1], reached by steering xi during "
                                    f"training (soralab.sparsity); {RECIPE}; ignored when xi is given")
    xi: float | None = _opt(None, "SoRA: a constant L1 strength instead of keep (threshold lr * xi per step)")
    gate_init: str | None = _opt(None, f"SoRA: initial gates, ones or randn; {RECIPE}")
    gate_lr: float | None = _opt(None, "SoRA: learning rate of the gates (None: with keep, soralab.sparsity.gate_lr "
                                       "of the run's steps; with xi, learning_rate)")
    prox: str = _opt("paper", "SoRA: paper (threshold lr * xi) or official (the authors' constant xi and their "
                              "in-place steps)")
    gate_l1_loss: float = _opt(0.0, "SoRA: the authors' extra loss term lambda * mean|g| (the paper has none)")
    num_basis: int = _opt(64, "NOLA: random basis matrices for A and for B")
    evals_per_epoch: int = _opt(1, "evaluations per epoch (the best one is reported)")
    precision: str = _opt("auto", "auto (bf16 where it is faster: a GPU that supports it, a CPU with AMX; else "
                                  "fp32), fp32, bf16 or fp16 (GPU only)")
    torch_compile: bool = _opt(False, "compile the model with torch.compile before training")
    device: str = _opt("auto", "auto, cpu or cuda")
    from_recipe: list[str] = _opt(None, "set by soralab: the options whose value came from the recipe")

    def __post_init__(self) -> None:
        if self.task is None:
            raise UsageError("task is required, e.g. task='rte'")
        check_options(self)  # types, finiteness and ranges of every option that is not None (soralab.validate)
        self.task = glue.get_task(self.task).name
        check_method(self.method)
        if self.rank_pattern is not None:
            from .allocate import load_pattern

            if self.method not in ("lora", "peft-lora") or self.target_modules is not None:
                raise UsageError(f"rank_pattern sets the modules and ranks of lora or peft-lora; method "
                                 f"{self.method!r} with target_modules={self.target_modules} cannot take one")
            load_pattern(self.rank_pattern)  # checked now, before anything loads
        if self.split_protocol not in glue.SPLIT_PROTOCOLS:
            raise ValueError(f"split_protocol must be one of {glue.SPLIT_PROTOCOLS}, got {self.split_protocol!r}")
        if self.prox not in PROX_MODES:
            raise ValueError(f"prox must be one of {PROX_MODES}, got {self.prox!r}")
        self._fill_from_recipe()
        self.precision = resolve_precision(self.precision, self.device)

    def _fill_from_recipe(self) -> None:
        sora_only = ("keep", "gate_init")
        if self.method != "sora":
            for name in (*sora_only, "xi"):
                if getattr(self, name) is not None:
                    raise UsageError(f"{name} is a SoRA option; method {self.method!r} does not use it")
        elif self.xi is not None and self.keep is not None:
            raise UsageError(f"give SoRA's strength as keep (a share of ranks) or as xi (a constant), not both; "
                             f"got keep={self.keep}, xi={self.xi}")
        if self.from_recipe is not None:  # a saved configuration: already filled
            return
        values, filled = recipe(self.task, self.method), []
        if self.method == "sora" and self.xi is not None and self.gate_init is None:
            self.gate_init = SoRAConfig.gate_init  # a constant xi is the paper's SoRA: the authors' randn gates
        for name in RECIPE_FIELDS:
            if name in sora_only and (self.method != "sora" or self.xi is not None):
                continue
            if getattr(self, name) is None and values[name] is not None:
                setattr(self, name, values[name])
                filled.append(name)
        self.from_recipe = filled

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GlueResult:
    config: dict[str, Any]
    history: list[dict[str, float]]   # one row per evaluation: step, epoch, every eval metric, active rank
    best: dict[str, float]            # the evaluation with the best main metric on "validation"
    final: dict[str, float]           # the last evaluation
    main_metric: str
    trainable_params: int             # before pruning (adapters + head)
    params_after_prune: int           # after pruning dead ranks (equal to trainable for non-SoRA methods)
    active_ranks: dict[str, int] = field(default_factory=dict)
    wall_time_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds: load, tokenize, train, evaluate
    environment: dict[str, str] = field(default_factory=dict)  # versions and device (hardware.environment)
    reused: bool = False

    @property
    def score(self) -> float:
        """The main metric of the reported split at the best evaluation, times 100."""
        split = "test" if any(k.startswith("eval_test") for k in self.best) else "validation"
        return 100 * self.best[f"eval_{split}_{self.main_metric}"]

    @classmethod
    def from_json(cls, path: str | Path) -> GlueResult:
        """Read a saved result. Options added to ``GlueConfig`` after it was saved get their defaults, which is
        what that run used."""
        data = read_result(path)  # names the file if it is truncated or not a result
        known = {f.name for f in fields(cls)}
        c = data["config"]
        try:
            data["config"] = {**GlueConfig(task=c.get("task"), method=c.get("method")).to_dict(), **c}
            return cls(**{k: v for k, v in data.items() if k in known})
        except (TypeError, ValueError) as err:
            raise CorruptResultError(f"{path} is not a soralab result of a known task and method ({err})") from None

    @property
    def degenerate(self) -> bool:
        """No evaluation gave a number for the main metric (see ``soralab.results.select_best``): score is NaN."""
        return math.isnan(self.score)


def _eval_splits(data) -> dict:
    return {name: ds for name, ds in data.items() if name != "train"}


def _reuse(output_dir: Path | None, config: GlueConfig, save_model: bool = False) -> GlueResult | None:
    if output_dir is None or not (output_dir / RESULT_NAME).is_file():
        return None
    try:
        old = GlueResult.from_json(output_dir / RESULT_NAME)
    except CorruptResultError as err:  # e.g. truncated: redo the run, which replaces the file
        warnings.warn(f"{err}; running it again", stacklevel=3)
        return None
    new = config.to_dict()
    diff = {k: (old.config.get(k), new.get(k)) for k in sorted(set(old.config) | set(new))
            if old.config.get(k) != new.get(k) and k != "from_recipe"}  # where a value came from is no difference
    if diff:
        raise UsageError(f"{output_dir} holds a result from a different configuration (saved vs now: {diff}); "
                         f"use another output_dir, or delete {output_dir / RESULT_NAME} to rerun")
    if save_model and not (output_dir / "adapter" / CONFIG_NAME).is_file():
        warnings.warn(f"{output_dir / RESULT_NAME} is a finished run of this configuration, but no adapter was "
                      f"saved with it; training again to save one (save_model=True)", stacklevel=3)
        return None
    old.reused = True
    return old


@dataclass
class Prepared:
    """A task's tokenized data and a model ready for ``config.method``."""

    config: GlueConfig
    spec: glue.GlueTask
    data: Any  # datasets.DatasetDict, eval splits sorted longest first
    model: torch.nn.Module
    tokenizer: Any
    trainable_params: int
    timings: dict[str, float] = field(default_factory=dict)


def setup(config: GlueConfig, epochs: float | None = None) -> Prepared:
    """Load data and model and prepare the model for the method (``epochs`` sizes AdaLoRA's schedule)."""
    from transformers import set_seed

    spec = glue.get_task(config.task)
    set_seed(config.seed)
    t0 = time.perf_counter()
    data = glue.load_glue(spec.name, config.data_dir, max_train_samples=config.max_train_samples,
                          max_eval_samples=config.max_eval_samples, seed=config.seed,
                          split_protocol=config.split_protocol)
    model, tokenizer = load_classifier(config.model_name_or_path, num_labels=spec.num_labels)
    t1 = time.perf_counter()
    data = glue.tokenize(data, tokenizer, spec.name, max_length=config.max_seq_length)
    for split in _eval_splits(data):  # longest first: less padding per batch, same metrics
        lengths = [len(ids) for ids in data[split]["input_ids"]]
        data[split] = data[split].select(sorted(range(len(lengths)), key=lambda i: -lengths[i]))
    family = model_family(model)
    steps = math.ceil(len(data["train"]) / config.per_device_train_batch_size)
    model = prepare(model, config.method, r=config.r, lora_alpha=config.lora_alpha,
                    lora_dropout=config.lora_dropout, target_modules=config.target_modules or TARGETS[family],
                    heads=HEADS[family], gate_init=config.gate_init, num_basis=config.num_basis, seed=config.seed,
                    total_steps=math.ceil(steps * (epochs or config.num_train_epochs)),
                    rank_pattern=config.rank_pattern)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    t2 = time.perf_counter()
    return Prepared(config, spec, data, model, tokenizer, trainable, {"load": t1 - t0, "tokenize": t2 - t1})


def head_parameters(model: torch.nn.Module, heads: list[str]) -> list[torch.nn.Parameter]:
    """Trainable parameters of the modules named (or ending with) ``heads``, e.g. ``bert.pooler``, ``classifier``;
    inside a PEFT model this finds the trained copy of each module."""
    found = {}
    for name, module in model.named_modules():
        if name and matches(name, heads):
            found.update({id(p): p for p in module.parameters() if p.requires_grad})
    return list(found.values())


def optimizer_groups(p: Prepared, xi: float, gate_lr: float | None) -> list[dict]:
    """``param_groups`` for the run; with ``head_lr`` the head's parameters move to groups of their own."""
    c = p.config
    groups = param_groups(p.model, c.learning_rate, c.weight_decay, xi, gate_lr, l1_loss=c.gate_l1_loss)
    if c.head_lr is None:
        return groups
    head = {id(q) for q in head_parameters(p.model, HEADS[model_family(p.model)])}
    out = []
    for g in groups:
        rest = [q for q in g["params"] if id(q) not in head]
        mine = [q for q in g["params"] if id(q) in head]
        out += [{**g, "params": rest}] if rest else []
        out += [{**g, "params": mine, "lr": c.head_lr, "name": g["name"] + "_head"}] if mine else []
    return out


def make_trainer(p: Prepared, *, xi: float, epochs: float, output_dir: Path | None, progress: bool,
                 eval_splits: dict | None = None, callbacks: list | None = None, evaluate: bool = True,
                 keep: float | None = None):
    """A stock ``transformers.Trainer`` with soralab's ``ProximalAdamW`` (``xi = 0``: plain AdamW).

    ``keep``: steer the gates' xi to keep that share of ranks (``soralab.sparsity.KeepSchedule``) instead of ``xi``.
    """
    from transformers import DataCollatorWithPadding, PrinterCallback, Trainer, TrainingArguments

    c = p.config
    steps_per_epoch = math.ceil(len(p.data["train"]) / c.per_device_train_batch_size)
    eval_every = max(1, steps_per_epoch // c.evals_per_epoch)
    total_steps = math.ceil(steps_per_epoch * epochs)
    gate_lr = c.gate_lr if c.gate_lr is not None or keep is None else sparsity.gate_lr(total_steps)
    optimizer = ProximalAdamW(optimizer_groups(p, xi, gate_lr), lr=c.learning_rate, prox=c.prox)
    scratch = None if output_dir else tempfile.mkdtemp(prefix="soralab-trainer-")  # nothing left in the cwd
    args = TrainingArguments(
        output_dir=str(output_dir / "trainer") if output_dir else scratch,
        num_train_epochs=epochs, learning_rate=c.learning_rate,
        per_device_train_batch_size=c.per_device_train_batch_size,
        per_device_eval_batch_size=c.per_device_eval_batch_size, weight_decay=c.weight_decay,
        max_grad_norm=c.max_grad_norm,
        # transformers 5 has no warmup_ratio; warmup_steps reads a float in [0, 1) as that fraction of the steps
        # (a value >= 1 would be a step count, hence check_options keeps warmup_ratio in [0, 1))
        warmup_steps=c.warmup_ratio, lr_scheduler_type="linear", seed=c.seed,
        eval_strategy="steps" if evaluate else "no", eval_steps=eval_every, logging_steps=eval_every,
        save_strategy="no",
        report_to="none", disable_tqdm=not progress, bf16=c.precision == "bf16", fp16=c.precision == "fp16",
        use_cpu=use_cpu(c.device), torch_compile=c.torch_compile,
        dataloader_num_workers=0, train_sampling_strategy="group_by_length",
    )
    callbacks = list(callbacks or []) + ([AdaLoraCallback()] if c.method == "adalora" else [])
    if keep is not None:
        callbacks.append(KeepCallback(p.model, optimizer, keep, total_steps=total_steps))
    trainer = Trainer(model=p.model, args=args, train_dataset=p.data["train"],
                      eval_dataset=eval_splits if eval_splits is not None else _eval_splits(p.data),
                      data_collator=DataCollatorWithPadding(p.tokenizer),
                      compute_metrics=glue.metrics_fn(p.spec.name), optimizers=(optimizer, None), callbacks=callbacks)
    if not progress:  # no bars, and no log dicts printed in their place either
        trainer.remove_callback(PrinterCallback)
    if scratch is not None:
        weakref.finalize(trainer, shutil.rmtree, scratch, ignore_errors=True)
    return trainer


def params_after_prune(p: Prepared) -> int:
    """Trainable parameters once dead SoRA ranks are cut out (unchanged for other methods)."""
    if p.config.method != "sora":
        return p.trainable_params
    report = gate_report(p.model)
    return p.trainable_params - report.params + report.params_after_prune


def run_glue(task: str, method: str = "sora", *, output_dir: str | Path | None = None, progress: bool = True,
             save_model: bool = False, **kwargs) -> GlueResult:
    """Fine-tune ``method`` on GLUE ``task`` and evaluate every epoch. See ``GlueConfig`` for the options."""
    config = GlueConfig(task=task, method=method, **kwargs)
    output_dir = Path(output_dir) if output_dir is not None else None
    check_run(config, output_dir, save_model)
    if (cached := _reuse(output_dir, config, save_model)) is not None:
        return cached
    if progress:
        print(describe(config))
    start = time.perf_counter()
    p = setup(config)
    gates = GateStatsCallback()
    trainer = make_trainer(p, xi=config.xi or 0.0, keep=config.keep, epochs=config.num_train_epochs,
                           output_dir=output_dir, progress=progress, callbacks=[gates])
    t0 = time.perf_counter()
    trainer.train()
    if trainer.state.global_step % trainer.args.eval_steps:  # make sure the final model is evaluated
        trainer.evaluate()
    evaluating = sum(v for e in trainer.state.log_history for k, v in e.items() if k.endswith("_runtime")
                     and k.startswith("eval_"))
    timings = {**p.timings, "train": time.perf_counter() - t0 - evaluating, "evaluate": evaluating}

    history = _history(trainer.state.log_history, gates.history)
    select = "validation" if "validation" in p.data else "validation_matched"
    key = f"eval_{select}_{p.spec.main_metric}"
    best = select_best(history, key)  # never a NaN evaluation; all NaN: a degenerate run, score NaN
    result = GlueResult(config=config.to_dict(), history=history, best=best, final=history[-1],
                        main_metric=p.spec.main_metric, trainable_params=p.trainable_params,
                        params_after_prune=params_after_prune(p), active_ranks=active_ranks(p.model),
                        wall_time_s=time.perf_counter() - start, timings=timings,
                        environment=environment(config.device))
    if output_dir is not None and trainer.is_world_process_zero():
        if save_model and method in ("lora", "sora", "nola"):
            save_adapter(prune(p.model) if method == "sora" else p.model, output_dir / "adapter")
        atomic_write_text(output_dir / RESULT_NAME, dumps(asdict(result)))  # NaN as null: valid JSON
    result.model = p.model  # for interactive use; not serialised
    return result


def describe(config: GlueConfig) -> str:
    """One line naming the run and the values that came from the recipe."""
    c = config.to_dict()
    filled = ", ".join(f"{k}={c[k]}" for k in c["from_recipe"]) or "none"
    return f"{c['task']} / {c['method']} ({c['precision']}); from the recipe: {filled}"


def _history(log_history: list[dict], gate_rows: list[dict]) -> list[dict]:
    """Merge the Trainer's per-split eval logs (one dict per split and step) into one row per step."""
    rows: dict[int, dict] = {}
    for entry in log_history:
        if any(k.startswith("eval_") and not k.endswith(("_runtime", "_per_second")) for k in entry):
            row = rows.setdefault(entry["step"], {"step": entry["step"], "epoch": entry.get("epoch")})
            row.update({k: v for k, v in entry.items() if k.startswith("eval_") and
                        not k.endswith(("_runtime", "_samples_per_second", "_steps_per_second"))})
    for g in gate_rows:
        if g["step"] in rows:
            rows[g["step"]].update(active_rank=g["active_rank"], params_after_prune=g["params_after_prune"], xi=g["xi"])
    return [rows[s] for s in sorted(rows)]
