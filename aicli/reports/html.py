"""`.html`: one self-contained page (inline CSS, no scripts, no external assets) for reviewers.

Filters (failed / all, by suite, by tier) are radio buttons and generated CSS rules, so the
page works where scripts are blocked (artifact viewers, mail). Failing cases show their inputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

from aicli.reports.atomic import atomic_write
from aicli.reports.figures import interval, ms, rate, verdicts
from aicli.reports.html_verdicts import baseline_section, case_table
from aicli.reports.results import CaseResult, Summary, TierStats, cut
from aicli.safetext import visible

_MAX_ANSWER = 20_000  # characters of an answer kept on the page
_MAX_INPUT = 2_000  # characters of one variable or of the rendered prompt
_SIDE_BY_SIDE = 300  # characters of each tier's answer in the comparison table

_ON = "background:#1d1d1f;color:#fff;border-color:#1d1d1f"  # the chosen filter's label
_FOCUS = "outline:2px solid #0b57d0;outline-offset:1px"  # keyboard focus on a hidden radio
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1d1d1f}
h1{font-size:1.5rem;margin:0 0 .2rem}h2{font-size:1.15rem;margin:1.6rem 0 .5rem}
h4{margin:.6rem 0 .2rem}
table{border-collapse:collapse;margin:.4rem 0}th,td{border:1px solid #ddd;padding:.3rem .6rem;
text-align:left;vertical-align:top}th{background:#f4f4f6}td.num{text-align:right}
.passed,.fixed{color:#137333}.failed,.error,.regressed{color:#b3261e}.skipped,.removed{color:#777}
.new{color:#0b57d0}
.badge{display:inline-block;padding:0 .45rem;border-radius:.6rem;font-weight:600;font-size:.8rem;
border:1px solid currentColor}
.case{border:1px solid #ddd;border-radius:6px;margin:.6rem 0;padding:.5rem .8rem}
.case.bad{border-left:4px solid #b3261e}
pre{background:#f6f8fa;padding:.6rem;overflow:auto;white-space:pre-wrap;word-break:break-word;
max-height:30rem;margin:.2rem 0}ul.asserts{margin:.3rem 0;padding-left:1.2rem}.muted{color:#666}
summary{cursor:pointer}.warn{background:#fff4e5;border:1px solid #f0b429;padding:.5rem .8rem}
.filters{margin:.3rem 0;line-height:2}.filters b{margin:0 .4rem 0 .8rem}
.filters label{border:1px solid #bbb;border-radius:.8rem;padding:.1rem .6rem;margin-right:.2rem;
cursor:pointer}input.f{position:absolute;opacity:0;pointer-events:none}
.inputs td:first-child{font-family:ui-monospace,monospace;white-space:nowrap}
.cmp td{max-width:28rem}.cmp pre{max-height:10rem}
"""


def _row(cells: list[str], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


def _text(value: str, n: int) -> str:
    return escape(visible(cut(value.replace("\r\n", "\n"), n)))


@dataclass
class _Item:
    suite: str
    case: str
    tier: str  # the tier label: `standard→economy` when fallback answered
    base_tier: str
    repeat: int
    status: str
    kind: str | None
    reason: str
    asserts: list[tuple[bool, str, str]]
    answer: str
    latency: float
    tokens: int
    cost: float
    cached: bool
    model: str
    template: str
    inputs: dict[str, Any] = field(default_factory=dict)
    prompt: str = ""

    @property
    def id(self) -> str:
        return f"{self.suite}/{self.case}"

    @property
    def bad(self) -> bool:
        return self.status in ("failed", "error")


class HtmlWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._items: list[_Item] = []

    def add(self, r: CaseResult) -> None:
        answer = r.output if len(r.output) <= _MAX_ANSWER else r.output[:_MAX_ANSWER] + "\n…"
        bad = r.status in ("failed", "error")
        t = r.template
        self._items.append(
            _Item(
                suite=r.suite,
                case=r.case,
                tier=r.tier_label,
                base_tier=r.tier,
                repeat=r.repeat_index,
                status=r.status,
                kind=r.reason_kind,
                reason=r.reason,
                asserts=[(a.passed, a.label, a.reason) for a in r.assertions],
                answer=visible(answer.replace("\r\n", "\n")),
                latency=r.latency_ms,
                tokens=r.usage.total_tokens,
                cost=r.cost_usd,
                cached=r.cached,
                model=r.model_used,
                template=f"{t.name}@{t.version} ({t.checksum})" if t else "",
                inputs=dict(r.vars) if bad else {},  # passed cases: keep the page small
                prompt=cut(r.prompt, _MAX_INPUT) if bad else "",
            )
        )

    # --- pieces ---------------------------------------------------------------------------

    @staticmethod
    def _inputs(c: _Item) -> str:
        if c.inputs:
            rows = "".join(
                _row([escape(name), f"<pre>{_text(_as_text(v), _MAX_INPUT)}</pre>"])
                for name, v in c.inputs.items()
            )
            body = f"<h4>Inputs</h4><table class='inputs'>{rows}</table>"
            if c.prompt:
                body += (
                    "<details><summary>Rendered prompt</summary>"
                    f"<pre>{_text(c.prompt, _MAX_INPUT)}</pre></details>"
                )
            return body
        if c.prompt:
            return f"<h4>Prompt</h4><pre>{_text(c.prompt, _MAX_INPUT)}</pre>"
        return ""

    def _case(self, c: _Item, classes: str, change: str | None) -> str:
        run = f" run {c.repeat + 1}" if c.repeat else ""
        mark = f" <span class='badge {change}'>{change}</span>" if change else ""
        head = (
            f"<span class='badge {c.status}'>{c.status}</span>{mark} "
            f"<b>{escape(c.id)}</b> <span class='muted'>[{escape(c.tier)}]{run}</span>"
        )
        meta = (
            f"<p class='muted'>model {escape(c.model or '–')} · {ms(c.latency, grouped=False)} · "
            f"{c.tokens} tokens · ${c.cost:.6f}{' · cached' if c.cached else ''}"
            f"{' · template ' + escape(c.template) if c.template else ''}</p>"
        )
        # A failed assertion's reason already names it: show it once, not label + reason.
        items = "".join(
            f"<li class='passed'>✓ <code>{escape(label)}</code></li>"
            if ok
            else f"<li class='failed'>✗ {escape(visible(reason))}</li>"
            for ok, label, reason in c.asserts
        )
        asserts = f"<ul class='asserts'>{items}</ul>" if items else ""
        answer = f"<pre>{escape(c.answer)}</pre>" if c.answer else ""
        if c.bad:
            listed = any(not ok for ok, _, _ in c.asserts)
            why = c.reason.split(";")[0] if c.reason.startswith("score ") else c.reason
            if listed and not c.reason.startswith("score "):
                why = ""  # the list below says it
            text = f"<p><b>{escape(c.kind or c.status)}</b>{': ' if why else ''}"
            text += f"{escape(visible(why))}</p>"
            answer = f"<h4>Answer</h4>{answer}" if answer else ""
            return (
                f"<div class='case bad {classes}'>{head}{text}{meta}{self._inputs(c)}"
                f"{asserts}{answer}</div>"
            )
        why = f"<p>{escape(visible(c.reason))}</p>" if c.reason else ""
        return (
            f"<details class='case good {classes}'><summary>{head}</summary>{why}{meta}"
            f"{asserts}{answer}</details>"
        )

    @staticmethod
    def _tiers(tiers: list[TierStats]) -> str:
        recorded = any(t.recorded_cost_usd is not None for t in tiers)
        head = _row(
            [
                *("tier", "pass rate", "95% CI", "passed", "failed", "incl. errors", "skipped"),
                "cost",
                *["recorded cost"] * recorded,
                *("mean latency", "p95 latency", "tokens", "cache hits"),
            ],
            "th",
        )
        rows = ""
        for t in tiers:
            ci = interval(t.tally.interval) if t.tally.runs else "–"
            rows += _row([
                escape(t.tier), rate(t.pass_rate), ci, str(t.passed), str(t.failed + t.errors),
                str(t.errors), str(t.skipped), f"${t.cost_usd:.6f}",
                *[_money(t.recorded_cost_usd)] * recorded, ms(t.mean_latency_ms, grouped=False),
                ms(t.p95_latency_ms, grouped=False), str(t.tokens), str(t.cache_hits),
            ])  # fmt: skip
        return f"<table>{head}{rows}</table>"

    def _side_by_side(self, tiers: list[str], classes: dict[tuple[str, str], str]) -> str:
        """Each case's first run on every tier, next to each other."""
        cells: dict[str, dict[str, _Item]] = {}
        for c in self._items:
            if c.repeat == 0:
                cells.setdefault(c.id, {}).setdefault(c.tier, c)
        rows = []
        for cid, by_tier in cells.items():
            if len(by_tier) < 2:
                continue
            first = next(iter(by_tier.values()))
            bad = any(c.bad for c in by_tier.values())
            cls = f"{classes[('s', first.suite)]} {' '.join(classes[('t', t)] for t in tiers)}"
            tds = []
            for t in tiers:
                cell = by_tier.get(t)
                if cell is None:
                    tds.append("<td class='muted'>–</td>")
                    continue
                failed = next((r for ok, _, r in cell.asserts if not ok), "") or (
                    cell.reason if cell.bad else ""
                )
                why = f"<br><small>{_text(failed, 300)}</small>" if failed else ""
                answer = f"<pre>{_text(cell.answer, _SIDE_BY_SIDE)}</pre>" if cell.answer else ""
                tds.append(
                    f"<td><span class='badge {cell.status}'>{cell.status}</span>{why}{answer}</td>"
                )
            rows.append(
                f"<tr class='case {'bad' if bad else 'good'} {cls}'><td><b>{escape(cid)}</b></td>"
                + "".join(tds)
                + "</tr>"
            )
        if not rows:
            return ""
        head = _row(["case", *(escape(t) for t in tiers)], "th")
        return (
            f"<h2>Tiers side by side ({len(rows)})</h2><table class='cmp'>{head}"
            + "".join(rows)
            + "</table>"
        )

    def _filters(self, suites: list[str], tiers: list[str]) -> tuple[str, str]:
        """The filter radios and the CSS rules that make them filter. `~` only reaches later
        siblings, so the inputs stand right before the labels' paragraph and <main>, as
        children of <body>; the labels (anywhere, by `for=`) show and switch them."""
        groups: list[tuple[str, str, list[tuple[str, str]]]] = [
            ("Show", "f-st", [("f-failed", "failed"), ("f-all", "all")]),
        ]
        for group, names, prefix in (("suite", suites, "s"), ("tier", tiers, "t")):
            choices = [(f"f-{prefix}-all", "all")]
            choices += [(f"f-{prefix}{i}", name) for i, name in enumerate(names)]
            groups.append((group, f"f-{prefix}", choices))
        css = ["#f-failed:checked~main .good{display:none}"]
        inputs, labels = [], ["<p class='filters'>"]
        for n, (title, name, choices) in enumerate(groups):
            labels.append(f"{'<br>' if n else ''}<b>{title}</b>")
            for i, (ident, text) in enumerate(choices):
                checked = " checked" if i == 0 else ""
                inputs.append(f"<input class='f' type='radio' name='{name}' id='{ident}'{checked}>")
                labels.append(f"<label for='{ident}'>{escape(text)}</label>")
                css.append(f"#{ident}:checked~.filters label[for={ident}]{{{_ON}}}")
                css.append(f"#{ident}:focus-visible~.filters label[for={ident}]{{{_FOCUS}}}")
                if name != "f-st" and i:
                    cls = ident.removeprefix("f-")
                    css.append(f"#{ident}:checked~main .case:not(.{cls}){{display:none}}")
        labels.append("</p>")
        return "".join(inputs) + "".join(labels), "\n".join(css)

    def render(self, summary: Summary) -> str:
        s = summary
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        status = "failed" if s.failed + s.errors else "passed"
        suites = list(dict.fromkeys(c.suite for c in self._items))
        tiers = list(dict.fromkeys(c.tier for c in self._items))
        classes = {("s", n): f"s{i}" for i, n in enumerate(suites)}
        classes |= {("t", n): f"t{i}" for i, n in enumerate(tiers)}
        changes: dict[tuple[str, str], str] = {}
        if s.baseline is not None:
            changes = {
                (c.case_id, c.tier): c.change for c in s.baseline.cases if c.change != "unchanged"
            }
        filters, filter_css = self._filters(suites, tiers)
        parts = [
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            "<meta name='viewport' content='width=device-width,initial-scale=1'>",
            f"<title>aicli test-prompts: {s.passed} passed, {s.failed + s.errors} failed</title>",
            f"<style>{_CSS}{filter_css}</style></head><body>",
            "<h1>aicli test-prompts</h1>",
            f"<p class='muted'>{when}{' · shard ' + escape(s.shard) if s.shard else ''}</p>",
        ]
        if s.interrupted:
            parts.append("<p class='warn'>The run was interrupted: this report is partial.</p>")
        duration = f"{s.duration_s:.1f} s" if s.duration_s is not None else "–"
        replayed = s.recorded_cost_usd is not None
        parts += [
            "<h2>Summary</h2><table>",
            _row(["result", f"<span class='{status}'>{status}</span>"]),
            _row(["cases run", str(s.total)]),
            _row(["verdicts", verdicts(s.passed, s.failed, s.errors, s.skipped)]),
            _row(["pass rate", rate(s.pass_rate)]),
            _row(["95% CI", interval(s.tally.interval) if s.tally.runs else "–"]),
            _row(["flaky cases", str(len(s.flaky))]),
            _row(["cost", f"${s.cost_usd:.6f}"]),
            *[_row(["batch saved", f"${s.batch_saved_usd:.6f}"])] * bool(s.batch_saved_usd),
            *[_row(["recorded cost", _money(s.recorded_cost_usd)])] * replayed,
            _row(["tokens", str(s.usage.total_tokens)]),
            _row(["cache hits", str(s.cache_hits)]),
            _row(["duration", duration]),
            "</table>",
            "<h2>Tiers</h2>",
            self._tiers(s.tiers),
        ]
        if s.baseline is not None:
            parts.append(baseline_section(s.baseline))
        if s.disagreements:
            rows = "".join(
                _row(
                    [
                        escape(d.case_id),
                        escape(", ".join(d.passed_on)),
                        escape(", ".join(d.failed_on)),
                        escape(", ".join(d.errored_on)) or "–",
                    ]
                )
                for d in s.disagreements
            )
            parts.append("<h2>Cases the tiers disagree on</h2><table>")
            parts.append(_row(["case", "passes on", "fails on", "errors on"], "th") + rows)
            parts.append("</table>")
        if s.flaky:
            parts.append(f"<h2>Flaky cases ({len(s.flaky)})</h2>")
            parts.append(case_table(s.flaky, s.pass_threshold))
        if s.repeats > 1 or s.max_repeat is not None:
            least = s.min_runs
            runs = f"{least}–{s.repeats}" if least != s.repeats else str(s.repeats)
            auto = " (--repeat auto: the runs each case took)" if s.max_repeat else ""
            parts.append(f"<h2>Pass rates over {runs} runs{auto}</h2>")
            parts.append(case_table(s.case_stats, s.pass_threshold))
        parts += ["<h2>Cases</h2>", filters, "<main>"]
        parts.append(self._side_by_side(tiers, classes))
        bad = [c for c in self._items if c.bad]
        good = [c for c in self._items if not c.bad]

        def card(c: _Item) -> str:
            cls = f"{classes[('s', c.suite)]} {classes[('t', c.tier)]}"
            return self._case(c, cls, changes.get((c.id, c.base_tier)))

        parts.append(f"<h2>Failures ({len(bad)})</h2>")
        parts += [card(c) for c in bad] or ["<p class='passed'>None.</p>"]
        parts.append(f"<h2 class='good'>Passed and skipped ({len(good)})</h2>")
        parts += [card(c) for c in good]
        parts.append("</main></body></html>\n")
        return "\n".join(parts)

    def close(self, summary: Summary) -> None:
        page = self.render(summary).encode("utf-8", "replace")
        atomic_write(self.path, lambda f: f.write(page))

    def abort(self) -> None:
        self._items.clear()


def _money(x: float | None) -> str:
    return "–" if x is None else f"${x:.6f}"


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
