"""What defines a GLUE run and what it returns: ``GlueConfig`` (every option, with its command-line help; options
left at ``None`` are filled from the task's and method's recipe) and ``GlueResult`` (what ``result.json`` holds).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from ..config import SoRAConfig
from ..errors import UsageError
from ..optim import PROX_MODES
from ..patterns import load_pattern
from . import glue
from .hardware import resolve_precision
from .methods import check_method
from .models import DEFAULT_MODEL
from .recipes import RECIPE_FIELDS, recipe
from .results import CorruptResultError, read_result
from .validate import check_options

RESULT_NAME = "result.json"


def _opt(default: Any, help: str) -> Any:
    """A ``GlueConfig`` field with its command-line help (``soralab glue --help`` prints it)."""
    return field(default=default, metadata={"help": help})


RECIPE = "None: from the recipe (soralab.experiments.recipes)"
KEEP_SCHEDULE = ("keep_start", "keep_end", "keep_final")  # how keep is reached
# Options that only one method uses: given to another method they are refused (a sweep's --set and --grid give them
# only to that method's runs).
METHOD_ONLY = {**dict.fromkeys(("xi", "keep", *KEEP_SCHEDULE, "gate_init", "gate_lr", "prox", "gate_l1_loss"), "sora"),
               "num_basis": "nola"}
# Options of the adapters, which full fine-tuning and BitFit do not have: a sweep does not multiply their runs by them
ADAPTER_ONLY = ("r", "lora_alpha", "lora_dropout", "target_modules", "rank_pattern")


def uses(method: str, name: str) -> bool:
    """Whether ``method`` uses option ``name``: SoRA's and NOLA's own options (``METHOD_ONLY``) only theirs, the
    adapters' options (``ADAPTER_ONLY``) every method but full fine-tuning and BitFit, any other option every method."""
    if name in METHOD_ONLY:
        return METHOD_ONLY[name] == method
    return name not in ADAPTER_ONLY or method not in ("full", "bitfit")


# Options added to the recipe or to GlueConfig after results were first saved, with the value every run saved before
# them used (a default may change; what an old run did does not).
ADDED_LATER: dict[str, Any] = {"keep_start": 0.1, "keep_end": 0.7, "keep_final": False,
                               "model_dropout": None}  # before 2026-11-28 every run kept the checkpoint's dropout
# The checkpoint's own dropout (0.1), the default until 2026-11-28 (benchmarks/dropout_results.md): benchmarks whose
# committed runs predate dropout off pass it, so a rerun reproduces (and reuses) them.
CHECKPOINT_DROPOUT: dict[str, Any] = {"model_dropout": ADDED_LATER["model_dropout"]}


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
    model_dropout: float | None = _opt(0.0, "dropout of the pretrained model's own layers (every torch.nn.Dropout "
                                            "in it: hidden states, attention probabilities, classifier input); "
                                            "None: the checkpoint's values (0.1 for MiniLM). Off by default: "
                                            "a fifth faster on a CPU, same held-out scores (benchmarks/dropout.py)")
    target_modules: list[str] | None = _opt(None, "module names to adapt (None: all six linear layers of a block)")
    rank_pattern: str | None = _opt(None, "lora, peft-lora: a rank pattern JSON from `soralab allocate`; its "
                                          "target_modules, per-module ranks and alphas are used instead of "
                                          "target_modules, r and lora_alpha")
    keep: float | None = _opt(None, "SoRA: share of ranks to keep, in (0, 1], reached by steering xi during "
                                    f"training (soralab.experiments.sparsity); {RECIPE}; not with xi")
    keep_start: float | None = _opt(None, f"SoRA with keep: share of the run before xi rises; {RECIPE}")
    keep_end: float | None = _opt(None, f"SoRA with keep: share of the run by which the live ranks fall to keep; "
                                        f"{RECIPE}")
    keep_final: bool | None = _opt(None, "SoRA with keep: true: after keep_end, once keep is reached, the cut is "
                                         "final (xi 0, dead ranks stay zero, the survivors train unshrunk); false: "
                                         f"xi holds the share to the end; {RECIPE}")
    xi: float | None = _opt(None, "SoRA: a constant L1 strength instead of keep (threshold lr * xi per step)")
    gate_init: str | None = _opt(None, f"SoRA: initial gates, ones or randn; {RECIPE}")
    gate_lr: float | None = _opt(None, "SoRA: learning rate of the gates (None: with keep, "
                                       "soralab.experiments.sparsity.gate_lr of the run's steps; with xi, "
                                       "learning_rate)")
    prox: str = _opt("paper", "SoRA: paper (threshold lr * xi) or official (the authors' constant threshold xi, "
                              "so give xi, and their in-place steps)")
    gate_l1_loss: float = _opt(0.0, "SoRA: the authors' extra loss term lambda * mean|g| (the paper has none)")
    num_basis: int = _opt(64, "NOLA: random basis matrices for A and for B")
    evals_per_epoch: int = _opt(1, "evaluations per epoch (the best one is reported)")
    precision: str = _opt("auto", "auto (bf16 where it is faster: a GPU that supports it, a CPU with AMX; else "
                                  "fp32), fp32, bf16 or fp16 (GPU only)")
    torch_compile: bool = _opt(False, "compile the model with torch.compile before training")
    device: str = _opt("auto", "auto, cpu or cuda")
    from_recipe: list[str] = field(default=None, metadata={  # not an option: --set and the CLI do not offer it
        "help": "set by soralab: the options whose value came from the recipe", "internal": True})

    def __post_init__(self) -> None:
        if self.task is None:
            raise UsageError("task is required, e.g. task='rte'")
        check_options(self)  # types, finiteness and ranges of every option that is not None (soralab.validate)
        self.task = glue.get_task(self.task).name
        check_method(self.method)
        if self.rank_pattern is not None:
            if self.method not in ("lora", "peft-lora") or self.target_modules is not None:
                raise UsageError(f"rank_pattern sets the modules and ranks of lora or peft-lora; method "
                                 f"{self.method!r} with target_modules={self.target_modules} cannot take one")
            load_pattern(self.rank_pattern)  # checked now, before anything loads
        if self.split_protocol not in glue.SPLIT_PROTOCOLS:
            raise ValueError(f"split_protocol must be one of {glue.SPLIT_PROTOCOLS}, got {self.split_protocol!r}")
        if self.prox not in PROX_MODES:
            raise ValueError(f"prox must be one of {PROX_MODES}, got {self.prox!r}")
        self._fill_from_recipe()
        if self.head_lr is not None and self.head_lr == self.learning_rate:
            self.head_lr = None  # one rate for everything is head_lr=None: one configuration, one saved form
        self.precision = resolve_precision(self.precision, self.device)

    def _fill_from_recipe(self) -> None:
        sora_only = ("keep", "gate_init", *KEEP_SCHEDULE)
        for name, owner in METHOD_ONLY.items():
            value = getattr(self, name)
            if self.method != owner and value is not None and value != GlueConfig.__dataclass_fields__[name].default:
                raise UsageError(f"{name} is a {'SoRA' if owner == 'sora' else 'NOLA'} option; method "
                                 f"{self.method!r} does not use it (got {name}={value!r})")
        if self.method == "sora" and self.prox == "official" and self.xi is None:
            raise UsageError("prox='official' is the authors' optimiser: a constant threshold t = xi at every step; "
                             "give that xi (their GLUE scripts: xi=3e-4). The keep schedule sizes xi for the paper's "
                             "t = lr * xi and does not steer the authors' threshold")
        if self.xi is not None and self.keep is not None:  # (both are SoRA's: here the method is sora)
            raise UsageError(f"give SoRA's strength as keep (a share of ranks) or as xi (a constant), not both; "
                             f"got keep={self.keep}, xi={self.xi}")
        if self.xi is not None and (given := [n for n in KEEP_SCHEDULE if getattr(self, n) is not None]):
            raise UsageError(f"{', '.join(given)} shape how keep is reached; with a constant xi={self.xi} there is "
                             f"no keep schedule: drop them, or give keep instead of xi")
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
        if self.keep_start is not None and self.keep_end is not None and not self.keep_start < self.keep_end:
            raise UsageError(f"keep_start must come before keep_end (shares of the run), got keep_start="
                             f"{self.keep_start}, keep_end={self.keep_end}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The split a result reports, the first of these its data has: the paper protocol's test half (MNLI: the matched
# dev set), else the GLUE dev set (MNLI: matched). Checkpoints are chosen on "validation" (MNLI under "glue": matched).
REPORTED_SPLITS = ("test", "test_matched", "validation", "validation_matched")


@dataclass
class GlueResult:
    config: dict[str, Any]
    history: list[dict[str, float]]   # per evaluation: step, epoch, eval metrics; SoRA: active rank, adapter params, xi
    best: dict[str, float]            # the evaluation with the best main metric on "validation"
    final: dict[str, float]           # the last evaluation
    main_metric: str
    trainable_params: int             # before pruning (adapters + head)
    params_after_prune: int           # after cutting dead ranks (methods.pruned_params; AdaLoRA: its final ranks)
    active_ranks: dict[str, int] = field(default_factory=dict)
    wall_time_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds: load, tokenize, train, evaluate
    environment: dict[str, str] = field(default_factory=dict)  # versions, device (hardware.environment), data source
    # The majority-class score (x100) of the reported split: what a model that always predicts the most frequent
    # training label scores (0 for STS-B's Pearson). None in results saved before it was recorded.
    baseline: float | None = None
    reused: bool = False              # read back from output_dir, not run again (``model`` is then None)
    # The trained model, as training left it (SoRA not pruned; call soralab.prune on it, or on a copy). Not saved in
    # result.json; None for a reused result: pass save_model=True to keep the adapter in output_dir/adapter.
    model: torch.nn.Module | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """What result.json holds: every field but ``model`` and ``reused``."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("model", "reused")}

    @property
    def score(self) -> float:
        """The main metric of the reported split (``REPORTED_SPLITS``) at the best evaluation, times 100."""
        for split in REPORTED_SPLITS:
            if (key := f"eval_{split}_{self.main_metric}") in self.best:
                return 100 * self.best[key]
        raise KeyError(f"the best evaluation has no {self.main_metric!r} on any of {', '.join(REPORTED_SPLITS)} "
                       f"(it has {', '.join(sorted(self.best))})")

    @classmethod
    def from_json(cls, path: str | Path) -> GlueResult:
        """Read a saved result. Options added to ``GlueConfig`` after it was saved get their defaults, which is
        what that run used (``ADDED_LATER`` where an option's default comes from a recipe)."""
        data = read_result(path)  # names the file if it is truncated or not a result
        known = {f.name for f in fields(cls)}
        c = data["config"]
        try:
            defaults = GlueConfig(task=c.get("task"), method=c.get("method")).to_dict()
            then = {k: None if defaults.get(k) is None or c.get("xi") is not None else v  # xi: no keep schedule
                    for k, v in ADDED_LATER.items()}
            data["config"] = {**defaults, **then, **c}
            return cls(**{k: v for k, v in data.items() if k in known and k not in ("model", "reused")})
        except (TypeError, ValueError) as err:
            raise CorruptResultError(f"{path} is not a soralab result of a known task and method ({err})") from None

    def above_baseline(self, margin: float = 0.0) -> bool:
        """Whether the run learned: its score beats the majority-class score of the same split by more than
        ``margin`` points (x100). False when the baseline was not recorded or the score is NaN."""
        return self.baseline is not None and self.score > self.baseline + margin

    @property
    def degenerate(self) -> bool:
        """No evaluation gave a number for the main metric (see ``soralab.results.select_best``): score is NaN."""
        return math.isnan(self.score)


def describe(config: GlueConfig) -> str:
    """One line naming the run and the values that came from the recipe."""
    c = config.to_dict()
    filled = ", ".join(f"{k}={c[k]}" for k in c["from_recipe"]) or "none"
    return f"{c['task']} / {c['method']} ({c['precision']}); from the recipe: {filled}"
