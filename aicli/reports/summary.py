"""Totals from results as they arrive: per tier, per case over repeats, tier disagreements."""

from __future__ import annotations

import math
from collections.abc import Iterable

from aicli.reports.results import CaseResult, CaseStats, Disagreement, Summary, Tally, TierStats
from aicli.types import Usage


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (p95 of [1..20] is 19)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


_FIELD = {"passed": "passed", "failed": "failed", "error": "errors", "skipped": "skipped"}
_BIT = {"passed": 1, "failed": 2, "error": 4, "skipped": 8}


class SummaryBuilder:
    """Totals kept as results arrive, so a long run need not hold every answer."""

    def __init__(self) -> None:
        self._tiers: dict[str, TierStats] = {}
        self._latencies: dict[str, list[float]] = {}
        self._runs: dict[tuple[str, str], Tally] = {}  # (case_id, tier asked for) -> its runs
        # (case_id, tier label) -> the statuses it had, as bits of _BIT (a small int is shared,
        # a set per case is not: this is held for every case of a run), for the tier comparison
        self._labels: dict[tuple[str, str], int] = {}
        self._total = Summary()

    def add(self, r: CaseResult) -> None:
        s = self._total
        label = r.tier_label  # a run answered through fallback is not its first tier's
        t = self._tiers.setdefault(label, TierStats(label))
        for stats in (s, t):
            stats.total += 1
            stats.cost_usd += r.cost_usd
            stats.batch_saved_usd += r.batch_saved_usd
            stats.cache_hits += int(r.cached)
            if r.recorded_cost_usd is not None:
                stats.recorded_cost_usd = (stats.recorded_cost_usd or 0.0) + r.recorded_cost_usd
        s.usage = Usage(
            s.usage.prompt_tokens + r.usage.prompt_tokens,
            s.usage.completion_tokens + r.usage.completion_tokens,
            s.usage.total_tokens + r.usage.total_tokens,
        )
        t.tokens += r.usage.total_tokens
        name = _FIELD[r.status]
        setattr(s, name, getattr(s, name) + 1)
        setattr(t, name, getattr(t, name) + 1)
        if r.status in ("passed", "failed"):
            self._latencies.setdefault(label, []).append(r.latency_ms)
        if r.status != "skipped":
            case_id = r.case_id  # one string for both keys
            key = (case_id, r.tier)
            self._runs[key] = self._runs.get(key, Tally()).plus(r.status == "passed")
            both = (case_id, label)
            self._labels[both] = self._labels.get(both, 0) | _BIT[r.status]

    def build(
        self,
        *,
        interrupted: bool = False,
        duration_s: float | None = None,
        shard: str | None = None,
        pass_threshold: float = 1.0,
        max_repeat: int | None = None,
    ) -> Summary:
        s = self._total
        tiers = []
        first: dict[
            str, int
        ] = {}  # tiers in the order they arrived, `standard→economy` after `standard`
        for name in self._tiers:
            first.setdefault(name.split("→")[0], len(first))
        for name, t in sorted(
            self._tiers.items(), key=lambda kv: (first[kv[0].split("→")[0]], "→" in kv[0])
        ):
            lat = self._latencies.get(name, [])
            t.mean_latency_ms = sum(lat) / len(lat) if lat else None
            t.p95_latency_ms = percentile(lat, 95)
            tiers.append(t)
        case_stats = [CaseStats(cid, tier, tally) for (cid, tier), tally in self._runs.items()]
        return Summary(
            total=s.total,
            passed=s.passed,
            failed=s.failed,
            errors=s.errors,
            skipped=s.skipped,
            cost_usd=s.cost_usd,
            batch_saved_usd=s.batch_saved_usd,
            recorded_cost_usd=s.recorded_cost_usd,
            usage=s.usage,
            cache_hits=s.cache_hits,
            duration_s=duration_s,
            interrupted=interrupted,
            repeats=max((c.runs for c in case_stats), default=1),
            tiers=tiers,
            disagreements=self._disagreements(),
            case_stats=case_stats,
            shard=shard,
            pass_threshold=pass_threshold,
            max_repeat=max_repeat,
        )

    def _disagreements(self) -> list[Disagreement]:
        """Cases passing on one tier and failing on another; an error is no verdict."""
        by_case: dict[str, dict[str, str]] = {}
        for (cid, label), statuses in self._labels.items():
            if statuses & _BIT["error"]:
                verdict = "error"
            else:
                verdict = "failed" if statuses & _BIT["failed"] else "passed"
            by_case.setdefault(cid, {})[label] = verdict
        out = []
        for cid, verdicts in by_case.items():
            on = {v: [t for t, got in verdicts.items() if got == v] for v in ("passed", "failed")}
            if on["passed"] and on["failed"]:
                errored = [t for t, got in verdicts.items() if got == "error"]
                out.append(Disagreement(cid, on["passed"], on["failed"], errored))
        return out


def summarize(
    results: Iterable[CaseResult],
    *,
    interrupted: bool = False,
    duration_s: float | None = None,
    shard: str | None = None,
    pass_threshold: float = 1.0,
    max_repeat: int | None = None,
) -> Summary:
    builder = SummaryBuilder()
    for r in results:
        builder.add(r)
    return builder.build(
        interrupted=interrupted,
        duration_s=duration_s,
        shard=shard,
        pass_threshold=pass_threshold,
        max_repeat=max_repeat,
    )


def final_line(summary: Summary) -> str:
    """The last stdout line: `N passed, N failed[, N skipped]` (errors count as failed)."""
    line = f"{summary.passed} passed, {summary.failed + summary.errors} failed"
    return line + (f", {summary.skipped} skipped" if summary.skipped else "")
