"""Paired differences over seeds, the one statistic the records and notebooks report."""

from __future__ import annotations

import math
import statistics
from typing import NamedTuple

from scipy import stats

from ..errors import UsageError


class Paired(NamedTuple):
    mean: float  # mean of a - b over the shared seeds
    low: float   # 95% t-interval
    high: float
    n: int       # pairs

    @property
    def no_spread(self) -> bool:
        """Every pair differs by the same amount (dev-set accuracies move in fixed steps, so with two or three pairs
        this happens): the t-interval has no width, which says nothing about how sure the difference is."""
        return math.isclose(self.low, self.high, rel_tol=1e-9, abs_tol=1e-9)

    def bounds(self) -> str:
        """The interval as the tables print it, "[-1.51, -0.38]", or "no spread" (``no_spread``)."""
        return "no spread" if self.no_spread else f"[{self.low:+.2f}, {self.high:+.2f}]"

    def summary(self) -> str:
        """The difference and its interval as the tables print them: "-0.95 [-1.51, -0.38]"."""
        return f"{self.mean:+.2f}{', ' if self.no_spread else ' '}{self.bounds()}"

    def reading(self, better: str = "better", worse: str = "worse") -> str:
        """Which side of 0 the interval lies on, in words."""
        if self.no_spread:
            return f"every pair differs by {self.mean:+.2f}: no spread, so no interval to read"
        if self.low > 0:
            return f"{better} (interval above 0)"
        if self.high < 0:
            return f"{worse} (interval below 0)"
        return "no difference shown (interval includes 0)"


def paired(a: dict[int, float], b: dict[int, float]) -> Paired | None:
    """Mean of ``a[seed] - b[seed]`` over the seeds both have a score for, with a 95% t-interval; None with fewer
    than two pairs. A NaN score (a degenerate run, ``GlueResult.degenerate``) has no score: its seed is left out."""
    seeds = sorted(s for s in set(a) & set(b) if not (math.isnan(a[s]) or math.isnan(b[s])))
    if len(seeds) < 2:
        return None
    d = [a[s] - b[s] for s in seeds]
    m, se = statistics.mean(d), statistics.stdev(d) / len(d) ** 0.5
    h = stats.t.ppf(0.975, len(d) - 1) * se
    return Paired(m, m - h, m + h, len(d))


def paired_by_task(rows: list[dict], a: str, b: str) -> dict[str, Paired]:
    """Method ``a`` minus method ``b`` per task, paired by seed, from a record's rows (``task``, ``method``,
    ``seed``, ``score``; ``paper_claims.read_record``), in the rows' task order; a task with fewer than two pairs is
    left out. Two rows of one task, method and seed are refused: which of them pairs would be arbitrary."""
    scores: dict[tuple[str, str], dict[int, float]] = {}
    for r in rows:
        runs = scores.setdefault((r["task"], r["method"]), {})
        if r["seed"] in runs:
            raise UsageError(f"two rows for task {r['task']}, method {r['method']}, seed {r['seed']}; a record holds "
                             f"one run per task, method and seed")
        runs[r["seed"]] = r["score"]
    out = {}
    for task in dict.fromkeys(r["task"] for r in rows):
        p = paired(scores.get((task, a), {}), scores.get((task, b), {}))
        if p is not None:
            out[task] = p
    return out
