"""soralab.experiments.stats.paired: the paired difference over seeds that the records and notebook 09 report."""

import pytest

from soralab.experiments.stats import paired


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
