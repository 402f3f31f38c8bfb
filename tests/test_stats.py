"""soralab.experiments.stats.paired: the paired difference over seeds that the records and notebook 09 report."""

import pytest

from soralab.experiments.stats import paired, paired_by_task
from soralab.teaching.plots import plot_paired


def test_paired_by_hand():
    # differences 1, 2, 3: mean 2, sd 1, se 1/sqrt(3), t(0.975, 2) = 4.3027
    p = paired({0: 11.0, 1: 12.0, 2: 13.0, 9: 99.0}, {0: 10.0, 1: 10.0, 2: 10.0})
    assert p.n == 3 and p.mean == pytest.approx(2.0)
    assert (p.low, p.high) == pytest.approx((2 - 4.3027 / 3**0.5, 2 + 4.3027 / 3**0.5), abs=1e-3)
    assert p.reading() == "no difference shown (interval includes 0)"


def test_reading_names_the_side_of_zero():
    assert paired({0: 5.0, 1: 5.1, 2: 5.2}, {0: 1.0, 1: 1.0, 2: 1.0}).reading("up", "down") == "up (interval above 0)"
    assert paired({0: 1.0, 1: 1.0, 2: 1.0}, {0: 5.0, 1: 5.1, 2: 5.2}).reading("up", "down") == "down (interval below 0)"


def test_fewer_than_two_pairs_is_none():
    assert paired({0: 1.0}, {0: 2.0, 1: 3.0}) is None


def test_a_degenerate_run_has_no_score_to_pair():
    """A run whose every evaluation was NaN (``GlueResult.degenerate``) leaves its seed out; statistics.stdev would
    raise on it."""
    nan = float("nan")
    p = paired({0: nan, 1: 3.0, 2: 4.0, 3: 6.0}, {0: 1.0, 1: 2.0, 2: 1.0, 3: 2.0})
    assert p.n == 3 and p.mean == pytest.approx((1 + 3 + 4) / 3)
    assert paired({0: nan, 1: 3.0}, {0: 1.0, 1: 2.0}) is None  # one pair left


def test_pairs_that_all_differ_alike_give_no_interval_to_read():
    """Dev-set accuracy moves in steps of 1/872 on SST-2: two seeds can differ by exactly the same amount, and the
    t-interval then has no width. That is not a significant difference, and the reading says so."""
    p = paired({0: 100 * 760 / 872, 1: 100 * 761 / 872}, {0: 100 * 758 / 872, 1: 100 * 759 / 872})
    assert p.no_spread and p.bounds() == "no spread" and p.summary() == "+0.23, no spread"
    assert p.reading() == "every pair differs by +0.23: no spread, so no interval to read"
    q = paired({0: 2.0, 1: 3.0, 2: 4.5}, {0: 1.0, 1: 1.0, 2: 1.0})
    assert not q.no_spread and q.summary() == f"+2.17 [{q.low:+.2f}, {q.high:+.2f}]"


def test_one_seed_twice_in_a_record_is_refused():
    from soralab.errors import UsageError

    rows = [{"task": "mrpc", "method": "lora", "seed": 0, "score": s} for s in (80.0, 81.0)]
    with pytest.raises(UsageError, match="two rows for task mrpc, method lora, seed 0"):
        paired_by_task(rows, "lora", "sora")


def test_paired_by_task_pairs_each_task_by_seed_in_row_order():
    rows = [{"task": t, "method": m, "seed": s, "score": base + s + (1.0 if m == "sora" else 0.0) * k}
            for t, base, k in (("stsb", 80.0, -1.0), ("mrpc", 70.0, 2.0)) for m in ("lora", "sora") for s in (0, 1, 2)]
    rows.append({"task": "rte", "method": "sora", "seed": 0, "score": 50.0})  # one run, no pair: left out
    got = paired_by_task(rows, "sora", "lora")
    assert list(got) == ["stsb", "mrpc"]
    assert got["stsb"].mean == pytest.approx(-1.0) and got["mrpc"].mean == pytest.approx(2.0)
    assert got["mrpc"] == paired({0: 72.0, 1: 73.0, 2: 74.0}, {0: 70.0, 1: 71.0, 2: 72.0})
    assert paired_by_task(rows, "adalora", "lora") == {}


def test_plot_paired_draws_one_bar_per_comparison_and_task():
    import matplotlib

    matplotlib.use("Agg")
    one = paired({0: 2.0, 1: 3.0, 2: 4.5}, {0: 1.0, 1: 1.0, 2: 1.0})
    fig = plot_paired({"SoRA - LoRA": {"mrpc": one, "stsb": one}, "SoRA - AdaLoRA": {"stsb": one}})
    ax = fig.axes[0]
    assert [c.get_label() for c in ax.containers] == ["SoRA - LoRA (3 pairs)", "SoRA - AdaLoRA (3 pairs)"]
    assert [len(c.lines[0].get_xdata()) for c in ax.containers] == [2, 1]  # one marker per task it has
    assert [t.get_text() for t in ax.get_yticklabels()] == ["mrpc", "stsb"]
    xs = ax.containers[0].lines[0].get_xdata()
    assert list(xs) == pytest.approx([one.mean, one.mean])
