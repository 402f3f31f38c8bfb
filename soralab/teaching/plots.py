"""Pictures for the notebooks. Each function draws on ``ax`` (or a new figure) and returns the figure."""

from __future__ import annotations

import re

import numpy as np
import torch

MODULE_TYPES = ("query", "key", "value", "attn-out", "ffn-in", "ffn-out")
_SUFFIX_TO_TYPE = [("attention.output.dense", "attn-out"), ("intermediate.dense", "ffn-in"),
                   ("output.dense", "ffn-out"), ("query_proj", "query"), ("key_proj", "key"),
                   ("value_proj", "value"), ("query", "query"), ("key", "key"), ("value", "value")]


def _axes(ax, figsize=(6, 4)):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def module_position(name: str) -> tuple[int, str]:
    """``"bert.encoder.layer.3.attention.self.query"`` -> ``(3, "query")``."""
    m = re.search(r"\.(?:layer|h)\.(\d+)\.", "." + name)
    if m is None:
        raise ValueError(f"cannot find a layer index in module name {name!r}")
    for suffix, kind in _SUFFIX_TO_TYPE:
        if name.endswith(suffix):
            return int(m.group(1)), kind
    raise ValueError(f"unknown module type for {name!r}; known: {MODULE_TYPES}")


def rank_matrix(ranks: dict[str, int]) -> np.ndarray:
    """Active ranks as a (layers x module types) array; modules absent from ``ranks`` count as 0."""
    pos = {module_position(n): r for n, r in ranks.items()}
    n_layers = 1 + max(layer for layer, _ in pos)
    out = np.zeros((n_layers, len(MODULE_TYPES)), dtype=int)
    for (layer, kind), r in pos.items():
        out[layer, MODULE_TYPES.index(kind)] = r
    return out


def plot_rank_heatmap(ranks: dict[str, int], r_max: int | None = None, title: str = "", ax=None,
                      label: str = "rank"):
    """Surviving rank per layer (rows) and module type (columns); ``label`` names the colorbar."""
    mat = rank_matrix(ranks)
    fig, ax = _axes(ax, (5, 0.45 * mat.shape[0] + 1.5))
    im = ax.imshow(mat, cmap="viridis", vmin=0, vmax=r_max or mat.max() or 1, aspect="auto")
    ax.set_xticks(range(len(MODULE_TYPES)), MODULE_TYPES, rotation=30)
    ax.set_yticks(range(mat.shape[0]), [f"layer {i}" for i in range(mat.shape[0])])
    for (i, j), v in np.ndenumerate(mat):
        ax.text(j, i, str(v), ha="center", va="center", color="w" if v < (r_max or mat.max()) / 2 else "k")
    ax.set_title(title or "active rank")
    fig.colorbar(im, ax=ax, shrink=0.8, label=label)
    return fig


def plot_rank_pattern(pattern: dict, axes=None):
    """A ``soralab.allocate`` pattern: the ranks the finding run kept (left) and the pattern scaled to the budget
    (right), per layer (rows) and module type (columns); dropped modules show 0. Returns the figure."""
    import matplotlib.pyplot as plt

    found, scaled = pattern["found_ranks"], {n: pattern["rank_pattern"].get(n, 0) for n in pattern["found_ranks"]}
    run, budget = pattern.get("finding_run") or {}, pattern["budget"]
    if axes is None:
        n_layers = rank_matrix(found).shape[0]
        fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * n_layers + 2))
    r_max = run.get("r") if run.get("method") == "sora" else None  # AdaLoRA's r is its average target
    plot_rank_heatmap(found, r_max=r_max, ax=axes[0], label="live rank (non-zero gates)",
                      title=f"found by {run.get('method', 'SoRA')}: {pattern['found_params']:,} LoRA params")
    what = f"uniform r={budget['budget_rank']}" if budget.get("budget_rank") else f"{budget['budget_params']:,}"
    plot_rank_heatmap(scaled, ax=axes[1], label="rank in the pattern",
                      title=f"pattern at {what}: {pattern['params']:,} of {budget['budget_params']:,} params")
    return axes[0].figure


def plot_soft_threshold(t: float = 1.0, ax=None):
    """The proximal operator of t|x| next to the authors' code's three-step version and the identity."""
    from ..optim import official_threshold_, soft_threshold

    x = torch.linspace(-4 * t, 4 * t, 801)
    fig, ax = _axes(ax)
    ax.plot(x, x, color="0.8", lw=1, label="no threshold")
    ax.plot(x, soft_threshold(x, t), lw=2, label="soft threshold (paper)")
    ax.plot(x, official_threshold_(x.clone(), t), "--", lw=2, label="authors' code")
    ax.axvspan(t, 2 * t, color="tab:red", alpha=0.08)
    ax.axvspan(-2 * t, -t, color="tab:red", alpha=0.08)
    ax.set_xlabel("g before the step")
    ax.set_ylabel("g after the step")
    ax.set_title(f"t = {t:g}: values in (t, 2t) (shaded) are zeroed by the authors' code")
    ax.legend()
    return fig


def plot_sparsify(result, ax=None):
    """Memorization and generalization (% of the dense stage) against non-zero adapter parameters."""
    fig, ax = _axes(ax)
    params = [s.nonzero_params for s in result.stages]
    ax.plot(params, [s.memorization_rel for s in result.stages], "o-", label="memorization (train subset)")
    ax.plot(params, [s.generalization_rel for s in result.stages], "s-", label="generalization (dev)")
    for s in result.stages:
        ax.annotate(f"xi={s.xi:.3g}", (s.nonzero_params, s.generalization_rel), fontsize=7,
                    textcoords="offset points", xytext=(3, -10))
    ax.invert_xaxis()
    ax.set_xlabel("non-zero adapter parameters (fewer to the right)")
    ax.set_ylabel("score, % of the dense stage")
    ax.legend()
    return fig


def plot_frontier(points: list[tuple[str, int, float]], ax=None, ylabel: str = "score"):
    """Score against stored parameters (log scale), one labelled point per ``(label, params, score)``."""
    fig, ax = _axes(ax)
    for label, params, score in points:
        ax.scatter(params, score, s=40)
        ax.annotate(label, (params, score), fontsize=8, textcoords="offset points", xytext=(4, 4))
    ax.set_xscale("log")
    ax.set_xlabel("stored adapter parameters")
    ax.set_ylabel(ylabel)
    return fig


def plot_history(results: dict, key: str, ax=None):
    """An eval metric per evaluation step, one line per labelled ``GlueResult``."""
    fig, ax = _axes(ax)
    for label, res in results.items():
        ax.plot([h["epoch"] for h in res.history], [h.get(key, np.nan) for h in res.history], "o-", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(key)
    ax.legend()
    return fig
