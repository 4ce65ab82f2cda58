"""The types of a comparison with a baseline report: CaseChange, TierDelta, BaselineDiff.

Types only (`baseline.py` builds them); `results.py` re-exports them. Each case+tier keeps the
runs of both reports as Tallies, so verdicts, intervals and p-values all come from counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from aicli.reports.tally import Tally, Verdict

Change = Literal["regressed", "fixed", "new", "removed", "unchanged"]
CHANGES: tuple[Change, ...] = get_args(Change)
Direction = Literal["worse", "better", "same"]
DEFAULT_ALPHA = 0.05


def _direction(then: Tally | None, now: Tally | None) -> Direction:
    if then is None or now is None or then.rate is None or now.rate is None:
        return "same"
    if now.rate < then.rate:
        return "worse"
    return "better" if now.rate > then.rate else "same"


@dataclass
class CaseChange:
    """A case on one tier compared with the baseline report."""

    case_id: str
    tier: str
    change: Change
    then: Tally | None  # the baseline's runs of it; None: not in that report
    now: Tally | None
    reason: str = ""  # why it fails now, for regressions and new failures
    p_value: float | None = None  # two-sided Fisher exact on the two runs' pass counts
    p_holm: float | None = None  # the same, Holm-corrected across the cases both runs share
    significant: bool = False  # p_holm < alpha, or it passed every run before and fails all now

    @property
    def before(self) -> Verdict | None:
        return self.then.verdict if self.then is not None else None

    @property
    def after(self) -> Verdict | None:
        return self.now.verdict if self.now is not None else None

    @property
    def direction(self) -> Direction:
        return _direction(self.then, self.now)

    @property
    def all_lost(self) -> bool:
        """It passed every run before and fails every run now: a verdict whatever n is."""
        return self.then is not None and self.now is not None and (
            self.then.all_passed and self.now.all_failed
        )  # fmt: skip

    @property
    def significant_worse(self) -> bool:
        return self.significant and self.direction == "worse"

    @property
    def rate_changed(self) -> bool:
        return self.direction != "same"

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "tier": self.tier,
            "change": self.change,
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
            "runs_before": self.then.to_dict() if self.then is not None else None,
            "runs_after": self.now.to_dict() if self.now is not None else None,
            "direction": self.direction,
            "p_value": self.p_value,
            "p_value_holm": self.p_holm,
            "significant": self.significant,
        }


@dataclass
class TierDelta:
    """One tier now against the baseline: pass rate, cost and p95 latency, before and after;
    and the paired test over the cases both runs share (each case's majority verdict)."""

    tier: str
    pass_rate_before: float | None
    pass_rate_after: float | None
    cost_before: float | None
    cost_after: float | None
    p95_before: float | None
    p95_after: float | None
    runs_before: Tally | None = None
    runs_after: Tally | None = None
    shared: int = 0  # cases both runs have on this tier
    lost: int = 0  # shared cases whose majority verdict went from passed to failed
    won: int = 0  # ... from failed to passed
    p_value: float | None = None  # exact McNemar on (lost, won); None: no shared case
    significant: bool = False  # p_value < alpha

    @staticmethod
    def _delta(before: float | None, after: float | None) -> float | None:
        return None if before is None or after is None else after - before

    @property
    def pass_rate_change(self) -> float | None:
        return self._delta(self.pass_rate_before, self.pass_rate_after)

    @property
    def cost_change(self) -> float | None:
        return self._delta(self.cost_before, self.cost_after)

    @property
    def p95_change(self) -> float | None:
        return self._delta(self.p95_before, self.p95_after)

    @property
    def significant_worse(self) -> bool:
        return self.significant and self.lost > self.won

    def to_dict(self) -> dict[str, Any]:
        def r(x: float | None, n: int) -> float | None:
            return None if x is None else round(x, n)

        return {
            "tier": self.tier,
            "pass_rate_before": r(self.pass_rate_before, 4),
            "pass_rate_after": r(self.pass_rate_after, 4),
            "pass_rate_change": r(self.pass_rate_change, 4),
            "cost_usd_before": r(self.cost_before, 8),
            "cost_usd_after": r(self.cost_after, 8),
            "cost_usd_change": r(self.cost_change, 8),
            "p95_latency_ms_before": r(self.p95_before, 1),
            "p95_latency_ms_after": r(self.p95_after, 1),
            "p95_latency_ms_change": r(self.p95_change, 1),
            "runs_before": self.runs_before.to_dict() if self.runs_before else None,
            "runs_after": self.runs_after.to_dict() if self.runs_after else None,
            "shared_cases": self.shared,
            "cases_lost": self.lost,
            "cases_won": self.won,
            "p_value": self.p_value,
            "significant": self.significant,
        }


@dataclass
class BaselineDiff:
    """This run against an earlier JSON report, per case+tier and per tier."""

    source: str  # the baseline file, as given
    cases: list[CaseChange] = field(default_factory=list)  # every case+tier, unchanged too
    tiers: list[TierDelta] = field(default_factory=list)
    alpha: float = DEFAULT_ALPHA

    def of(self, change: Change) -> list[CaseChange]:
        return [c for c in self.cases if c.change == change]

    def counts(self) -> dict[str, int]:
        return {c: len(self.of(c)) for c in CHANGES}

    @property
    def blocking(self) -> list[CaseChange]:
        """What `--fail-on regressions` fails for: regressions and new cases that fail."""
        return [c for c in self.cases if c.change == "regressed" or (
            c.change == "new" and c.after == "failed"
        )]  # fmt: skip

    @property
    def significant_cases(self) -> list[CaseChange]:
        """Significant changes, the worse ones first."""
        found = [c for c in self.cases if c.significant]
        return sorted(found, key=lambda c: c.direction != "worse")

    @property
    def within_noise(self) -> list[CaseChange]:
        """Cases whose pass rate or verdict changed, but not significantly."""
        return [
            c
            for c in self.cases
            if not c.significant and (c.rate_changed or c.change in ("regressed", "fixed"))
        ]

    @property
    def significantly_worse(self) -> bool:
        """What `--fail-on significant` fails for: a case or a tier got significantly worse."""
        return any(c.significant_worse for c in self.cases) or any(
            t.significant_worse for t in self.tiers
        )

    def to_dict(self) -> dict[str, Any]:
        shown = [c for c in self.cases if c.change != "unchanged" or c.rate_changed]
        return {
            "source": self.source,
            "alpha": self.alpha,
            "counts": self.counts(),
            "significant_worse": self.significantly_worse,
            "cases": [c.to_dict() for c in shown],
            "tiers": [t.to_dict() for t in self.tiers],
        }
