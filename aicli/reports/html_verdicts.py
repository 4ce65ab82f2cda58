"""The HTML report's verdict tables: pass rates with intervals per case, the baseline comparison."""

from __future__ import annotations

from html import escape

from aicli.reports.figures import interval, kn, ms, pvalue, rate, signed
from aicli.reports.results import BaselineDiff, CaseStats, Tally, cut
from aicli.safetext import visible


def _row(cells: list[str], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


def _runs(t: Tally | None) -> str:
    return f" <span class='muted'>{kn(t.passed, t.runs)}</span>" if t is not None else ""


def case_table(cases: list[CaseStats], threshold: float) -> str:
    """k of n, pass rate, 95% interval and verdict (per --pass-rate) of each case+tier."""
    head = _row(["case", "tier", "passed", "pass rate", "95% CI", "verdict", "flaky"], "th")
    rows = []
    for c in cases:
        verdict = c.tally.meets(threshold)
        sure = "" if c.tally.side(threshold) is not None else " (unsure)"
        rows.append(
            _row(
                [
                    escape(c.case_id),
                    escape(c.tier),
                    kn(c.passed, c.runs),
                    rate(c.pass_rate),
                    interval(c.tally.interval),
                    f"<span class='{verdict}'>{verdict}</span>{sure}",
                    "flaky" if c.flaky else "",
                ]
            )
        )
    return f"<table>{head}{''.join(rows)}</table>"


def baseline_section(diff: BaselineDiff) -> str:
    """The comparison with --baseline: counts, each changed case with its runs and Holm-corrected
    p-value, significant ones first; each tier's change with its McNemar p-value."""
    counts = " · ".join(
        f"<span class='{name}'>{n} {name}</span>" for name, n in diff.counts().items()
    )
    parts = [f"<h2>Compared with {escape(diff.source)}</h2><p>{counts}</p>"]
    changed = [c for c in diff.cases if c.change != "unchanged" or c.rate_changed]
    changed.sort(key=lambda c: (not c.significant, c.direction != "worse"))
    parts.append(
        f"<p>Significant at alpha {diff.alpha:g} (Fisher exact, Holm-corrected across cases):"
        f" {len(diff.significant_cases)}; within noise: {len(diff.within_noise)}</p>"
    )
    if changed:
        rows = "".join(
            _row(
                [
                    f"<span class='badge {c.change}'>{c.change}</span>",
                    escape(c.case_id),
                    escape(c.tier),
                    escape(c.before or "–") + _runs(c.then),
                    escape(c.after or "–") + _runs(c.now),
                    pvalue(c.p_holm),
                    f"<span class='{'regressed' if c.direction == 'worse' else 'fixed'}'>"
                    f"significant ({c.direction})</span>"
                    if c.significant
                    else "<span class='muted'>within noise</span>",
                    escape(visible(cut(c.reason, 300))),
                ]
            )
            for c in changed
        )
        head = _row(
            ["change", "case", "tier", "before", "now", "p (Holm)", "", "why it fails now"],
            "th",
        )
        parts.append(f"<table>{head}{rows}</table>")
    head = _row(
        ["tier", "pass rate", "change", "p (McNemar)", "cost", "change", "p95 latency",
         "change"],
        "th",
    )  # fmt: skip
    rows = "".join(
        _row(
            [
                escape(t.tier),
                rate(t.pass_rate_after),
                signed(t.pass_rate_change, ".1f", " pts", 100),
                pvalue(t.p_value)
                + (" <b class='regressed'>worse</b>" if t.significant_worse else ""),
                "–" if t.cost_after is None else f"${t.cost_after:.6f}",
                signed(t.cost_change, ".6f"),
                ms(t.p95_after, grouped=False),
                signed(t.p95_change, ".0f", " ms"),
            ]
        )
        for t in diff.tiers
    )
    parts.append(f"<table>{head}{rows}</table>")
    return "".join(parts)
