"""aicli/stats.py against SciPy: Wilson intervals, Fisher exact, exact McNemar, Holm."""

from __future__ import annotations

import math

import pytest
import scipy.stats as scipy_stats  # the test extra only: aicli never imports SciPy
from hypothesis import given, settings
from hypothesis import strategies as st

from aicli.stats import (
    binom_two_sided,
    fisher_exact,
    holm,
    mcnemar_exact,
    runs_still_needed,
    side_of,
    wilson,
)

counts = st.integers(min_value=0, max_value=60)


@st.composite
def k_of_n(draw: st.DrawFn, most: int = 400) -> tuple[int, int]:
    n = draw(st.integers(min_value=1, max_value=most))
    return draw(st.integers(min_value=0, max_value=n)), n


@settings(max_examples=300, derandomize=True)
@given(k_of_n())
def test_wilson_matches_scipy(kn: tuple[int, int]) -> None:
    k, n = kn
    ci = scipy_stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
    low, high = wilson(k, n)
    assert low == pytest.approx(ci.low, abs=1e-12)
    assert high == pytest.approx(ci.high, abs=1e-12)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_known_values() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    assert wilson(10, 10)[1] == 1.0 and wilson(0, 10)[0] == 0.0
    low, high = wilson(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)


@settings(max_examples=400, derandomize=True)
@given(counts, counts, counts, counts)
def test_fisher_matches_scipy(a: int, b: int, c: int, d: int) -> None:
    expected = scipy_stats.fisher_exact([[a, b], [c, d]]).pvalue
    assert fisher_exact(a, b, c, d) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_fisher_known_values() -> None:
    assert fisher_exact(10, 0, 0, 10) == pytest.approx(1.0825088224469026e-05)
    assert fisher_exact(1, 0, 0, 1) == 1.0
    assert fisher_exact(0, 0, 0, 0) == 1.0
    with pytest.raises(ValueError):
        fisher_exact(-1, 0, 0, 0)


@settings(max_examples=300, derandomize=True)
@given(st.integers(min_value=0, max_value=300), st.integers(min_value=0, max_value=300))
def test_mcnemar_is_scipys_binomial_test_on_the_discordant_pairs(b: int, c: int) -> None:
    p = mcnemar_exact(b, c)
    if b + c == 0:
        assert p == 1.0
        return
    expected = scipy_stats.binomtest(b, b + c, 0.5).pvalue
    assert p == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert p == binom_two_sided(b, b + c)


@settings(max_examples=300, derandomize=True)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=30))
def test_holm_is_monotone_bounded_and_matches_the_definition(ps: list[float]) -> None:
    adjusted = holm(ps)
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    for rank, i in enumerate(order):
        expected = max(min(1.0, (m - r) * ps[j]) for r, j in enumerate(order[: rank + 1]))
        assert adjusted[i] == pytest.approx(expected)
        assert ps[i] <= adjusted[i] + 1e-15 and adjusted[i] <= 1.0
    ranked = [adjusted[i] for i in order]
    assert ranked == sorted(ranked)


def test_holm_known_values() -> None:
    assert holm([]) == []
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


@settings(max_examples=200, derandomize=True)
@given(k_of_n(most=30), st.sampled_from([0.0, 0.3, 0.5, 0.8, 0.9, 1.0]))
def test_side_of_and_runs_still_needed(kn: tuple[int, int], threshold: float) -> None:
    k, n = kn
    low, high = wilson(k, n)
    side = side_of(k, n, threshold)
    assert side == ("above" if low >= threshold else "below" if high < threshold else None)
    need = runs_still_needed(k, n, threshold, 30)
    if side is not None or n >= 30:
        assert need == 0
        return
    assert 1 <= need <= 30 - n
    # no outcome of fewer runs can decide it, so running `need` at once wastes nothing
    for extra in range(1, need):
        for passes in range(extra + 1):
            assert side_of(k + passes, n + extra, threshold) is None
    assert not math.isnan(low)
