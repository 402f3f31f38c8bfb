"""``run_glue``: fine-tune a model on a GLUE task with one method, on the stock transformers Trainer.

Keyword names follow HF's ``run_glue.py`` and ``TrainingArguments``. soralab's ``ProximalAdamW`` is
passed through ``optimizers=`` for every method (with ``xi = 0`` it is exactly AdamW), so the methods
differ only in what trains. The result is written atomically to ``<output_dir>/result.json``; a
rerun with the same configuration and folder returns it instead of training again.
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

from . import glue
from .errors import UsageError
from .io import CONFIG_NAME, atomic_write_text, save_adapter
from .methods import DEFAULT_LR, AdaLoraCallback, GateStatsCallback, active_ranks, check_method, prepare
from .models import DEFAULT_MODEL, HEADS, TARGETS, load_classifier, model_family
from .optim import PROX_MODES, ProximalAdamW, param_groups
from .prune import gate_report, prune
from .results import CorruptResultError, dumps, read_result, select_best
from .validate import check_options, check_run

RESULT_NAME = "result.json"


@dataclass
class GlueConfig:
    """Everything that defines a run. Two runs with equal configs give the same result."""

    task: str
    method: str = "sora"
    model_name_or_path: str = DEFAULT_MODEL
    data_dir: str | None = None
    split_protocol: str = "glue"
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    max_seq_length: int = 128
    num_train_epochs: float = 3.0
    learning_rate: float | None = None  # None: the method's default (methods.DEFAULT_LR)
    per_device_train_batch_size: int = 32
    per_device_eval_batch_size: int = 64
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0  # gradient clipping (the Trainer's default; the authors' SoRA script uses 0.1)
    warmup_ratio: float = 0.06
    seed: int = 42
    r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    target_modules: list[str] | None = None  # None: all six linear layers of each block
    gate_init: str = "randn"
    xi: float = 10.0  # SoRA's L1 strength: threshold lr * xi per step (SST-2, 1,000 examples, lr 2e-3: 25% kept)
    gate_lr: float | None = None
    prox: str = "paper"  # "official": the authors' constant threshold xi and their in-place steps
    gate_l1_loss: float = 0.0  # the authors' code adds gate_l1_loss * mean|g| to the loss; the paper does not
    num_basis: int = 64  # NOLA: basis matrices for A and for B
    evals_per_epoch: int = 1
    bf16: bool = False
    fp16: bool = False
    device: str = "auto"  # auto | cpu | cuda

    def __post_init__(self) -> None:
        check_options(self)  # types, finiteness and ranges of every option that is not None (soralab.validate)
        self.task = glue.get_task(self.task).name
        check_method(self.method)
        if self.split_protocol not in glue.SPLIT_PROTOCOLS:
            raise ValueError(f"split_protocol must be one of {glue.SPLIT_PROTOCOLS}, got {self.split_protocol!r}")
        if self.prox not in PROX_MODES:
            raise ValueError(f"prox must be one of {PROX_MODES}, got {self.prox!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        for name in ("xi", "gate_l1_loss"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.num_train_epochs <= 0:
            raise ValueError(f"num_train_epochs must be > 0, got {self.num_train_epochs}")
        if self.learning_rate is None:
            self.learning_rate = DEFAULT_LR[self.method]

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
    if old.config != new:
        diff = {k: (old.config.get(k), new.get(k)) for k in sorted(set(old.config) | set(new))
                if old.config.get(k) != new.get(k)}
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


def setup(config: GlueConfig, epochs: float | None = None) -> Prepared:
    """Load data and model and prepare the model for the method (``epochs`` sizes AdaLoRA's schedule)."""
    from transformers import set_seed

    spec = glue.get_task(config.task)
    set_seed(config.seed)
    data = glue.load_glue(spec.name, config.data_dir, max_train_samples=config.max_train_samples,
                          max_eval_samples=config.max_eval_samples, seed=config.seed,
                          split_protocol=config.split_protocol)
    model, tokenizer = load_classifier(config.model_name_or_path, num_labels=spec.num_labels)
    data = glue.tokenize(data, tokenizer, spec.name, max_length=config.max_seq_length)
    for split in _eval_splits(data):  # longest first: less padding per batch, same metrics
        lengths = [len(ids) for ids in data[split]["input_ids"]]
        data[split] = data[split].select(sorted(range(len(lengths)), key=lambda i: -lengths[i]))
    family = model_family(model)
    steps = math.ceil(len(data["train"]) / config.per_device_train_batch_size)
    model = prepare(model, config.method, r=config.r, lora_alpha=config.lora_alpha,
                    lora_dropout=config.lora_dropout, target_modules=config.target_modules or TARGETS[family],
                    heads=HEADS[family], gate_init=config.gate_init, num_basis=config.num_basis, seed=config.seed,
                    total_steps=math.ceil(steps * (epochs or config.num_train_epochs)))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Prepared(config, spec, data, model, tokenizer, trainable)


def make_trainer(p: Prepared, *, xi: float, epochs: float, output_dir: Path | None, progress: bool,
                 eval_splits: dict | None = None, callbacks: list | None = None, evaluate: bool = True):
    """A stock ``transformers.Trainer`` with soralab's ``ProximalAdamW`` (``xi = 0``: plain AdamW)."""
    from transformers import DataCollatorWithPadding, PrinterCallback, Trainer, TrainingArguments

    c = p.config
    use_cpu = c.device == "cpu" or (c.device == "auto" and not torch.cuda.is_available())
    steps_per_epoch = math.ceil(len(p.data["train"]) / c.per_device_train_batch_size)
    eval_every = max(1, steps_per_epoch // c.evals_per_epoch)
    groups = param_groups(p.model, c.learning_rate, c.weight_decay, xi, c.gate_lr, l1_loss=c.gate_l1_loss)
    optimizer = ProximalAdamW(groups, lr=c.learning_rate, prox=c.prox)
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
        report_to="none", disable_tqdm=not progress, bf16=c.bf16, fp16=c.fp16, use_cpu=use_cpu,
        dataloader_num_workers=0, train_sampling_strategy="group_by_length",
    )
    callbacks = list(callbacks or []) + ([AdaLoraCallback()] if c.method == "adalora" else [])
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
    start = time.perf_counter()
    p = setup(config)
    gates = GateStatsCallback()
    trainer = make_trainer(p, xi=config.xi if method == "sora" else 0.0, epochs=config.num_train_epochs,
                           output_dir=output_dir, progress=progress, callbacks=[gates])
    trainer.train()
    if trainer.state.global_step % trainer.args.eval_steps:  # make sure the final model is evaluated
        trainer.evaluate()

    history = _history(trainer.state.log_history, gates.history)
    select = "validation" if "validation" in p.data else "validation_matched"
    key = f"eval_{select}_{p.spec.main_metric}"
    best = select_best(history, key)  # never a NaN evaluation; all NaN: a degenerate run, score NaN
    result = GlueResult(config=config.to_dict(), history=history, best=best, final=history[-1],
                        main_metric=p.spec.main_metric, trainable_params=p.trainable_params,
                        params_after_prune=params_after_prune(p), active_ranks=active_ranks(p.model),
                        wall_time_s=time.perf_counter() - start)
    if output_dir is not None and trainer.is_world_process_zero():
        if save_model and method in ("lora", "sora", "nola"):
            save_adapter(prune(p.model) if method == "sora" else p.model, output_dir / "adapter")
        atomic_write_text(output_dir / RESULT_NAME, dumps(asdict(result)))  # NaN as null: valid JSON
    result.model = p.model  # for interactive use; not serialised
    return result


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
            rows[g["step"]].update(active_rank=g["active_rank"], params_after_prune=g["params_after_prune"])
    return [rows[s] for s in sorted(rows)]
