"""Suite results and their summary; report writers chosen by file extension.

The writers live in reports_files.py (JSON, JSONL, JUnit XML), reports_html.py and
reports_terminal.py; this module holds the types they share and the public entry points.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aicli.errors import UsageError
from aicli.suites.assertions import AssertionResult
from aicli.types import TemplateRef, Usage

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # never reach a terminal raw
STATUSES = ("passed", "failed", "error", "skipped")
REASON_KINDS = (
    "invalid_json",
    "structure_mismatch",
    "assertion_failed",
    "api_error",
    "render_error",
)


def printable(text: str) -> str:
    """Text safe for a terminal: control characters (escape sequences too) shown as \\xNN."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


@dataclass
class CaseResult:
    """One run of one case on one tier."""

    suite: str
    case: str
    tier: str
    repeat_index: int = 0
    status: str = "passed"  # passed | failed | error | skipped
    reason_kind: str | None = None  # one of REASON_KINDS when failed or error
    reason: str = ""
    output: str = ""
    assertions: list[AssertionResult] = field(default_factory=list)
    score: float = 0.0
    latency_ms: float = 0.0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    cached: bool = False
    model_used: str = ""
    template: TemplateRef | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    file: str = ""
    fallback_used: bool = False

    @property
    def case_id(self) -> str:
        return f"{self.suite}/{self.case}"

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "skipped")

    def excerpt(self, n: int = 200) -> str:
        """The answer on one line, cut to n characters; control characters shown as \\xNN."""
        one = printable(" ".join(self.output.split()))
        return one if len(one) <= n else one[: n - 1] + "…"

    def failed_assertions(self) -> list[AssertionResult]:
        return [a for a in self.assertions if not a.passed]

    def to_dict(self, *, full_output: bool = True) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "case": self.case,
            "id": self.case_id,
            "tier": self.tier,
            "repeat": self.repeat_index,
            "status": self.status,
            "reason_kind": self.reason_kind,
            "reason": self.reason,
            "score": round(self.score, 4),
            "output": self.output if full_output else self.excerpt(),
            "assertions": [a.to_dict() for a in self.assertions],
            "latency_ms": round(self.latency_ms, 1),
            "usage": asdict(self.usage),
            "tokens_used": self.usage.total_tokens,
            "cost_usd": round(self.cost_usd, 8),
            "cached": self.cached,
            "model_used": self.model_used,
            "fallback_used": self.fallback_used,
            "template": asdict(self.template) if self.template else None,
            "vars": self.vars,
            "file": self.file,
        }


@dataclass
class TierStats:
    tier: str
    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    cost_usd: float = 0.0
    tokens: int = 0
    cache_hits: int = 0
    mean_latency_ms: float | None = None  # over runs that produced an answer
    p95_latency_ms: float | None = None

    @property
    def pass_rate(self) -> float | None:
        ran = self.total - self.skipped
        return self.passed / ran if ran else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pass_rate"] = None if self.pass_rate is None else round(self.pass_rate, 4)
        d["cost_usd"] = round(self.cost_usd, 8)
        for k in ("mean_latency_ms", "p95_latency_ms"):
            d[k] = None if d[k] is None else round(d[k], 1)
        return d


@dataclass
class CaseStats:
    """A case on one tier over its repeats."""

    case_id: str
    tier: str
    runs: int
    passed: int

    @property
    def pass_rate(self) -> float:
        return self.passed / self.runs if self.runs else 0.0

    @property
    def flaky(self) -> bool:
        return 0 < self.passed < self.runs

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.case_id,
            "tier": self.tier,
            "runs": self.runs,
            "passed": self.passed,
            "pass_rate": round(self.pass_rate, 4),
            "flaky": self.flaky,
        }


@dataclass
class Disagreement:
    """A case that passes on some tiers and fails on others."""

    case_id: str
    passed_on: list[str]
    failed_on: list[str]


@dataclass
class Summary:
    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    cost_usd: float = 0.0
    usage: Usage = field(default_factory=Usage)
    cache_hits: int = 0
    duration_s: float | None = None
    interrupted: bool = False
    repeats: int = 1  # the most runs any case had on one tier
    tiers: list[TierStats] = field(default_factory=list)
    disagreements: list[Disagreement] = field(default_factory=list)
    case_stats: list[CaseStats] = field(default_factory=list)

    @property
    def pass_rate(self) -> float:
        """passed / (total - skipped); 1.0 when nothing ran (for `--pass-rate`)."""
        ran = self.total - self.skipped
        return self.passed / ran if ran else 1.0

    @property
    def flaky(self) -> list[CaseStats]:
        return [c for c in self.case_stats if c.flaky]

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "passed": self.passed,
            "failed": self.failed,
            "errors": self.errors,
            "skipped": self.skipped,
            "pass_rate": round(self.pass_rate, 4),
            "cost_usd": round(self.cost_usd, 8),
            "usage": asdict(self.usage),
            "tokens_used": self.usage.total_tokens,
            "cache_hits": self.cache_hits,
            "duration_s": None if self.duration_s is None else round(self.duration_s, 3),
            "interrupted": self.interrupted,
            "repeats": self.repeats,
            "disagreements": [asdict(d) for d in self.disagreements],
            "flaky": [c.to_dict() for c in self.flaky],
            "cases": [c.to_dict() for c in self.case_stats] if self.repeats > 1 else [],
        }


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (p95 of [1..20] is 19)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


class SummaryBuilder:
    """Totals kept as results arrive, so a long run need not hold every answer."""

    def __init__(self) -> None:
        self._tiers: dict[str, TierStats] = {}
        self._latencies: dict[str, list[float]] = {}
        self._runs: dict[tuple[str, str], list[int]] = {}  # (case_id, tier) -> [runs, passed]
        self._total = Summary()

    def add(self, r: CaseResult) -> None:
        s = self._total
        t = self._tiers.setdefault(r.tier, TierStats(r.tier))
        for stats in (s, t):
            stats.total += 1
            stats.cost_usd += r.cost_usd
            stats.cache_hits += int(r.cached)
        s.usage = Usage(
            s.usage.prompt_tokens + r.usage.prompt_tokens,
            s.usage.completion_tokens + r.usage.completion_tokens,
            s.usage.total_tokens + r.usage.total_tokens,
        )
        t.tokens += r.usage.total_tokens
        field_name = {"passed": "passed", "failed": "failed", "error": "errors"}.get(
            r.status, "skipped"
        )
        setattr(s, field_name, getattr(s, field_name) + 1)
        setattr(t, field_name, getattr(t, field_name) + 1)
        if r.status in ("passed", "failed"):
            self._latencies.setdefault(r.tier, []).append(r.latency_ms)
        if r.status != "skipped":
            runs = self._runs.setdefault((r.case_id, r.tier), [0, 0])
            runs[0] += 1
            runs[1] += int(r.status == "passed")

    def build(self, *, interrupted: bool = False, duration_s: float | None = None) -> Summary:
        s = self._total
        tiers = []
        for name, t in self._tiers.items():
            lat = self._latencies.get(name, [])
            t.mean_latency_ms = sum(lat) / len(lat) if lat else None
            t.p95_latency_ms = percentile(lat, 95)
            tiers.append(t)
        case_stats = [CaseStats(cid, tier, n, p) for (cid, tier), (n, p) in self._runs.items()]
        by_case: dict[str, dict[str, bool]] = {}
        for c in case_stats:
            by_case.setdefault(c.case_id, {})[c.tier] = c.passed == c.runs
        disagreements = [
            Disagreement(
                cid, [t for t, ok in v.items() if ok], [t for t, ok in v.items() if not ok]
            )
            for cid, v in by_case.items()
            if len(set(v.values())) > 1
        ]
        return Summary(
            total=s.total,
            passed=s.passed,
            failed=s.failed,
            errors=s.errors,
            skipped=s.skipped,
            cost_usd=s.cost_usd,
            usage=s.usage,
            cache_hits=s.cache_hits,
            duration_s=duration_s,
            interrupted=interrupted,
            repeats=max((c.runs for c in case_stats), default=1),
            tiers=tiers,
            disagreements=disagreements,
            case_stats=case_stats,
        )


def summarize(
    results: Iterable[CaseResult], *, interrupted: bool = False, duration_s: float | None = None
) -> Summary:
    builder = SummaryBuilder()
    for r in results:
        builder.add(r)
    return builder.build(interrupted=interrupted, duration_s=duration_s)


def final_line(summary: Summary) -> str:
    """The last stdout line: `N passed, N failed[, N skipped]` (errors count as failed)."""
    line = f"{summary.passed} passed, {summary.failed + summary.errors} failed"
    return line + (f", {summary.skipped} skipped" if summary.skipped else "")


class ReportWriter(Protocol):
    path: Path

    def add(self, r: CaseResult) -> None: ...

    def close(self, summary: Summary) -> None: ...

    def abort(self) -> None:
        """Drop what was gathered without writing (a streamed .jsonl keeps its lines)."""


FORMATS = (".json", ".jsonl", ".xml", ".html")


def open_writers(paths: list[Path]) -> list[ReportWriter]:
    """One writer per `-o FILE`, by extension; checked before any case runs."""
    from aicli.suites.reports_files import JsonlWriter, JsonWriter, JUnitWriter
    from aicli.suites.reports_html import HtmlWriter

    classes: dict[str, Any] = {
        ".json": JsonWriter,
        ".jsonl": JsonlWriter,
        ".xml": JUnitWriter,
        ".html": HtmlWriter,
    }
    seen: set[Path] = set()
    for p in paths:
        ext = p.suffix.lower()
        if ext not in classes:
            raise UsageError(
                f"--output {p}: unknown report format {ext or '(no extension)'!r}",
                f"use one of {', '.join(FORMATS)}",
            )
        if not p.parent.is_dir():
            raise UsageError(f"--output {p}: folder {p.parent} does not exist")
        if p.is_dir():
            raise UsageError(f"--output {p}: is a folder")
        if p.resolve() in seen:
            raise UsageError(f"--output {p}: given twice")
        seen.add(p.resolve())
    writers: list[ReportWriter] = []
    try:
        for p in paths:
            writers.append(classes[p.suffix.lower()](p))
    except OSError as exc:
        for w in writers:
            w.abort()
        raise UsageError(f"--output: cannot write {exc.filename}: {exc.strerror}") from None
    return writers


def close_writers(writers: list[ReportWriter], summary: Summary) -> None:
    """Close every writer even if one fails; the first failure is raised as a UsageError."""
    first: OSError | None = None
    for w in writers:
        try:
            w.close(summary)
        except OSError as exc:
            first = first or exc
    if first is not None:
        raise UsageError(f"cannot write report {first.filename}: {first.strerror}")


def render_terminal(summary: Summary, results: list[CaseResult], console: Any, **kw: Any) -> None:
    """The rich table, failure details, tier comparison and totals (see reports_terminal)."""
    from aicli.suites.reports_terminal import render_terminal as _render

    _render(summary, results, console, **kw)
