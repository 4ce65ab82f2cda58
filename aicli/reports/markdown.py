"""`.md`: GitHub-flavoured Markdown for $GITHUB_STEP_SUMMARY or a pull-request comment."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from aicli.reports.atomic import atomic_write
from aicli.reports.figures import interval, kn, ms, pvalue, rate, signed, verdicts
from aicli.reports.results import (
    BaselineDiff,
    CaseChange,
    CaseResult,
    CaseStats,
    Summary,
    Tally,
    TierStats,
    cut,
    one_line,
)

MAX_CHARS = 60_000  # GitHub refuses step summaries and comments over 65,536 characters
EXCERPT = 200
MARKER = "<!-- aicli-report -->"  # the first line: a CI step finds its PR comment by it
_FAILURE_HEAD = ["suite", "case", "tier", "reason", "answer"]
# Inline Markdown inside a table cell (a cell never starts a line, so # - + . stay as they are).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def escape(text: str) -> str:
    """One table cell's text: HTML and Markdown shown as typed, never rendered."""
    text = one_line(text)  # no line break, escape or workflow command (`::error::`)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


_Section = tuple[str, list[str], list[str]]  # title, column heads, rows
_CASE_HEAD = ["suite", "case", "tier", "passed", "pass rate", "95% CI", "verdict"]
_CHANGE_HEAD = ["suite", "case", "tier", "before", "now", "change", "p (Holm)"]


def _split(case_id: str) -> list[str]:
    suite, _, case = case_id.partition("/")
    return [escape(suite), escape(case)]


def _case_row(c: CaseStats, threshold: float) -> str:
    sure = "" if c.tally.side(threshold) is not None else " (unsure)"
    return _row([
        *_split(c.case_id), escape(c.tier), kn(c.passed, c.runs), rate(c.pass_rate),
        interval(c.tally.interval), c.tally.meets(threshold) + sure,
    ])  # fmt: skip


def _change_row(c: CaseChange) -> str:
    def runs(t: Tally | None) -> str:
        return f"{kn(t.passed, t.runs)} ({rate(t.rate)})" if t is not None else "–"

    change = f"**{c.direction}**" if c.significant else c.direction
    return _row([
        *_split(c.case_id), escape(c.tier), runs(c.then), runs(c.now), change,
        pvalue(c.p_holm),
    ])  # fmt: skip


def _significance_sections(diff: BaselineDiff) -> list[_Section]:
    """Significant changes first (worse ones on top), then the rest as within noise."""
    significant = [_change_row(c) for c in diff.significant_cases]
    noise = [_change_row(c) for c in diff.within_noise]
    return [
        (f"Significant changes ({len(significant)}, alpha {diff.alpha:g})", _CHANGE_HEAD,
         significant),
        (f"Within noise ({len(noise)})", _CHANGE_HEAD, noise),
    ]  # fmt: skip


@dataclass
class _Failure:
    suite: str
    case: str
    tier: str
    status: str
    reason: str
    excerpt: str

    @property
    def key(self) -> tuple[str, str]:
        return (f"{self.suite}/{self.case}", self.tier.split("→")[0])

    def cells(self) -> list[str]:
        why = f"{self.status}: {self.reason}" if self.status == "error" else self.reason
        return [
            escape(self.suite),
            escape(self.case),
            escape(self.tier),
            escape(cut(why, EXCERPT)),
            escape(self.excerpt) if self.excerpt else "–",
        ]


class MarkdownWriter:
    """Totals, the per-tier table, regressions first, then failures; cut to MAX_CHARS."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._failures: dict[tuple[str, str], _Failure] = {}  # the first failing run per case+tier

    def add(self, r: CaseResult) -> None:
        if r.status not in ("failed", "error"):
            return
        f = _Failure(
            r.suite, r.case, r.tier_label, r.status, r.reason or (r.reason_kind or ""),
            r.excerpt(EXCERPT),
        )  # fmt: skip
        self._failures.setdefault(f.key, f)

    def render(self, summary: Summary) -> str:
        s = summary
        bad = s.failed + s.errors
        icon = "❌" if bad else "✅"
        head = [MARKER, f"## {icon} aicli test-prompts: {s.passed} passed, {bad} failed", ""]
        totals = (
            f"**{s.total} result{'s' if s.total != 1 else ''}** · "
            f"{verdicts(s.passed, s.failed, s.errors, s.skipped)} · pass rate {rate(s.pass_rate)}"
            f" · cost ${s.cost_usd:.4f}"
        )
        if s.recorded_cost_usd is not None:
            totals += f" (recorded cost ${s.recorded_cost_usd:.4f})"
        if s.batch_saved_usd:
            totals += f" · batch saved ${s.batch_saved_usd:.4f}"
        if s.duration_s is not None:
            totals += f" · {s.duration_s:.1f} s"
        if s.shard:
            totals += f" · shard {s.shard}"
        if s.flaky:
            totals += f" · {len(s.flaky)} flaky"
        head.append(totals)
        if s.interrupted:
            head += ["", "> [!WARNING]", "> The run was interrupted: these results are partial."]
        head += ["", "### Tiers", "", *self._tiers(s.tiers)]
        if s.baseline is not None:
            head += ["", *self._baseline(s.baseline)]
        sections: list[_Section] = []
        regressed = (
            {(c.case_id, c.tier) for c in s.baseline.of("regressed")} if s.baseline else set()
        )
        if s.baseline is not None:
            sections += _significance_sections(s.baseline)
            rows = [
                self._regression_row(c.case_id, c.tier, c.reason)
                for c in s.baseline.of("regressed")
            ]
            sections.append((f"Regressions ({len(rows)})", _FAILURE_HEAD, rows))
        if s.flaky:
            rows = [_case_row(c, s.pass_threshold) for c in s.flaky]
            sections.append((f"Flaky cases ({len(rows)})", _CASE_HEAD, rows))
        rest = [f for k, f in self._failures.items() if k not in regressed]
        sections.append((f"Failures ({len(rest)})", _FAILURE_HEAD, [_row(f.cells()) for f in rest]))
        if s.repeats > 1 or s.max_repeat is not None:
            least = s.min_runs
            runs = f"{least}–{s.repeats}" if least != s.repeats else str(s.repeats)
            rows = [_case_row(c, s.pass_threshold) for c in s.case_stats]
            sections.append((f"Pass rates over {runs} runs", _CASE_HEAD, rows))
        return self._fit("\n".join(head), sections)

    def _regression_row(self, case_id: str, tier: str, reason: str) -> str:
        f = self._failures.get((case_id, tier))
        if f is not None:
            return _row(f.cells())
        suite, _, case = case_id.partition("/")
        return _row([escape(suite), escape(case), escape(tier), escape(cut(reason, EXCERPT)), "–"])

    @staticmethod
    def _fit(head: str, sections: list[_Section]) -> str:
        """Everything up to MAX_CHARS; rows that do not fit are counted in a closing note."""
        budget = MAX_CHARS - len(head) - 400  # room for the note
        parts, left_out = [head], 0
        for title, columns, rows in sections:
            block = ["", f"### {title}", ""]
            if not rows:
                parts.append("\n".join([*block, "None."]))
                continue
            block += [_row(columns), "|" + "---|" * len(columns)]
            size = sum(len(x) + 1 for x in block)
            kept = []
            for row in rows:
                if left_out or size + len(row) + 1 > budget:
                    left_out += 1
                    continue
                kept.append(row)
                size += len(row) + 1
            budget -= size
            if kept:
                parts.append("\n".join(block + kept))
        if left_out:
            parts.append(
                f"\n_{left_out} more rows left out to stay under {MAX_CHARS:,} characters;"
                " the JSON or HTML report lists them all._"
            )
        return "\n".join(parts) + "\n"

    @staticmethod
    def _tiers(tiers: list[TierStats]) -> list[str]:
        recorded = any(t.recorded_cost_usd is not None for t in tiers)
        head = ["tier", "pass rate", "95% CI", "passed", "failed", "incl. errors", "skipped"]
        head += ["cost"] + ["recorded cost"] * recorded + ["p95 latency"]
        lines = [_row(head), "|---" + "|---:" * (len(head) - 1) + "|"]
        for t in tiers:
            ci = interval(t.tally.interval) if t.tally.runs else "–"
            then = ["–" if t.recorded_cost_usd is None else f"${t.recorded_cost_usd:.4f}"]
            lines.append(
                _row([
                    escape(t.tier), rate(t.pass_rate), ci, str(t.passed), str(t.failed + t.errors),
                    str(t.errors), str(t.skipped), f"${t.cost_usd:.4f}", *then * recorded,
                    ms(t.p95_latency_ms),
                ])
            )  # fmt: skip
        return lines

    @staticmethod
    def _baseline(diff: BaselineDiff) -> list[str]:
        counts = " · ".join(f"{n} {name}" for name, n in diff.counts().items())
        lines = [
            f"### Compared with {escape(diff.source)}",  # the path as given, as the terminal says
            "",
            counts,
            "",
            _row(
                [
                    "tier",
                    "pass rate",
                    "change",
                    "p (McNemar)",
                    "cost",
                    "change",
                    "p95 latency",
                    "change",
                ]
            ),
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for t in diff.tiers:
            p = pvalue(t.p_value) + (" **worse**" if t.significant_worse else "")
            lines.append(
                _row([
                    escape(t.tier), rate(t.pass_rate_after),
                    signed(t.pass_rate_change, ".1f", " pts", 100), p,
                    "–" if t.cost_after is None else f"${t.cost_after:.4f}",
                    signed(t.cost_change, ".4f"), ms(t.p95_after),
                    signed(t.p95_change, ",.0f", " ms"),
                ])
            )  # fmt: skip
        return lines

    def close(self, summary: Summary) -> None:
        page = self.render(summary).encode("utf-8", "replace")
        atomic_write(self.path, lambda f: f.write(page))

    def abort(self) -> None:
        self._failures.clear()
