"""Pictures for the notebooks. Each function draws on ``ax`` (or a new figure) and returns the figure."""

from __future__ import annotations

import itertools
import re

import numpy as np
import torch

MODULE_TYPES = ("query", "key", "value", "attn-out", "ffn-in", "ffn-out")
_SUFFIX_TO_TYPE = [("attention.output.dense", "attn-out"), ("intermediate.dense", "ffn-in"),
                   ("output.dense", "ffn-out"), ("query_proj", "query"), ("key_proj", "key"),
                   ("value_proj", "value"), ("query", "query"), ("key", "key"), ("value", "value")]


def _majority_line(ax, baseline: float | None, label: str = "majority class") -> None:
    """A dashed line at the majority-class score, where one is given."""
    if baseline is not None:
        ax.axhline(baseline, color="0.5", ls="--", lw=1, label=label)


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
    vmax = r_max or mat.max() or 1
    im = ax.imshow(mat, cmap="viridis", vmin=0, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(MODULE_TYPES)), MODULE_TYPES, rotation=30)
    ax.set_yticks(range(mat.shape[0]), [f"layer {i}" for i in range(mat.shape[0])])
    for (i, j), v in np.ndenumerate(mat):
        ax.text(j, i, str(v), ha="center", va="center", color="w" if v < vmax / 2 else "k")  # light on dark
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


def plot_lora_diagram(gate: bool = False, ax=None):
    """LoRA's layer as boxes and arrows: ``x`` enters the frozen ``W0`` and, beside it, the bottleneck ``A``
    (r x in) then ``B`` (out x r), scaled by ``s = alpha / r``; the two paths add up to ``h``. With ``gate=True``
    SoRA's gate vector ``g`` sits between ``A`` and ``B``: ``h = W0 x + s B (g * A x)``."""
    from matplotlib.patches import Circle, FancyBboxPatch

    fig, ax = _axes(ax, (7, 3.2))
    boxes = [("W0", "out × in, frozen", 3.0, 2.2, 2.4, "0.85")]  # name, shape, x centre, y centre, width, colour
    low = [("A", "r × in", "tab:blue"), ("g", "r gates", "tab:red"), ("B", "out × r", "tab:orange")]
    low = low if gate else [low[0], low[2]]
    xs = [1.8, 3.0, 4.2] if gate else [2.3, 3.7]
    boxes += [(name, shape, x, 0.6, 0.8, colour) for (name, shape, colour), x in zip(low, xs, strict=True)]
    for name, shape, x, y, w, colour in boxes:
        ax.add_patch(FancyBboxPatch((x - w / 2, y - 0.4), w, 0.8, boxstyle="round,pad=0.05", fc=colour,
                                    alpha=0.35 if name != "W0" else 1.0, ec="k"))
        ax.text(x, y + 0.12, name, ha="center", va="center", fontsize=13, weight="bold")
        ax.text(x, y - 0.22, shape, ha="center", va="center", fontsize=8)

    def arrow(x0, y0, x1, y1):
        ax.annotate("", (x1, y1), (x0, y0), arrowprops=dict(arrowstyle="->", lw=1.3))

    ax.text(0.2, 1.4, "x", ha="center", va="center", fontsize=14, style="italic")
    arrow(0.35, 1.5, 3.0 - 1.25, 2.2)  # x -> W0
    arrow(0.35, 1.3, boxes[1][2] - boxes[1][4] / 2 - 0.05, 0.6)  # x -> A
    for (_, _, x0, _, w0, _), (_, _, x1, _, w1, _) in itertools.pairwise(boxes[1:]):
        arrow(x0 + w0 / 2 + 0.05, 0.6, x1 - w1 / 2 - 0.05, 0.6)
    ax.add_patch(Circle((5.6, 1.4), 0.18, fc="w", ec="k"))
    ax.text(5.6, 1.4, "+", ha="center", va="center", fontsize=13)
    arrow(4.25, 2.2, 5.45, 1.5)  # W0 x -> +
    arrow(boxes[-1][2] + boxes[-1][4] / 2 + 0.05, 0.6, 5.45, 1.3)  # B ... -> +
    ax.text(5.75, 0.75, "× s = α / r", ha="left", va="center", fontsize=9)
    arrow(5.8, 1.4, 6.35, 1.4)
    ax.text(6.55, 1.4, "h", ha="center", va="center", fontsize=14, style="italic")
    ax.set_title("SoRA: h = W0 x + s · B (g ⊙ A x)" if gate else "LoRA: h = W0 x + s · B A x")
    ax.set_xlim(0, 7.0)
    ax.set_ylim(-0.05, 2.8)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig


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


def plot_sparsify(result, ax=None, baseline: float | None = None):
    """Memorization and generalization (x100) against non-zero adapter parameters (log scale, fewer to the right),
    one point per stage of ``soralab.experiments.scheduler.sparsify``; ``baseline``: the majority-class score."""
    fig, ax = _axes(ax, (6.5, 4))
    params = [s.nonzero_params for s in result.stages]
    ax.plot(params, [100 * s.memorization for s in result.stages], "o-", label="memorization (training subset)")
    ax.plot(params, [100 * s.generalization for s in result.stages], "s-", label="generalization (dev)")
    _majority_line(ax, baseline, "majority class (dev)")
    for s in result.stages:
        ax.annotate(f"xi={s.xi:.3g}", (s.nonzero_params, 100 * s.generalization), fontsize=7,
                    textcoords="offset points", xytext=(3, -10))
    if min(params) > 0:
        ax.set_xscale("log")
    else:  # a stage that killed every rank: 0 has no place on a log axis, symlog shows it
        ax.set_xscale("symlog", linthresh=1)
    ax.invert_xaxis()
    ax.set_xlabel("non-zero adapter parameters (log scale, fewer to the right)")
    ax.set_ylabel("score (x100)")
    ax.legend(fontsize=8)
    return fig


def plot_frontier(points: list[tuple[str, int, float]], ax=None, ylabel: str = "score (x100)",
                  baseline: float | None = None):
    """Score against stored parameters (log scale), one labelled point per ``(label, params, score)``; several
    points may share a label (seeds): each is drawn, the label written once. ``baseline``: a dashed line at the
    majority-class score."""
    fig, ax = _axes(ax)
    colours = {}  # one colour per label, in order of first appearance
    for label, params, score in points:
        if label not in colours:
            colours[label] = f"C{len(colours)}"
            ax.annotate(label, (params, score), fontsize=8, textcoords="offset points", xytext=(4, 4))
        ax.scatter(params, score, s=40, color=colours[label])
    if baseline is not None:
        _majority_line(ax, baseline)
        ax.legend(loc="lower right")
    ax.set_xscale("log")
    ax.set_xlabel("stored parameters (adapters + head, after pruning)")
    ax.set_ylabel(ylabel)
    return fig


def plot_history(results: dict, key: str, ax=None, ylabel: str | None = None, baseline: float | None = None):
    """An eval metric (x100) per evaluation, one line per labelled ``GlueResult``; ``baseline``: a dashed line at
    the majority-class score (x100)."""
    fig, ax = _axes(ax)
    for label, res in results.items():
        ax.plot([h["epoch"] for h in res.history], [100 * h.get(key, np.nan) for h in res.history], "o-", label=label)
    _majority_line(ax, baseline)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel or f"{key.removeprefix('eval_')} (x100)")
    ax.legend(fontsize=8)
    return fig


def plot_paired(differences: dict[str, dict], ax=None, unit: str = "points (x100)"):
    """A forest plot: one row per task, one marker per comparison with its 95% interval as a bar, and a line at 0.
    ``differences``: ``{comparison label: {task: Paired}}`` (``stats.paired_by_task``). An interval that crosses
    the line shows no difference."""
    comparisons = list(differences)
    tasks = list(dict.fromkeys(t for d in differences.values() for t in d))
    fig, ax = _axes(ax, figsize=(6, 0.6 + 0.5 * len(tasks) * max(1, len(comparisons)) ** 0.5))
    step = 0.8 / max(1, len(comparisons))
    for i, label in enumerate(comparisons):
        rows = [(j, differences[label][t]) for j, t in enumerate(tasks) if t in differences[label]]
        y = [j + (i - (len(comparisons) - 1) / 2) * step for j, _ in rows]
        mean = [p.mean for _, p in rows]
        err = [[p.mean - p.low for _, p in rows], [p.high - p.mean for _, p in rows]]
        ns = sorted({p.n for _, p in rows})  # tasks may have different numbers of pairs
        pairs = f"{ns[0]}" if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"
        ax.errorbar(mean, y, xerr=err, fmt="o", capsize=3, color=f"C{i}", label=f"{label} ({pairs} pairs)"
                    if rows else label)
    ax.axvline(0, color="0.4", lw=1)
    ax.set_yticks(range(len(tasks)), tasks)
    ax.invert_yaxis()
    ax.set_xlabel(f"difference, {unit}; bars: 95% interval over seeds")
    ax.legend(fontsize=8)
    return fig
