"""Paired differences over seeds, the one statistic the records and notebooks report."""

from __future__ import annotations

import statistics
from typing import NamedTuple

from scipy import stats


class Paired(NamedTuple):
    mean: float  # mean of a - b over the shared seeds
    low: float   # 95% t-interval
    high: float
    n: int       # pairs

    def reading(self, better: str = "better", worse: str = "worse") -> str:
        """Which side of 0 the interval lies on, in words."""
        if self.low > 0:
            return f"{better} (interval above 0)"
        if self.high < 0:
            return f"{worse} (interval below 0)"
        return "no difference shown (interval includes 0)"


def paired(a: dict[int, float], b: dict[int, float]) -> Paired | None:
    """Mean of ``a[seed] - b[seed]`` over the seeds both have, with a 95% t-interval; None with fewer than two
    pairs."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None
    d = [a[s] - b[s] for s in seeds]
    m, se = statistics.mean(d), statistics.stdev(d) / len(d) ** 0.5
    h = stats.t.ppf(0.975, len(d) - 1) * se
    return Paired(m, m - h, m + h, len(d))


def paired_by_task(rows: list[dict], a: str, b: str) -> dict[str, Paired]:
    """Method ``a`` minus method ``b`` per task, paired by seed, from a record's rows (``task``, ``method``,
    ``seed``, ``score``; ``paper_claims.read_record``), in the rows' task order; a task with fewer than two pairs is
    left out."""
    scores: dict[tuple[str, str], dict[int, float]] = {}
    for r in rows:
        scores.setdefault((r["task"], r["method"]), {})[r["seed"]] = r["score"]
    out = {}
    for task in dict.fromkeys(r["task"] for r in rows):
        p = paired(scores.get((task, a), {}), scores.get((task, b), {}))
        if p is not None:
            out[task] = p
    return out
