"""The sparsifying scheduler (the paper's Algorithm 1): raise xi stage by stage and watch what is lost.

Stage 0 trains SoRA densely (xi = 0). Each later stage continues from the previous model with the next,
larger xi from ``xi_values`` and trains for ``epochs_per_stage``, as a run of its own: a fresh optimiser (Adam's
moments start at zero), a fresh warm-up and decay of the learning rate, the same data order. (The authors' code
instead raises the threshold inside one optimiser.) After every stage we record the non-zero adapter parameters,
*memorization* (the score on a fixed training subset of up to 1,000 examples) and *generalization* (the score on
the validation split; MNLI: validation_matched), also normalised as ``100 * score / score_of_stage_0`` as the
authors' code does.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from ..files import atomic_write_text
from ..prune import gate_report
from .hardware import attention_kernel
from .results import dumps
from .train import GlueConfig, make_trainer, release, setup

SPARSIFY_NAME = "sparsify.json"


XI_SCHEDULES = ("linear", "log_linear", "exp_linear")


def xi_values(start: float, end: float, n: int, kind: str = "linear") -> list[float]:
    """The authors' xi schedules for the sparsifying scheduler.

    linear: evenly spaced; log_linear: ``log(linspace(exp(start), exp(end)))`` (denser near
    ``end``); exp_linear: ``exp(linspace(log(start), log(end)))`` (geometric, needs start > 0).
    """
    if kind not in XI_SCHEDULES:
        raise ValueError(f"kind must be one of {XI_SCHEDULES}, got {kind!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not (0 <= start < math.inf and 0 <= end < math.inf):  # also refuses NaN
        raise ValueError(f"xi values must be >= 0, got start={start}, end={end}")
    if kind == "linear":
        v = np.linspace(start, end, n)
    elif kind == "log_linear":
        v = np.log(np.linspace(np.exp(start), np.exp(end), n))
    else:
        if start <= 0:
            raise ValueError("exp_linear needs start > 0 (it interpolates log(xi))")
        v = np.exp(np.linspace(np.log(start), np.log(end), n))
    return [float(x) for x in v]


@dataclass
class Stage:
    stage: int
    xi: float
    nonzero_params: int        # adapter parameters after pruning dead ranks (head excluded)
    active_rank: int
    memorization: float        # main metric on the fixed training subset
    generalization: float      # main metric on the validation split
    memorization_rel: float = 100.0     # 100 * memorization / memorization of stage 0
    generalization_rel: float = 100.0


@dataclass
class SparsifyResult:
    config: dict
    xi_schedule: list[float]
    stages: list[Stage] = field(default_factory=list)
    wall_time_s: float = 0.0
    model: nn.Module | None = field(default=None, repr=False, compare=False)  # as the last stage left it

    def to_dict(self) -> dict:
        """What the JSON file holds: every field but ``model``."""
        return {"config": self.config, "xi_schedule": self.xi_schedule, "stages": [asdict(s) for s in self.stages],
                "wall_time_s": self.wall_time_s}

    def table(self) -> str:
        """Scores x100, then relative to the dense stage (% of its score)."""
        rows = ["| stage | xi | non-zero params | active rank | memorization (x100) | generalization (x100) | "
                "mem. % of dense | gen. % of dense |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        rows += [f"| {s.stage} | {s.xi:g} | {s.nonzero_params:,} | {s.active_rank} | {100 * s.memorization:.2f} | "
                 f"{100 * s.generalization:.2f} | {s.memorization_rel:.1f} | {s.generalization_rel:.1f} |"
                 for s in self.stages]
        return "\n".join(rows)


def sparsify(task: str, *, xi_start: float, xi_end: float, n_stages: int, schedule: str = "linear",
             epochs_per_stage: float = 1.0, dense_epochs: float | None = None, memorization_samples: int = 1000,
             output_dir: str | Path | None = None, progress: bool = True, **kwargs) -> SparsifyResult:
    """Run Algorithm 1 for SoRA on ``task``; ``kwargs`` are ``GlueConfig`` options (model, data, lr, r, ...)."""
    xis = xi_values(xi_start, xi_end, n_stages, schedule)
    config = GlueConfig(task=task, method="sora", **{"xi": 0.0, **kwargs})  # each stage sets its own xi, not keep
    start = time.perf_counter()
    p = setup(config)
    train = p.data["train"]
    memo = train.shuffle(seed=config.seed).select(range(min(memorization_samples, len(train))))
    dev = "validation" if "validation" in p.data else "validation_matched"  # MNLI has two dev sets
    splits = {"memorization": memo, "validation": p.data[dev]}
    metric = p.spec.main_metric
    result = SparsifyResult(config=config.to_dict(), xi_schedule=xis)
    for i, xi in enumerate([0.0, *xis]):
        epochs = (dense_epochs or config.num_train_epochs) if i == 0 else epochs_per_stage
        trainer = make_trainer(p, xi=xi, epochs=epochs, output_dir=None, progress=progress, eval_splits=splits,
                               evaluate=False)
        with attention_kernel(config.precision, config.device):  # bf16 on a CPU: SDPA's math kernel
            trainer.train()
            scores = {name: trainer.evaluate(eval_dataset=ds, metric_key_prefix=name)[f"{name}_{metric}"]
                      for name, ds in splits.items()}
        release(trainer)  # the model answers in fp32 again between stages and after them
        report = gate_report(p.model)
        stage = Stage(i, xi, report.params_after_prune, report.active_rank, scores["memorization"],
                      scores["validation"])
        if result.stages:
            first = result.stages[0]
            stage.memorization_rel = 100 * stage.memorization / first.memorization if first.memorization else 0.0
            stage.generalization_rel = (100 * stage.generalization / first.generalization
                                        if first.generalization else 0.0)
        result.stages.append(stage)
    result.wall_time_s, result.model = time.perf_counter() - start, p.model
    if output_dir is not None:
        atomic_write_text(Path(output_dir) / SPARSIFY_NAME, dumps(result.to_dict()))  # NaN as null
    return result
