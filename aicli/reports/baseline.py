"""This run against an earlier JSON report: regressed, fixed, new, removed, unchanged; and whether
each change is more than noise (Fisher exact per case, Holm across cases, McNemar per tier)."""

from __future__ import annotations

from collections.abc import Callable

from aicli.reports.changes import DEFAULT_ALPHA
from aicli.reports.results import (
    BaselineDiff,
    CaseChange,
    CaseResult,
    Change,
    Summary,
    Tally,
    TierDelta,
    TierStats,
)
from aicli.reports.summary import summarize
from aicli.stats import fisher_exact, holm, mcnemar_exact

Key = tuple[str, str]  # (case id, tier asked for)


def _tallies(summary: Summary) -> dict[Key, Tally]:
    return {(c.case_id, c.tier): c.tally for c in summary.case_stats if c.runs}


def _reasons(results: list[CaseResult]) -> dict[Key, str]:
    out: dict[Key, str] = {}
    for r in results:
        if r.status in ("failed", "error"):
            out.setdefault((r.case_id, r.tier), r.reason or r.reason_kind or r.status)
    return out


def _change(then: Tally | None, now: Tally | None) -> Change:
    if then is None:
        return "new"
    if now is None:
        return "removed"
    if then.verdict == "passed" and now.verdict == "failed":
        return "regressed"
    if then.verdict == "failed" and now.verdict == "passed":
        return "fixed"
    return "unchanged"


def _fisher(then: Tally, now: Tally) -> float:
    return fisher_exact(now.passed, now.failed, then.passed, then.failed)


def compare(
    source: str,
    before: list[CaseResult],
    after: Summary,
    after_results: list[CaseResult],
    *,
    in_scope: Callable[[str], bool] = lambda case_id: True,
    alpha: float = DEFAULT_ALPHA,
) -> BaselineDiff:
    """`in_scope(case_id)` drops baseline cases this run did not try (another shard, -k)."""
    base = summarize(r for r in before if in_scope(r.case_id))
    old, new = _tallies(base), _tallies(after)
    reasons = _reasons(after_results)
    cases: list[CaseChange] = []
    for key in list(new) + [k for k in old if k not in new]:
        b, a = old.get(key), new.get(key)
        reason = reasons.get(key, "") if a is not None and a.verdict == "failed" else ""
        cases.append(CaseChange(key[0], key[1], _change(b, a), b, a, reason))
    shared = [c for c in cases if c.then is not None and c.now is not None]
    for c in shared:
        assert c.then is not None and c.now is not None
        c.p_value = _fisher(c.then, c.now)
    for c, adjusted in zip(shared, holm([c.p_value or 1.0 for c in shared]), strict=True):
        c.p_holm = adjusted
        c.significant = adjusted < alpha or c.all_lost
    then = {t.tier: t for t in base.tiers}
    now = {t.tier: t for t in after.tiers}
    tiers = [
        _tier_delta(name, then.get(name), now.get(name), shared, alpha)
        for name in list(now) + [n for n in then if n not in now]
    ]
    return BaselineDiff(source, cases, tiers, alpha)


def _tier_delta(
    name: str, t0: TierStats | None, t1: TierStats | None, shared: list[CaseChange], alpha: float
) -> TierDelta:
    delta = TierDelta(
        name,
        t0.pass_rate if t0 else None,
        t1.pass_rate if t1 else None,
        t0.cost_usd if t0 else None,
        t1.cost_usd if t1 else None,
        t0.p95_latency_ms if t0 else None,
        t1.p95_latency_ms if t1 else None,
        runs_before=t0.tally if t0 else None,
        runs_after=t1.tally if t1 else None,
    )
    # The paired test pairs a case with itself on the tier it was asked for; a
    # `standard→economy` row holds runs of several tiers' cases and gets none.
    pairs = [(c.then, c.now) for c in shared if c.tier == name and c.then and c.now]
    if pairs:
        delta.shared = len(pairs)
        delta.lost = sum(b.majority == "passed" and a.majority == "failed" for b, a in pairs)
        delta.won = sum(b.majority == "failed" and a.majority == "passed" for b, a in pairs)
        delta.p_value = mcnemar_exact(delta.lost, delta.won)
        delta.significant = delta.p_value < alpha
    return delta
