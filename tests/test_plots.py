"""Edge cases of soralab.teaching.plots that the notebooks can reach: a stage with every rank dead, an all-zero rank
heatmap, comparisons over different numbers of pairs."""

from types import SimpleNamespace

import matplotlib
import pytest

from soralab.experiments.stats import paired
from soralab.teaching.plots import plot_paired, plot_rank_heatmap, plot_sparsify

matplotlib.use("Agg")


def test_a_stage_with_no_parameters_left_stays_on_the_axis():
    stages = [SimpleNamespace(nonzero_params=n, memorization=m, generalization=g, xi=xi)
              for n, m, g, xi in ((1000, 0.9, 0.8, 0.0), (200, 0.8, 0.75, 10.0), (0, 0.5, 0.5, 40.0))]
    ax = plot_sparsify(SimpleNamespace(stages=stages)).axes[0]
    assert ax.get_xscale() == "symlog"  # log cannot place 0
    low, high = sorted(ax.get_xlim())
    assert low <= 0 <= high
    assert plot_sparsify(SimpleNamespace(stages=stages[:2])).axes[0].get_xscale() == "log"


def test_an_all_zero_heatmap_writes_light_numbers_on_its_dark_cells():
    ax = plot_rank_heatmap({f"bert.encoder.layer.0.attention.self.{m}": 0 for m in ("query", "key")}).axes[0]
    assert {t.get_color() for t in ax.texts} == {"w"}


@pytest.mark.parametrize("ns, label", [((3, 3), "SoRA - LoRA (3 pairs)"), ((3, 5), "SoRA - LoRA (3-5 pairs)")])
def test_the_legend_counts_the_pairs_of_every_task(ns, label):
    def diff(n):
        return paired({s: 1.0 + s for s in range(n)}, {s: 0.5 * s for s in range(n)})

    fig = plot_paired({"SoRA - LoRA": {"mrpc": diff(ns[0]), "stsb": diff(ns[1])}})
    assert [c.get_label() for c in fig.axes[0].containers] == [label]
