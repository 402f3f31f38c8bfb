"""GLUE metrics from scikit-learn and scipy only, so they work offline (the ``evaluate`` library downloads its
metric code at run time), a ``compute_metrics=`` for transformers' Trainer, and the majority-class baseline every
result is read against.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from .glue import GlueTask, get_task


def _correlation(name: str, fn: Callable) -> Callable[[np.ndarray, np.ndarray], float]:
    """A correlation that is NaN, with a warning saying why, when either side is constant.

    A model that predicts one value for every example has no correlation with anything: the number is undefined,
    and NaN is recorded rather than a made-up 0. ``run_glue`` never picks a NaN evaluation as the best one.
    """

    def metric(p: np.ndarray, r: np.ndarray) -> float:
        if np.ptp(p) == 0 or np.ptp(r) == 0:
            side = "predictions" if np.ptp(p) == 0 else "references"
            warnings.warn(f"{name} is undefined (recorded as NaN): all {len(p)} {side} are equal", stacklevel=2)
            return float("nan")
        return fn(p, r)[0]

    return metric


_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], Any]] = {
    "accuracy": lambda p, r: accuracy_score(r, p),
    "f1": lambda p, r: f1_score(r, p),  # binary, positive class 1 (equivalent / duplicate), as GLUE
    "matthews_correlation": lambda p, r: matthews_corrcoef(r, p),
    "pearson": _correlation("pearson", pearsonr),
    "spearmanr": _correlation("spearmanr", spearmanr),
}


def compute_metrics(task: str | GlueTask, predictions: Sequence[Any] | np.ndarray,
                    references: Sequence[Any] | np.ndarray) -> dict[str, float]:
    """GLUE metrics from class ids (or STS-B scores) and references, e.g. ``{"f1": ..., "accuracy": ...}``."""
    spec = get_task(task)
    preds, refs = np.asarray(predictions), np.asarray(references)
    if preds.ndim != 1 or preds.shape != refs.shape or preds.size == 0:
        raise ValueError(f"predictions and references must be 1-D, non-empty and of equal length; got shapes "
                         f"{preds.shape} and {refs.shape} (for logits use metrics_fn, which takes the argmax)")
    if spec.is_regression:
        preds, refs = preds.astype(np.float64), refs.astype(np.float64)
    return {name: float(_METRICS[name](preds, refs)) for name in spec.metrics}


def metrics_fn(task: str | GlueTask) -> Callable[[Any], dict[str, float]]:
    """A ``compute_metrics=`` for transformers' Trainer: logits -> argmax (regression: squeeze) -> metrics."""
    spec = get_task(task)

    def fn(eval_pred: Any) -> dict[str, float]:
        if hasattr(eval_pred, "label_ids"):
            logits, labels = eval_pred.predictions, eval_pred.label_ids
        else:
            logits, labels = eval_pred
        if isinstance(logits, tuple):  # models that return extra outputs: logits come first
            logits = logits[0]
        logits = np.asarray(logits)
        preds = logits.reshape(-1) if spec.is_regression else logits.argmax(axis=-1)
        return compute_metrics(spec, preds, np.asarray(labels).reshape(-1))

    return fn


def majority_baseline(task: str | GlueTask, train_labels: Sequence[Any], eval_labels: Sequence[Any]) -> float:
    """The main metric (not x100) of a model that ignores its input: it always predicts the most frequent training
    class. For regression a constant prediction has no correlation with anything, so its Pearson counts as 0."""
    spec = get_task(task)
    if len(train_labels) == 0 or len(eval_labels) == 0:
        raise ValueError("majority_baseline needs non-empty training and eval labels")
    if spec.is_regression:
        return 0.0
    values, counts = np.unique(np.asarray(train_labels), return_counts=True)
    constant = np.full(len(eval_labels), values[counts.argmax()])
    return compute_metrics(spec, constant, eval_labels)[spec.main_metric]
