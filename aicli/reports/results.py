"""The result types every report shares: CaseResult, TierStats, Summary, BaselineDiff.

This module is the bottom of `aicli.reports`: it imports none of its siblings, and nothing
from `aicli.suites`, so suites, writers and `report merge` can all build on it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from aicli.reports.changes import (  # re-exported: every writer takes them from here
    CHANGES,
    BaselineDiff,
    CaseChange,
    Change,
    TierDelta,
)
from aicli.reports.tally import Tally, Verdict
from aicli.types import TemplateRef, Usage

__all__ = [
    "CHANGES",
    "FORMAT_VERSION",
    "REASON_KINDS",
    "STATUSES",
    "AssertionRecord",
    "BaselineDiff",
    "CaseChange",
    "CaseResult",
    "CaseStats",
    "Change",
    "Disagreement",
    "ReasonKind",
    "Status",
    "Summary",
    "Tally",
    "TierDelta",
    "TierStats",
    "Verdict",
    "cut",
]

Status = Literal["passed", "failed", "error", "skipped"]
ReasonKind = Literal[
    "invalid_json", "structure_mismatch", "assertion_failed", "api_error", "render_error"
]
STATUSES: tuple[Status, ...] = get_args(Status)
REASON_KINDS: tuple[ReasonKind, ...] = get_args(ReasonKind)
FORMAT_VERSION = 1  # the JSON report's layout; merge and --baseline refuse any other


def one_line(text: str) -> str:
    """The one-line sanitiser every report format uses for names, reasons and excerpts from
    suites, reports and servers (safetext.safe_line, uncut): no escape sequence, control or
    format character, line break, key, or CI workflow command (`::error::`) at any line start."""
    from aicli.safetext import safe_line

    return safe_line(text, None)


def cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass(slots=True)
class AssertionRecord:
    """How one assertion fared on one answer, as reports show and store it."""

    type: str  # as written, e.g. "not-icontains"
    label: str  # short human name, e.g. `icontains "cupertino"`
    passed: bool
    score: float = 0.0
    reason: str = ""  # expected vs got ("ok" when it passed)
    kind: ReasonKind | None = None
    value: Any = None
    threshold: float | None = None
    weight: float = 1.0
    grader: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "label": self.label,
            "value": self.value,
            "threshold": self.threshold,
            "weight": self.weight,
            "passed": self.passed,
            "score": round(self.score, 4),
            "kind": self.kind,
            "reason": self.reason,
            **({"grader": self.grader} if self.grader else {}),
        }


@dataclass(slots=True)
class CaseResult:
    """One run of one case on one tier."""

    suite: str
    case: str
    tier: str  # the tier asked for
    repeat_index: int = 0
    status: Status = "passed"
    reason_kind: ReasonKind | None = None  # when failed or error
    reason: str = ""
    output: str = ""
    assertions: list[AssertionRecord] = field(default_factory=list)
    score: float = 0.0
    latency_ms: float = 0.0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    batch_saved_usd: float = 0.0  # answered through a batch: saved against the tier's price
    cached: bool = False
    model_used: str = ""
    template: TemplateRef | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    file: str = ""
    fallback_used: bool = False
    answered_tier: str = ""  # the tier that answered, when fallback moved on from `tier`
    prompt: str = ""  # the rendered prompt's last user message, for reviewers
    recorded_cost_usd: float | None = None  # --replay: the recorded answer's cost then

    @property
    def case_id(self) -> str:
        return f"{self.suite}/{self.case}"

    @property
    def key(self) -> tuple[str, str, str, int]:
        """What identifies a run across reports: suite, case, tier, repeat."""
        return (self.suite, self.case, self.tier, self.repeat_index)

    @property
    def tier_label(self) -> str:
        """`standard`, or `standard→economy` when economy answered through fallback."""
        if self.answered_tier and self.answered_tier != self.tier:
            return f"{self.tier}→{self.answered_tier}"
        return self.tier

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "skipped")

    def excerpt(self, n: int = 200) -> str:
        """The answer on one line, cut to n characters; control characters shown as \\xNN, and
        no key or key tail (an excerpt is shown text; the full answer stays as it came)."""
        from aicli.safetext import defuse_commands, visible
        from aicli.scrub import scrub

        return cut(defuse_commands(visible(scrub(" ".join(self.output.split())))), n)

    def failed_assertions(self) -> list[AssertionRecord]:
        return [a for a in self.assertions if not a.passed]

    def to_dict(self, *, full_output: bool = True) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "case": self.case,
            "id": self.case_id,
            "tier": self.tier,
            "answered_tier": self.answered_tier or self.tier,
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
            "batch_saved_usd": round(self.batch_saved_usd, 8),
            **(
                {"recorded_cost_usd": round(self.recorded_cost_usd, 8)}
                if self.recorded_cost_usd is not None
                else {}
            ),
            "cached": self.cached,
            "model_used": self.model_used,
            "fallback_used": self.fallback_used,
            "template": asdict(self.template) if self.template else None,
            "vars": self.vars,
            "prompt": self.prompt,
            "file": self.file,
        }


@dataclass
class TierStats:
    tier: str  # a tier name, or `standard→economy` for runs answered through fallback
    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    cost_usd: float = 0.0
    batch_saved_usd: float = 0.0
    recorded_cost_usd: float | None = None  # replayed runs: what their answers cost when recorded
    tokens: int = 0
    cache_hits: int = 0
    mean_latency_ms: float | None = None  # over runs that produced an answer
    p95_latency_ms: float | None = None

    @property
    def pass_rate(self) -> float | None:
        ran = self.total - self.skipped
        return self.passed / ran if ran else None

    @property
    def tally(self) -> Tally:
        """Its runs (errors fail, skips are no run), for the interval."""
        return Tally(self.passed, self.total - self.skipped)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pass_rate"] = None if self.pass_rate is None else round(self.pass_rate, 4)
        d["runs"] = self.tally.runs
        d["ci95"] = list(self.tally.interval)
        d["cost_usd"] = round(self.cost_usd, 8)
        d["batch_saved_usd"] = round(self.batch_saved_usd, 8)
        if self.recorded_cost_usd is None:
            del d["recorded_cost_usd"]
        else:
            d["recorded_cost_usd"] = round(self.recorded_cost_usd, 8)
        for k in ("mean_latency_ms", "p95_latency_ms"):
            d[k] = None if d[k] is None else round(d[k], 1)
        return d


@dataclass(slots=True)
class CaseStats:
    """A case on one tier over its repeats (runs that were not skipped)."""

    case_id: str
    tier: str
    tally: Tally

    @property
    def runs(self) -> int:
        return self.tally.runs

    @property
    def passed(self) -> int:
        return self.tally.passed

    @property
    def pass_rate(self) -> float:
        return self.tally.rate or 0.0

    @property
    def flaky(self) -> bool:
        return self.tally.flaky

    def to_dict(self, threshold: float = 1.0) -> dict[str, Any]:
        """`verdict` follows --pass-rate; `settled`: its interval lies wholly on one side."""
        return {
            "id": self.case_id,
            "tier": self.tier,
            "runs": self.runs,
            "passed": self.passed,
            "pass_rate": round(self.pass_rate, 4),
            "flaky": self.flaky,
            "ci95": list(self.tally.interval),
            "verdict": self.tally.meets(threshold),
            "settled": self.tally.side(threshold) is not None,
        }


@dataclass
class Disagreement:
    """A case that passes on some tiers and fails on others (errored tiers are left out)."""

    case_id: str
    passed_on: list[str]
    failed_on: list[str]
    errored_on: list[str] = field(default_factory=list)


@dataclass
class Summary:
    total: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    cost_usd: float = 0.0
    batch_saved_usd: float = 0.0
    recorded_cost_usd: float | None = None  # replayed runs: what their answers cost when recorded
    usage: Usage = field(default_factory=Usage)
    cache_hits: int = 0
    duration_s: float | None = None
    interrupted: bool = False
    repeats: int = 1  # the most runs any case had on one tier
    tiers: list[TierStats] = field(default_factory=list)
    disagreements: list[Disagreement] = field(default_factory=list)
    case_stats: list[CaseStats] = field(default_factory=list)
    shard: str | None = None  # "K/N" with --shard
    baseline: BaselineDiff | None = None
    pass_threshold: float = 1.0  # --pass-rate as a fraction: a case's verdict, --repeat auto
    max_repeat: int | None = None  # --repeat auto's --max-repeat; None: a fixed --repeat

    @property
    def pass_rate(self) -> float:
        """passed / (total - skipped); 1.0 when nothing ran (for `--pass-rate`)."""
        ran = self.total - self.skipped
        return self.passed / ran if ran else 1.0

    @property
    def flaky(self) -> list[CaseStats]:
        return [c for c in self.case_stats if c.flaky]

    @property
    def tally(self) -> Tally:
        return Tally(self.passed, self.total - self.skipped)

    @property
    def min_runs(self) -> int:
        """The fewest runs any case had on one tier (--repeat auto stops decided cases early)."""
        return min((c.runs for c in self.case_stats if c.runs), default=self.repeats)

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "passed": self.passed,
            "failed": self.failed,
            "errors": self.errors,
            "skipped": self.skipped,
            "pass_rate": round(self.pass_rate, 4),
            "cost_usd": round(self.cost_usd, 8),
            "batch_saved_usd": round(self.batch_saved_usd, 8),
            **(
                {"recorded_cost_usd": round(self.recorded_cost_usd, 8)}
                if self.recorded_cost_usd is not None
                else {}
            ),
            "usage": asdict(self.usage),
            "tokens_used": self.usage.total_tokens,
            "cache_hits": self.cache_hits,
            "duration_s": None if self.duration_s is None else round(self.duration_s, 3),
            "interrupted": self.interrupted,
            "repeats": self.repeats,
            "shard": self.shard,
            "disagreements": [asdict(d) for d in self.disagreements],
            "ci95": list(self.tally.interval),
            "pass_threshold": self.pass_threshold,
            "repeat": "auto" if self.max_repeat is not None else self.repeats,
            "max_repeat": self.max_repeat,
            "flaky": [c.to_dict(self.pass_threshold) for c in self.flaky],
            "cases": [c.to_dict(self.pass_threshold) for c in self.case_stats],
        }
