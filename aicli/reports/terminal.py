"""The terminal report: results table, failures explained, tier comparison, totals (rich)."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from aicli.reports.figures import ms, rate, signed
from aicli.reports.results import BaselineDiff, CaseResult, Summary, one_line

_STYLE = {"passed": "green", "failed": "red", "error": "bold red", "skipped": "dim"}


def _case_name(r: CaseResult, repeats: int) -> str:
    return f"{r.case} #{r.repeat_index + 1}" if repeats > 1 else r.case


def _line(text: str, style: str = "") -> Text:
    """Text from a suite, a report or a server as one printable line: no escape sequence, line
    break or CI workflow command (`::error::`) reaches the terminal or a CI log."""
    return Text(one_line(text), style=style)


_WIDE = 110  # below this many columns the results table keeps only what identifies a run


def _results_table(results: list[CaseResult], repeats: int, show_passed: bool, width: int) -> Table:
    """Words wrap whole: narrow terminals get fewer columns rather than broken words."""
    wide = width >= _WIDE
    table = Table(
        title="Results", title_justify="left", box=box.SIMPLE_HEAD if not wide else box.HEAVY_HEAD
    )
    if wide:
        for col in ("suite", "case"):
            table.add_column(col, overflow="fold")
    else:
        table.add_column("case", overflow="fold", ratio=1)
    table.add_column("tier", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("reason", overflow="fold")
    if wide:
        for col in ("latency", "tokens", "cost"):
            table.add_column(col, justify="right", no_wrap=True)
        table.add_column("cached", justify="center", no_wrap=True)
    for r in results:
        if r.status == "passed" and not show_passed:
            continue
        answered = r.status in ("passed", "failed")
        name = _case_name(r, repeats)
        ident = [_line(r.suite), _line(name)] if wide else [_line(f"{r.suite}/{name}")]
        row: list[Text | str] = [
            *ident,
            _line(r.tier_label),
            Text(r.status, style=_STYLE.get(r.status, "")),
            _line(r.reason_kind or ("" if r.status == "passed" else r.reason[:40])),
        ]
        if wide:
            row += [
                ms(r.latency_ms) if answered else "–",
                f"{r.usage.total_tokens:,}" if answered else "–",
                f"${r.cost_usd:.6f}" if answered else "–",
                "yes" if r.cached else "",
            ]
        table.add_row(*row)
    return table


def _explain(console: Console, r: CaseResult, repeats: int, excerpt_len: int) -> None:
    # A narrow terminal gets the details wrapped between words; wide ones and logs keep lines.
    soft = console.width >= _WIDE
    label = "FAILED" if r.status == "failed" else "ERROR"
    head = Text()
    head.append(label, style=_STYLE[r.status])
    head.append(" " + one_line(f"{r.suite}/{_case_name(r, repeats)} [{r.tier_label}]"))
    if r.reason_kind:
        head.append(f": {r.reason_kind}", style="bold")
    console.print(head, soft_wrap=soft)
    failed = r.failed_assertions()
    if failed:
        for a in failed:
            console.print(Text(f"  ✗ {one_line(a.reason)}"), soft_wrap=soft)
    elif r.reason:
        console.print(Text(f"  {one_line(r.reason)}"), soft_wrap=soft)
    if r.output:
        console.print(Text(f"  answer: {r.excerpt(excerpt_len)}", style="dim"), soft_wrap=soft)


def _tier_table(summary: Summary, width: int) -> Table:
    # "compared" only when the same cases ran on several tiers (-t a -t b), else a breakdown.
    per_case: dict[str, set[str]] = {}
    for c in summary.case_stats:
        per_case.setdefault(c.case_id, set()).add(c.tier)
    compared = any(len(tiers) > 1 for tiers in per_case.values())
    wide = width >= _WIDE
    table = Table(
        title="Tiers compared" if compared else "By tier",
        title_justify="left",
        box=box.HEAVY_HEAD if wide else box.SIMPLE_HEAD,
    )
    table.add_column("tier", no_wrap=True)
    cols = ["pass rate", "passed", "failed", "errors", "cost", "mean latency", "p95 latency"]
    cols += ["tokens", "cache hits"]
    shown = cols if wide else ["pass rate", "passed", "failed", "errors", "cost", "p95 latency"]
    for col in shown:
        table.add_column(col, justify="right", no_wrap=True)
    for t in summary.tiers:
        cells = {
            "pass rate": rate(t.pass_rate),
            "passed": str(t.passed),
            "failed": str(t.failed),
            "errors": str(t.errors),
            "cost": f"${t.cost_usd:.6f}",
            "mean latency": ms(t.mean_latency_ms),
            "p95 latency": ms(t.p95_latency_ms),
            "tokens": f"{t.tokens:,}",
            "cache hits": str(t.cache_hits),
        }
        table.add_row(_line(t.tier), *(cells[c] for c in shown))
    return table


def _baseline(console: Console, diff: BaselineDiff) -> None:
    counts = " · ".join(f"{n} {name}" for name, n in diff.counts().items())
    console.print(_line(f"Compared with {diff.source}: {counts}", style="bold"))
    changed = [c for c in diff.cases if c.change in ("regressed", "fixed", "new", "removed")]
    if changed:
        table = Table(show_header=True, title_justify="left")
        for col in ("change", "case", "tier", "now"):
            table.add_column(col, no_wrap=col in ("change", "tier"))
        style = {"regressed": "red", "fixed": "green", "new": "cyan", "removed": "dim"}
        for c in changed:
            now = c.after or "–"
            if c.reason:
                now = f"{now}: {c.reason[:80]}"
            table.add_row(
                Text(c.change, style=style[c.change]), _line(c.case_id),
                _line(c.tier), _line(now),
            )  # fmt: skip
        console.print(table)
    table = Table(title="Tiers against the baseline", title_justify="left")
    table.add_column("tier", no_wrap=True)
    for col in ("pass rate", "change", "cost", "change", "p95 latency", "change"):
        table.add_column(col, justify="right", no_wrap=True)
    for t in diff.tiers:
        table.add_row(
            _line(t.tier),
            rate(t.pass_rate_after),
            signed(t.pass_rate_change, ".1f", " pts", 100),
            "–" if t.cost_after is None else f"${t.cost_after:.6f}",
            signed(t.cost_change, ".6f"),
            ms(t.p95_after),
            signed(t.p95_change, ",.0f", " ms"),
        )
    console.print(table)


def render_terminal(
    summary: Summary,
    results: list[CaseResult],
    console: Console,
    *,
    show_passed: bool = True,
    excerpt_len: int = 200,
    explain_up_to: int | None = None,
) -> None:
    """Everything but the last `N passed, N failed` line, which the caller prints itself."""
    repeats = summary.repeats
    if results:
        console.print(_results_table(results, repeats, show_passed, console.width))
    bad = [r for r in results if r.status in ("failed", "error")]
    if bad:
        console.print()
        console.print(Text(f"Failures ({len(bad)})", style="bold"))
        shown = bad if explain_up_to is None else bad[:explain_up_to]
        for r in shown:
            _explain(console, r, repeats, excerpt_len)
        if len(shown) < len(bad):
            more = len(bad) - len(shown)
            console.print(Text(f"({more} more failures not explained here; -v or the reports)"))
    if len(summary.tiers) > 1:
        console.print()
        console.print(_tier_table(summary, console.width))
        if summary.disagreements:
            console.print()
            table = Table(title="Cases the tiers disagree on", title_justify="left")
            for col in ("case", "passes on", "fails on"):
                table.add_column(col)
            for d in summary.disagreements:
                table.add_row(
                    _line(d.case_id), _line(", ".join(d.passed_on)), _line(", ".join(d.failed_on))
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
                    _line(c.case_id),
                    _line(c.tier),
                    f"{c.passed}/{c.runs}",
                    rate(c.pass_rate),
                    Text("flaky", style="yellow") if c.flaky else "",
                )
            console.print(table)
    if summary.baseline is not None:
        console.print()
        _baseline(console, summary.baseline)
    console.print()
    s = summary
    line = (
        f"{s.total} results · {s.passed} passed · {s.failed} failed · {s.errors} errors · "
        f"{s.skipped} skipped · pass rate {rate(s.pass_rate)}"
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
