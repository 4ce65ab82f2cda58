"""Statistics of pass/fail runs as pure functions: Wilson intervals, Fisher exact, McNemar, Holm.

No I/O and no dependencies: SciPy is 100 MB for a tool that starts in 50 ms, and these are
sums over `math.comb`. Exact integer arithmetic throughout; ties between probabilities are
judged with SciPy's relative tolerance (1e-7), so the p-values agree with
`scipy.stats.fisher_exact` and `scipy.stats.binomtest` (tests/test_stats.py checks them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal: a 95% interval
_TIE = 10**7  # probabilities within 1 part in 10^7 count as equal (SciPy's `1 + 1e-7`)
Side = Literal["above", "below"]


def wilson(passed: int, runs: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a pass rate; (0, 1) when nothing ran."""
    if runs <= 0:
        return (0.0, 1.0)
    p = passed / runs
    z2 = z * z
    centre = (p + z2 / (2 * runs)) / (1 + z2 / runs)
    half = z / (1 + z2 / runs) * math.sqrt(p * (1 - p) / runs + z2 / (4 * runs * runs))
    # the closed form can miss 0 or 1 by a rounding error at k = 0 or k = n
    low = 0.0 if passed == 0 else max(0.0, centre - half)
    high = 1.0 if passed == runs else min(1.0, centre + half)
    return (low, high)


def side_of(passed: int, runs: int, threshold: float) -> Side | None:
    """Where the Wilson interval lies against a pass-rate threshold: wholly at or above it,
    wholly below it, or None while it still straddles it."""
    low, high = wilson(passed, runs)
    if low >= threshold:
        return "above"
    if high < threshold:
        return "below"
    return None


def runs_still_needed(passed: int, runs: int, threshold: float, most: int) -> int:
    """How many more runs must happen, whatever they give, before the interval can leave the
    threshold; 0 when it already has or `most` runs are done. Running that many at once costs
    nothing a one-at-a-time loop would not also spend."""
    if runs >= most or side_of(passed, runs, threshold) is not None:
        return 0
    for extra in range(1, most - runs + 1):
        if side_of(passed + extra, runs + extra, threshold) == "above":
            return extra
        if side_of(passed, runs + extra, threshold) == "below":
            return extra
    return most - runs


def _sum_at_most(weights: list[int], observed: int) -> int:
    """The sum of the weights no larger than the observed one (with SciPy's tie tolerance)."""
    limit = observed * (_TIE + 1)
    return sum(w for w in weights if w * _TIE <= limit)


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p-value of Fisher's exact test on the 2x2 table [[a, b], [c, d]]."""
    if min(a, b, c, d) < 0:
        raise ValueError("counts must be >= 0")
    row1, row2, col1 = a + b, c + d, a + c
    lo, hi = max(0, col1 - row2), min(row1, col1)
    # hypergeometric probabilities, all over the same denominator comb(n, col1)
    weights = [math.comb(row1, x) * math.comb(row2, col1 - x) for x in range(lo, hi + 1)]
    total = sum(weights)
    if total == 0:
        return 1.0
    p = _sum_at_most(weights, weights[a - lo]) / total
    return min(1.0, p)


def binom_two_sided(k: int, n: int) -> float:
    """Two-sided exact binomial test of k successes in n against p = 1/2."""
    if not 0 <= k <= n:
        raise ValueError("need 0 <= k <= n")
    if n == 0 or 2 * k == n:
        return 1.0
    weights = [math.comb(n, i) for i in range(n + 1)]
    return min(1.0, _sum_at_most(weights, weights[k]) / (1 << n))


def mcnemar_exact(b: int, c: int) -> float:
    """Exact McNemar test on the discordant pairs: b went one way, c the other (binomial, 1/2)."""
    if b < 0 or c < 0:
        raise ValueError("counts must be >= 0")
    return binom_two_sided(b, b + c)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given (each at most 1)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted
