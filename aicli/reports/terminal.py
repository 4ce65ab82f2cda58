"""The terminal report: results table, failures explained, tier comparison, totals (rich)."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from aicli.reports.figures import interval, kn, ms, pvalue, rate, signed, verdicts
from aicli.reports.results import BaselineDiff, CaseResult, CaseStats, Summary, one_line

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
    # "failed" counts errors too, as the last line does; "incl. errors" says how many were
    recorded = any(t.recorded_cost_usd is not None for t in summary.tiers)
    costs = ["cost", "recorded cost"] if recorded else ["cost"]
    cols = ["pass rate", "95% CI", "passed", "failed", "incl. errors", *costs, "mean latency"]
    cols += ["p95 latency", "tokens", "cache hits"]
    narrow = ["pass rate", "95% CI", "passed", "failed", "incl. errors", *costs, "p95 latency"]
    shown = cols if wide else narrow
    for col in shown:
        table.add_column(col, justify="right", no_wrap=True)
    for t in summary.tiers:
        cells = {
            "pass rate": rate(t.pass_rate),
            "95% CI": interval(t.tally.interval) if t.tally.runs else "–",
            "passed": str(t.passed),
            "failed": str(t.failed + t.errors),
            "incl. errors": str(t.errors),
            "cost": f"${t.cost_usd:.6f}",
            "recorded cost": "–" if t.recorded_cost_usd is None else f"${t.recorded_cost_usd:.6f}",
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
    _significance(console, diff)
    changed = [c for c in diff.cases if c.change != "unchanged" or c.rate_changed]
    if changed:
        table = Table(show_header=True, title_justify="left")
        for col in ("change", "case", "tier", "before", "now", "p (Holm)", "significant"):
            table.add_column(col, no_wrap=col not in ("case", "now"))
        style = {"regressed": "red", "fixed": "green", "new": "cyan", "removed": "dim"}
        for c in changed:
            now: str = c.after or "–"
            if c.now is not None:
                now = f"{now} {kn(c.now.passed, c.now.runs)}"
            if c.reason:
                now = f"{now}: {c.reason[:80]}"
            before = f"{c.before} {kn(c.then.passed, c.then.runs)}" if c.then else "–"
            mark = Text(c.direction, style="bold red" if c.direction == "worse" else "green")
            table.add_row(
                Text(c.change, style=style.get(c.change, "")), _line(c.case_id),
                _line(c.tier), Text(before), _line(now), pvalue(c.p_holm),
                mark if c.significant else Text("within noise", style="dim"),
            )  # fmt: skip
        console.print(table)
    table = Table(title="Tiers against the baseline", title_justify="left")
    table.add_column("tier", no_wrap=True)
    for col in ("pass rate", "change", "p (McNemar)", "cost", "change", "p95 latency", "change"):
        table.add_column(col, justify="right", no_wrap=True)
    for t in diff.tiers:
        table.add_row(
            _line(t.tier),
            rate(t.pass_rate_after),
            signed(t.pass_rate_change, ".1f", " pts", 100),
            Text(pvalue(t.p_value), style="bold red" if t.significant_worse else ""),
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
    _confidence(console, summary, show_passed)
    if summary.baseline is not None:
        console.print()
        _baseline(console, summary.baseline)
    console.print()
    s = summary
    line = (
        f"{s.total} result{'s' if s.total != 1 else ''} · "
        f"{verdicts(s.passed, s.failed, s.errors, s.skipped)} · pass rate {rate(s.pass_rate)}"
    )
    console.print(Text(line))
    extra = f"cost ${s.cost_usd:.6f}"
    if s.recorded_cost_usd is not None:  # a replay spends nothing; the recording's cost compares
        extra += f" (recorded cost ${s.recorded_cost_usd:.6f})"
    extra += f" · {s.usage.total_tokens:,} tokens · {s.cache_hits} cache hits"
    if s.batch_saved_usd:
        extra += f" · batch saved ${s.batch_saved_usd:.6f}"
    if s.duration_s is not None:
        extra += f" · {s.duration_s:.1f} s"
    if s.flaky:
        extra += f" · {len(s.flaky)} flaky"
    console.print(Text(extra))
    if s.interrupted:
        console.print(Text("interrupted: results are partial", style="yellow"))


def _confidence(console: Console, summary: Summary, show_passed: bool) -> None:
    """Pass rates with their 95% Wilson interval: one tier's line, the cases over their runs
    (all of them under --repeat auto, which shows the runs each took), the flaky ones."""
    if len(summary.tiers) == 1 and summary.tiers[0].tally.runs:
        t = summary.tiers[0]
        console.print(
            _line(f"{t.tier}: {t.passed} of {t.tally.runs} runs passed · "
                  f"{rate(t.pass_rate)} · 95% CI {interval(t.tally.interval)}")
        )  # fmt: skip
    auto = summary.max_repeat is not None
    if summary.repeats > 1 or auto:
        listed = [c for c in summary.case_stats if c.pass_rate < 1 or (auto and show_passed)]
        if listed:
            least, most = summary.min_runs, summary.repeats
            runs = f"{least}–{most}" if least != most else str(most)
            title = f"Pass rate over {runs} runs" + (" (--repeat auto)" if auto else "")
            console.print()
            console.print(_case_table(title, listed, summary.pass_threshold))
    if summary.flaky:
        console.print()
        console.print(_case_table(f"Flaky cases ({len(summary.flaky)})", summary.flaky,
                                  summary.pass_threshold, flaky_column=False))  # fmt: skip


def _case_table(
    title: str, cases: list[CaseStats], threshold: float, *, flaky_column: bool = True
) -> Table:
    table = Table(title=title, title_justify="left")
    cols = ["case", "tier", "passed", "pass rate", "95% CI", "verdict"]
    for col in [*cols, *(["flaky"] if flaky_column else [])]:
        table.add_column(col, overflow="fold" if col == "case" else "ellipsis")
    for c in cases:
        verdict = c.tally.meets(threshold)
        sure = "" if c.tally.side(threshold) is not None else " (unsure)"
        row: list[Text | str] = [
            _line(c.case_id), _line(c.tier), kn(c.passed, c.runs),
            rate(c.pass_rate), interval(c.tally.interval),
            Text(verdict + sure, style=_STYLE.get(verdict, "")),
        ]  # fmt: skip
        if flaky_column:
            row.append(Text("flaky", style="yellow") if c.flaky else "")
        table.add_row(*row)
    return table


def _significance(console: Console, diff: BaselineDiff) -> None:
    """One line: how many changes are more than noise (Fisher exact, Holm; McNemar per tier)."""
    found = diff.significant_cases
    worse = sum(c.direction == "worse" for c in found)
    tiers = [t.tier for t in diff.tiers if t.significant_worse]
    line = (
        f"significant at alpha {diff.alpha:g}: {worse} worse, {len(found) - worse} better"
        f" · {len(diff.within_noise)} within noise"
    )
    if tiers:
        line += f" · tier worse: {', '.join(tiers)}"
    console.print(_line(line, style="bold red" if worse or tiers else ""))
