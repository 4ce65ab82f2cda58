"""The terminal report: results table, failures explained, tier comparison, totals (rich)."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text

from aicli.reports.results import CaseResult, Summary, printable

_STYLE = {"passed": "green", "failed": "red", "error": "bold red", "skipped": "dim"}


def _rate(rate: float | None) -> str:
    return "–" if rate is None else f"{rate * 100:.1f}%"


def _ms(ms: float | None) -> str:
    return "–" if ms is None else f"{ms:,.0f} ms"


def _case_name(r: CaseResult, repeats: int) -> str:
    return f"{r.case} #{r.repeat_index + 1}" if repeats > 1 else r.case


def _results_table(results: list[CaseResult], repeats: int, show_passed: bool) -> Table:
    table = Table(title="Results", title_justify="left", show_lines=False)
    for col in ("suite", "case", "tier", "status", "reason"):
        table.add_column(col, overflow="fold")
    for col in ("latency", "tokens", "cost"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("cached", justify="center")
    for r in results:
        if r.status == "passed" and not show_passed:
            continue
        answered = r.status in ("passed", "failed")
        table.add_row(
            Text(r.suite),
            Text(_case_name(r, repeats)),
            Text(r.tier),
            Text(r.status, style=_STYLE.get(r.status, "")),
            Text(printable(r.reason_kind or ("" if r.status == "passed" else r.reason[:40]))),
            _ms(r.latency_ms) if answered else "–",
            f"{r.usage.total_tokens:,}" if answered else "–",
            f"${r.cost_usd:.6f}" if answered else "–",
            "yes" if r.cached else "",
        )
    return table


def _explain(console: Any, r: CaseResult, repeats: int, excerpt_len: int) -> None:
    label = "FAILED" if r.status == "failed" else "ERROR"
    head = Text()
    head.append(label, style=_STYLE[r.status])
    head.append(printable(f" {r.suite}/{_case_name(r, repeats)} [{r.tier}]"))
    if r.reason_kind:
        head.append(f": {r.reason_kind}", style="bold")
    console.print(head)
    failed = r.failed_assertions()
    if failed:
        for a in failed:
            console.print(Text(printable(f"  ✗ {a.reason}")))
    elif r.reason:
        console.print(Text(printable(f"  {r.reason}")))
    if r.output:
        console.print(Text(f"  answer: {r.excerpt(excerpt_len)}", style="dim"))


def _tier_table(summary: Summary) -> Table:
    # "compared" only when the same cases ran on several tiers (-t a -t b), else a breakdown.
    per_case: dict[str, set[str]] = {}
    for c in summary.case_stats:
        per_case.setdefault(c.case_id, set()).add(c.tier)
    compared = any(len(tiers) > 1 for tiers in per_case.values())
    table = Table(title="Tiers compared" if compared else "By tier", title_justify="left")
    table.add_column("tier")
    for col in ("pass rate", "passed", "failed", "errors", "cost", "mean latency", "p95 latency"):
        table.add_column(col, justify="right")
    table.add_column("tokens", justify="right")
    table.add_column("cache hits", justify="right")
    for t in summary.tiers:
        table.add_row(
            Text(t.tier),
            _rate(t.pass_rate),
            str(t.passed),
            str(t.failed),
            str(t.errors),
            f"${t.cost_usd:.6f}",
            _ms(t.mean_latency_ms),
            _ms(t.p95_latency_ms),
            f"{t.tokens:,}",
            str(t.cache_hits),
        )
    return table


def render_terminal(
    summary: Summary,
    results: list[CaseResult],
    console: Any,
    *,
    show_passed: bool = True,
    excerpt_len: int = 200,
) -> None:
    """Everything but the last `N passed, N failed` line, which the caller prints itself."""
    repeats = summary.repeats
    if results:
        console.print(_results_table(results, repeats, show_passed))
    bad = [r for r in results if r.status in ("failed", "error")]
    if bad:
        console.print()
        console.print(Text(f"Failures ({len(bad)})", style="bold"))
        for r in bad:
            _explain(console, r, repeats, excerpt_len)
    if len(summary.tiers) > 1:
        console.print()
        console.print(_tier_table(summary))
        if summary.disagreements:
            console.print()
            table = Table(title="Cases the tiers disagree on", title_justify="left")
            for col in ("case", "passes on", "fails on"):
                table.add_column(col)
            for d in summary.disagreements:
                table.add_row(
                    Text(d.case_id), Text(", ".join(d.passed_on)), Text(", ".join(d.failed_on))
                )
            console.print(table)
    if repeats > 1:
        shaky = [c for c in summary.case_stats if c.pass_rate < 1]
        if shaky:
            console.print()
            table = Table(title=f"Pass rate over {repeats} runs", title_justify="left")
            for col in ("case", "tier", "passed", "pass rate", "flaky"):
                table.add_column(col)
            for c in shaky:
                table.add_row(
                    Text(c.case_id),
                    Text(c.tier),
                    f"{c.passed}/{c.runs}",
                    _rate(c.pass_rate),
                    Text("flaky", style="yellow") if c.flaky else "",
                )
            console.print(table)
    console.print()
    s = summary
    line = (
        f"{s.total} results · {s.passed} passed · {s.failed} failed · {s.errors} errors · "
        f"{s.skipped} skipped · pass rate {_rate(s.pass_rate)}"
    )
    console.print(Text(line))
    extra = f"cost ${s.cost_usd:.6f} · {s.usage.total_tokens:,} tokens · {s.cache_hits} cache hits"
    if s.duration_s is not None:
        extra += f" · {s.duration_s:.1f} s"
    if s.flaky:
        extra += f" · {len(s.flaky)} flaky"
    console.print(Text(extra))
    if s.interrupted:
        console.print(Text("interrupted: results are partial", style="yellow"))
