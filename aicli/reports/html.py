"""`.html` report: one self-contained page (inline CSS, no scripts, no external assets)."""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

from aicli.reports.atomic import atomic_write
from aicli.reports.results import CaseResult, Summary, TierStats, printable

_MAX_ANSWER = 20_000  # characters of an answer kept on the page

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1d1d1f}
h1{font-size:1.5rem;margin:0 0 .2rem}h2{font-size:1.15rem;margin:1.6rem 0 .5rem}
table{border-collapse:collapse;margin:.4rem 0}th,td{border:1px solid #ddd;padding:.3rem .6rem;
text-align:left;vertical-align:top}th{background:#f4f4f6}td.num{text-align:right}
.passed{color:#137333}.failed,.error{color:#b3261e}.skipped{color:#777}
.badge{display:inline-block;padding:0 .45rem;border-radius:.6rem;font-weight:600;font-size:.8rem;
border:1px solid currentColor}
.case{border:1px solid #ddd;border-radius:6px;margin:.6rem 0;padding:.5rem .8rem}
.case.bad{border-left:4px solid #b3261e}
pre{background:#f6f8fa;padding:.6rem;overflow:auto;white-space:pre-wrap;word-break:break-word;
max-height:30rem}ul.asserts{margin:.3rem 0;padding-left:1.2rem}.muted{color:#666}
summary{cursor:pointer}.warn{background:#fff4e5;border:1px solid #f0b429;padding:.5rem .8rem}
"""


def _fmt_rate(rate: float | None) -> str:
    return "–" if rate is None else f"{rate * 100:.1f}%"


def _fmt_ms(ms: float | None) -> str:
    return "–" if ms is None else f"{ms:.0f} ms"


def _row(cells: list[str], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


class HtmlWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._items: list[dict[str, Any]] = []

    def add(self, r: CaseResult) -> None:
        answer = r.output if len(r.output) <= _MAX_ANSWER else r.output[:_MAX_ANSWER] + "\n…"
        answer = printable(answer.replace("\r\n", "\n"))
        self._items.append(
            {
                "id": r.case_id,
                "tier": r.tier,
                "repeat": r.repeat_index,
                "status": r.status,
                "kind": r.reason_kind,
                "reason": r.reason,
                "asserts": [(a.passed, a.label, a.reason) for a in r.assertions],
                "answer": answer,
                "latency": r.latency_ms,
                "tokens": r.usage.total_tokens,
                "cost": r.cost_usd,
                "cached": r.cached,
                "model": r.model_used,
                "template": (
                    f"{r.template.name}@{r.template.version} ({r.template.checksum})"
                    if r.template
                    else ""
                ),
            }
        )

    def _case(self, c: dict[str, Any]) -> str:
        run = f" run {c['repeat'] + 1}" if c["repeat"] else ""
        head = (
            f"<span class='badge {c['status']}'>{c['status']}</span> "
            f"<b>{escape(c['id'])}</b> <span class='muted'>[{escape(c['tier'])}]{run}</span>"
        )
        meta = (
            f"<p class='muted'>model {escape(c['model'] or '–')} · {_fmt_ms(c['latency'])} · "
            f"{c['tokens']} tokens · ${c['cost']:.6f}{' · cached' if c['cached'] else ''}"
            f"{' · template ' + escape(c['template']) if c['template'] else ''}</p>"
        )
        items = "".join(
            f"<li class='{'passed' if ok else 'failed'}'>{'✓' if ok else '✗'} "
            f"<code>{escape(label)}</code>{'' if ok else ': ' + escape(reason)}</li>"
            for ok, label, reason in c["asserts"]
        )
        asserts = f"<ul class='asserts'>{items}</ul>" if items else ""
        answer = f"<pre>{escape(c['answer'])}</pre>" if c["answer"] else ""
        if c["status"] in ("failed", "error"):
            reason = c["reason"]
            if any(reason == r for _, _, r in c["asserts"]):  # already listed below
                reason = ""
            why = f"<p><b>{escape(c['kind'] or c['status'])}</b>{': ' if reason else ''}"
            why += f"{escape(printable(reason))}</p>"
            answer = f"<h4>Answer</h4>{answer}" if answer else ""
            return f"<div class='case bad'>{head}{why}{meta}{asserts}{answer}</div>"
        why = f"<p>{escape(printable(c['reason']))}</p>" if c["reason"] else ""
        return (
            f"<details class='case'><summary>{head}</summary>{why}{meta}{asserts}{answer}</details>"
        )

    @staticmethod
    def _tiers(tiers: list[TierStats]) -> str:
        head = _row(
            [
                *("tier", "pass rate", "passed", "failed", "errors", "skipped", "cost"),
                *("mean latency", "p95 latency", "tokens", "cache hits"),
            ],
            "th",
        )
        rows = "".join(
            _row(
                [
                    escape(t.tier),
                    _fmt_rate(t.pass_rate),
                    str(t.passed),
                    str(t.failed),
                    str(t.errors),
                    str(t.skipped),
                    f"${t.cost_usd:.6f}",
                    _fmt_ms(t.mean_latency_ms),
                    _fmt_ms(t.p95_latency_ms),
                    str(t.tokens),
                    str(t.cache_hits),
                ]
            )
            for t in tiers
        )
        return f"<table>{head}{rows}</table>"

    def render(self, summary: Summary) -> str:
        s = summary
        when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        status = "failed" if s.failed + s.errors else "passed"
        parts = [
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            "<meta name='viewport' content='width=device-width,initial-scale=1'>",
            f"<title>aicli test-prompts: {s.passed} passed, {s.failed + s.errors} failed</title>",
            f"<style>{_CSS}</style></head><body>",
            "<h1>aicli test-prompts</h1>",
            f"<p class='muted'>{when}</p>",
        ]
        if s.interrupted:
            parts.append("<p class='warn'>The run was interrupted: this report is partial.</p>")
        duration = f"{s.duration_s:.1f} s" if s.duration_s is not None else "–"
        parts += [
            "<h2>Summary</h2><table>",
            _row(["result", f"<span class='{status}'>{status}</span>"]),
            _row(["cases run", str(s.total)]),
            _row(["passed", str(s.passed)]),
            _row(["failed", str(s.failed)]),
            _row(["errors", str(s.errors)]),
            _row(["skipped", str(s.skipped)]),
            _row(["pass rate", _fmt_rate(s.pass_rate)]),
            _row(["cost", f"${s.cost_usd:.6f}"]),
            _row(["tokens", str(s.usage.total_tokens)]),
            _row(["cache hits", str(s.cache_hits)]),
            _row(["duration", duration]),
            "</table>",
            "<h2>Tiers</h2>",
            self._tiers(s.tiers),
        ]
        if s.disagreements:
            rows = "".join(
                _row(
                    [
                        escape(d.case_id),
                        escape(", ".join(d.passed_on)),
                        escape(", ".join(d.failed_on)),
                    ]
                )
                for d in s.disagreements
            )
            parts.append("<h2>Cases the tiers disagree on</h2><table>")
            parts.append(_row(["case", "passes on", "fails on"], "th") + rows + "</table>")
        if s.flaky:
            rows = "".join(
                _row([escape(c.case_id), escape(c.tier), f"{c.passed}/{c.runs}"]) for c in s.flaky
            )
            parts.append("<h2>Flaky cases</h2><table>")
            parts.append(_row(["case", "tier", "passed runs"], "th") + rows + "</table>")
        bad = [c for c in self._items if c["status"] in ("failed", "error")]
        good = [c for c in self._items if c["status"] not in ("failed", "error")]
        parts.append(f"<h2>Failures ({len(bad)})</h2>")
        parts += [self._case(c) for c in bad] or ["<p class='passed'>None.</p>"]
        parts.append(f"<h2>Passed and skipped ({len(good)})</h2>")
        parts += [self._case(c) for c in good]
        parts.append("</body></html>\n")
        return "\n".join(parts)

    def close(self, summary: Summary) -> None:
        page = self.render(summary).encode("utf-8", "replace")
        atomic_write(self.path, lambda f: f.write(page))

    def abort(self) -> None:
        self._items.clear()
