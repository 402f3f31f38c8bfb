"""``run_glue``: fine-tune a model on a GLUE task with one method, on the stock transformers Trainer.

The run's options and its result (``GlueConfig``, ``GlueResult``) are in ``run_config.py``, re-exported here.
Keyword names follow HF's ``run_glue.py`` and ``TrainingArguments``. soralab's ``ProximalAdamW`` is
passed through ``optimizers=`` for every method (with ``xi = 0`` it is exactly AdamW), so the methods
differ only in what trains. Options left at ``None`` come from the task's and method's recipe
(``soralab.experiments.recipes``); the saved configuration holds the values that ran and names those the recipe
gave. The result is written atomically to ``<output_dir>/result.json``; a rerun with the same configuration and
folder returns it instead of training again.
"""

from __future__ import annotations

import contextlib
import copy
import math
import shutil
import tempfile
import time
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import UsageError
from ..export import CONFIG_NAME, save_adapter
from ..files import atomic_write_text
from ..inject import matches
from ..layers import count_trainable
from ..optim import ProximalAdamW, param_groups
from ..prune import prune
from . import glue, metrics, sparsity
from .callbacks import AdaLoraCallback, GateStatsCallback, KeepCallback
from .glue_files import digest
from .hardware import attention_kernel, environment, replicas, use_cpu
from .methods import active_ranks, prepare, pruned_params
from .models import HEADS, TARGETS, load_classifier, max_tokens, model_family, set_dropout
from .results import CorruptResultError, dumps, select_best
from .run_config import REPORTED_SPLITS, RESULT_NAME, GlueConfig, GlueResult, describe
from .validate import check_run


def _eval_splits(data) -> dict:
    return {name: ds for name, ds in data.items() if name != "train"}


def _pattern_source(config: GlueConfig) -> str | None:
    """A hash of the rank pattern file a run reads: the config holds only its path, and the file can change."""
    return None if config.rank_pattern is None else f"blake2b:{digest(Path(config.rank_pattern))}"


def _reuse(output_dir: Path | None, config: GlueConfig, save_model: bool = False,
           auto_precision: bool = False, data: str | None = None) -> GlueResult | None:
    """The finished result in ``output_dir`` if it ran this configuration on this data; ``None`` if there is none.

    ``auto_precision``: the caller left ``precision="auto"``, so a result whose device chose another precision
    (bf16 on a GPU, fp32 on this CPU) is still this configuration and is reused, with a warning.
    ``data``: ``glue.data_source`` of this run; a result that recorded other data is refused (one saved before
    results recorded it is reused)."""
    if output_dir is None or not (output_dir / RESULT_NAME).is_file():
        return None
    try:
        old = GlueResult.from_json(output_dir / RESULT_NAME)
    except CorruptResultError as err:  # e.g. truncated: redo the run, which replaces the file
        warnings.warn(f"{err}; running it again", stacklevel=3)
        return None
    new = config.to_dict()
    same = {"from_recipe"} | ({"precision"} if auto_precision else set())  # where a value came from is no difference
    diff = {k: (old.config.get(k), new.get(k)) for k in sorted(set(old.config) | set(new))
            if old.config.get(k) != new.get(k) and k not in same}
    if diff:
        raise UsageError(f"{output_dir} holds a result from a different configuration (saved vs now: {diff}); "
                         f"use another output_dir, or delete {output_dir / RESULT_NAME} to rerun")
    if data is not None and old.environment.get("data", data) != data:
        raise UsageError(f"{output_dir} holds a result trained on other data (saved: {old.environment['data']}, "
                         f"now: {data}; data_dir or ${glue.ENV_VAR} names another copy of the task); use another "
                         f"output_dir, or delete {output_dir / RESULT_NAME} to rerun")
    if old.config.get("precision") != new["precision"]:  # only with auto_precision, else refused above
        warnings.warn(f"{output_dir / RESULT_NAME} ran in {old.config.get('precision')} on "
                      f"{old.environment.get('device', 'another device')}; precision='auto' would choose "
                      f"{new['precision']} here: reusing it, as precision was left to auto; pass precision= to refuse "
                      f"results of another precision", stacklevel=3)
    if old.environment.get("rank_pattern") not in (None, pattern := _pattern_source(config)):
        raise UsageError(f"{output_dir} holds a result trained with another rank pattern in {config.rank_pattern} "
                         f"(saved: {old.environment['rank_pattern']}, now: {pattern}); use another output_dir, or "
                         f"delete {output_dir / RESULT_NAME} to rerun")
    saved_replicas, now_replicas = old.environment.get("replicas", "1"), str(replicas(config.device))
    if saved_replicas != now_replicas:  # results saved before they recorded it ran one batch per step
        raise UsageError(f"{output_dir} holds a result trained with {saved_replicas} batch(es) per optimiser step "
                         f"(processes x GPUs), this run takes {now_replicas}: another global batch and step count; "
                         f"use another output_dir, or delete {output_dir / RESULT_NAME} to rerun")
    made_by, now = old.environment.get("soralab"), environment(config.device)["soralab"]
    if made_by != now:
        warnings.warn(f"{output_dir / RESULT_NAME} was made by soralab {made_by or '(before 0.1.0 recorded it)'}, "
                      f"this is {now}: reusing it; delete it to rerun with this version", stacklevel=3)
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
    if (limit := max_tokens(model, tokenizer)) is not None and config.max_seq_length > limit:
        raise UsageError(f"max_seq_length={config.max_seq_length} is longer than {config.model_name_or_path!r} takes "
                         f"({limit} tokens); use at most {limit}")
    if config.model_dropout is not None:
        set_dropout(model, config.model_dropout)  # before the adapters exist: their lora_dropout stays
    t1 = time.perf_counter()
    data = glue.tokenize(data, tokenizer, spec.name, max_length=config.max_seq_length)
    for split in _eval_splits(data):  # longest first: less padding per batch, same metrics
        lengths = [len(ids) for ids in data[split]["input_ids"]]
        data[split] = data[split].select(sorted(range(len(lengths)), key=lambda i: -lengths[i]))
    family = model_family(model)
    model = prepare(model, config.method, r=config.r, lora_alpha=config.lora_alpha,
                    lora_dropout=config.lora_dropout, target_modules=config.target_modules or TARGETS[family],
                    heads=HEADS[family], gate_init=config.gate_init, num_basis=config.num_basis, seed=config.seed,
                    total_steps=sparsity.total_steps(len(data["train"]), global_batch(config),
                                                     epochs or config.num_train_epochs),
                    rank_pattern=config.rank_pattern)
    trainable = count_trainable(model)
    t2 = time.perf_counter()
    return Prepared(config, spec, data, model, tokenizer, trainable, {"load": t1 - t0, "tokenize": t2 - t1})


def global_batch(config: GlueConfig) -> int:
    """Rows per optimiser step, as the Trainer counts them: a batch on every process, or on every GPU of one
    process (``hardware.replicas``)."""
    return config.per_device_train_batch_size * replicas(config.device)


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

    ``keep``: steer the gates' xi to keep that share of ranks (``sparsity.KeepSchedule``) instead of ``xi``.
    """
    from transformers import DataCollatorWithPadding, PrinterCallback, Trainer, TrainingArguments

    c = p.config
    steps_per_epoch = math.ceil(len(p.data["train"]) / global_batch(c))
    eval_every = max(1, steps_per_epoch // c.evals_per_epoch)
    total_steps = sparsity.total_steps(len(p.data["train"]), global_batch(c), epochs)
    ramp = {"start": c.keep_start, "end": c.keep_end} if keep is not None else {}
    gate_lr = c.gate_lr if c.gate_lr is not None or keep is None else sparsity.gate_lr(total_steps, **ramp)
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
        callbacks.append(KeepCallback(p.model, optimizer, keep, total_steps=total_steps, final=c.keep_final, **ramp))
    trainer = Trainer(model=p.model, args=args, train_dataset=p.data["train"],
                      eval_dataset=eval_splits if eval_splits is not None else _eval_splits(p.data),
                      data_collator=DataCollatorWithPadding(p.tokenizer),
                      compute_metrics=metrics.metrics_fn(p.spec.name), optimizers=(optimizer, None),
                      callbacks=callbacks)
    if not progress:  # no bars, and no log dicts printed in their place either
        trainer.remove_callback(PrinterCallback)
    if scratch is not None:
        weakref.finalize(trainer, shutil.rmtree, scratch, ignore_errors=True)
    return trainer


def release(trainer) -> None:
    """Take off the autocast wrapper that accelerate puts on the ``forward`` of a ``transformers.Trainer``'s model when
    it trains in bf16 or fp16. Left on, every later call of the trained model would still run in that precision,
    outside any Trainer (pruning and merging would then differ by bf16 rounding instead of float error)."""
    trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)


def run_glue(task: str, method: str = "sora", *, output_dir: str | Path | None = None, progress: bool = True,
             save_model: bool = False, **kwargs) -> GlueResult:
    """Fine-tune ``method`` on GLUE ``task`` and evaluate every epoch. See ``GlueConfig`` for the options."""
    config = GlueConfig(task=task, method=method, **kwargs)
    output_dir = Path(output_dir) if output_dir is not None else None
    check_run(config, output_dir, save_model)
    auto_precision = kwargs.get("precision", "auto") == "auto"
    data = glue.data_source(config.task, config.data_dir)  # recorded, and compared with a saved result's
    if (cached := _reuse(output_dir, config, save_model, auto_precision, data)) is not None:
        return cached
    if progress:
        print(describe(config))
    start = time.perf_counter()
    p = setup(config)
    gates = GateStatsCallback()
    trainer = make_trainer(p, xi=config.xi or 0.0, keep=config.keep, epochs=config.num_train_epochs,
                           output_dir=output_dir, progress=progress, callbacks=[gates])
    t0 = time.perf_counter()
    with attention_kernel(config.precision, config.device):  # bf16 on a CPU: SDPA's math kernel (hardware.py)
        trainer.train()
        evaluated = {e["step"] for e in trainer.state.log_history if any(k.startswith("eval_") for k in e)}
        if trainer.state.global_step not in evaluated:  # the final model is evaluated (transformers 5 does it already)
            trainer.evaluate()
    release(trainer)
    if output_dir is not None:  # the Trainer's folder: nothing in it with save_strategy="no"; a folder left empty
        with contextlib.suppress(OSError):
            (output_dir / "trainer").rmdir()
    evaluating = sum(v for e in trainer.state.log_history for k, v in e.items() if k.endswith("_runtime")
                     and k.startswith("eval_"))
    timings = {**p.timings, "train": time.perf_counter() - t0 - evaluating, "evaluate": evaluating}

    history = _history(trainer.state.log_history, gates.history)
    select = "validation" if "validation" in p.data else "validation_matched"
    key = f"eval_{select}_{p.spec.main_metric}"
    best = select_best(history, key)  # never a NaN evaluation; all NaN: a degenerate run, score NaN
    reported = next(s for s in REPORTED_SPLITS if s in p.data)  # the split GlueResult.score reads
    baseline = 100 * metrics.majority_baseline(p.spec, p.data["train"]["label"], p.data[reported]["label"])
    result = GlueResult(config=config.to_dict(), history=history, best=best, final=history[-1],
                        main_metric=p.spec.main_metric, trainable_params=p.trainable_params,
                        params_after_prune=pruned_params(p.model), active_ranks=active_ranks(p.model),
                        wall_time_s=time.perf_counter() - start, timings=timings,
                        environment={**environment(config.device), "data": data,
                                     **({"rank_pattern": _pattern_source(config)} if config.rank_pattern else {})},
                        baseline=baseline,
                        model=p.model)
    if output_dir is not None and trainer.is_world_process_zero():
        if save_model and method in ("lora", "sora", "nola"):
            # a pruned copy goes to disk; result.model stays as trained
            save_adapter(prune(copy.deepcopy(p.model)) if method == "sora" else p.model, output_dir / "adapter")
        atomic_write_text(output_dir / RESULT_NAME, dumps(result.to_dict()))  # NaN as null: valid JSON
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
            rows[g["step"]].update({k: g[k] for k in ("active_rank", "adapter_params_after_prune", "xi")})
    return [rows[s] for s in sorted(rows)]
