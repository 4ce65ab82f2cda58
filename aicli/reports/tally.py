"""Tally: k passed of n runs, with the pass rate, its Wilson interval and the verdicts from it.

The bottom of `aicli.reports` with `results.py`: it imports only `aicli.stats`. Every statistic a
report shows is derived here from the counts, never stored and read back, so merging shards
gives exactly the figures of one run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from aicli.stats import Side, side_of, wilson

Verdict = Literal["passed", "failed"]
_EPS = 1e-9  # a pass rate equal to the threshold passes, floating error or not


@dataclass(frozen=True, slots=True)
class Tally:
    """Runs that ran (skipped ones are not runs) and how many of them passed."""

    passed: int = 0
    runs: int = 0

    def plus(self, passed: bool) -> Tally:
        return Tally(self.passed + int(passed), self.runs + 1)

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.passed + other.passed, self.runs + other.runs)

    @property
    def failed(self) -> int:
        return self.runs - self.passed

    @property
    def rate(self) -> float | None:
        return self.passed / self.runs if self.runs else None

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% Wilson score interval of the pass rate."""
        return wilson(self.passed, self.runs)

    @property
    def flaky(self) -> bool:
        """Some runs passed and some failed."""
        return 0 < self.passed < self.runs

    @property
    def all_passed(self) -> bool:
        return self.runs > 0 and self.passed == self.runs

    @property
    def all_failed(self) -> bool:
        return self.runs > 0 and self.passed == 0

    @property
    def verdict(self) -> Verdict:
        """What `--baseline` has always compared: passed only when every run passed."""
        return "passed" if self.all_passed else "failed"

    @property
    def majority(self) -> Verdict:
        """More than half the runs passed (the paired test's verdict per case)."""
        return "passed" if 2 * self.passed > self.runs else "failed"

    def meets(self, threshold: float) -> Verdict:
        """Passed when the pass rate reaches `threshold` (--pass-rate as a fraction)."""
        return "passed" if (self.rate or 0.0) >= threshold - _EPS else "failed"

    def side(self, threshold: float) -> Side | None:
        """Whether the interval lies wholly at/above or wholly below the threshold, else None."""
        return side_of(self.passed, self.runs, threshold)

    def to_dict(self) -> dict[str, Any]:
        low, high = self.interval
        return {
            "passed": self.passed,
            "runs": self.runs,
            "pass_rate": None if self.rate is None else round(self.rate, 4),
            "ci95": [low, high],
        }
