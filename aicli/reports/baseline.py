"""This run against an earlier JSON report: regressed, fixed, new, removed, unchanged."""

from __future__ import annotations

from collections.abc import Callable

from aicli.reports.results import BaselineDiff, CaseChange, CaseResult, Change, Summary, TierDelta
from aicli.reports.summary import summarize


def _verdicts(summary: Summary) -> dict[tuple[str, str], str]:
    """(case id, tier) -> "passed" when every run passed, else "failed" (errors fail too)."""
    return {
        (c.case_id, c.tier): "passed" if c.passed == c.runs else "failed"
        for c in summary.case_stats
        if c.runs
    }


def _reasons(results: list[CaseResult]) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for r in results:
        if r.status in ("failed", "error"):
            out.setdefault((r.case_id, r.tier), r.reason or r.reason_kind or r.status)
    return out


def compare(
    source: str,
    before: list[CaseResult],
    after: Summary,
    after_results: list[CaseResult],
    *,
    in_scope: Callable[[str], bool] = lambda case_id: True,
) -> BaselineDiff:
    """`in_scope(case_id)` drops baseline cases this run did not try (another shard, -k)."""
    base = summarize(r for r in before if in_scope(r.case_id))
    old, new = _verdicts(base), _verdicts(after)
    reasons = _reasons(after_results)
    cases: list[CaseChange] = []
    for key in list(new) + [k for k in old if k not in new]:
        b, a = old.get(key), new.get(key)
        change: Change
        if b is None:
            change = "new"
        elif a is None:
            change = "removed"
        elif b == "passed" and a == "failed":
            change = "regressed"
        elif b == "failed" and a == "passed":
            change = "fixed"
        else:
            change = "unchanged"
        reason = reasons.get(key, "") if a == "failed" else ""
        cases.append(CaseChange(key[0], key[1], change, b, a, reason))
    then = {t.tier: t for t in base.tiers}
    now = {t.tier: t for t in after.tiers}
    tiers = []
    for name in list(now) + [n for n in then if n not in now]:
        t0, t1 = then.get(name), now.get(name)
        tiers.append(
            TierDelta(
                name,
                t0.pass_rate if t0 else None,
                t1.pass_rate if t1 else None,
                t0.cost_usd if t0 else None,
                t1.cost_usd if t1 else None,
                t0.p95_latency_ms if t0 else None,
                t1.p95_latency_ms if t1 else None,
            )
        )
    return BaselineDiff(source, cases, tiers)
