"""`.xml`: JUnit XML, one <testsuite> per (suite, tier); failures and errors kept apart."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aicli.reports.atomic import atomic_write
from aicli.reports.results import CaseResult, Summary, Tally, cut, one_line


def _clean(text: str) -> str:
    """An attribute: one printable line (XML 1.0 can carry it; a CI log that shows it runs no
    workflow command), the sanitiser every report format shares."""
    return one_line(text)


def _body(text: str) -> str:
    """A failure's body: its lines kept, each one printable line with its indent."""
    return "\n".join(
        " " * (len(line) - len(line.lstrip(" "))) + one_line(line) for line in text.split("\n")
    )


class JUnitWriter:
    """`.xml`: JUnit, one <testsuite> per (suite, tier); failures and errors kept apart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._files: dict[tuple[str, str], str] = {}
        self._templates: dict[tuple[str, str], str] = {}

    def add(self, r: CaseResult) -> None:
        key = (r.suite, r.tier_label)
        self._files.setdefault(key, r.file)
        if r.template:
            t = r.template
            self._templates.setdefault(key, f"{t.name}@{t.version} ({t.checksum})")
        bad = r.status in ("failed", "error")
        self._groups.setdefault(key, []).append(
            {
                "case": r.case,
                "id": (r.case_id, r.tier),
                "repeat": r.repeat_index,
                "status": r.status,
                "kind": r.reason_kind or ("assertion_failed" if r.status == "failed" else ""),
                "reason": r.reason,
                "details": [a.reason for a in r.failed_assertions()],
                "inputs": _inputs(r) if bad else "",
                "excerpt": r.excerpt(1000),
                "time": r.latency_ms / 1000,
                "model": r.model_used,
                "cached": r.cached,
            }
        )

    def _testcase(
        self,
        parent: ET.Element,
        classname: str,
        file: str,
        c: dict[str, Any],
        change: str | None,
        stats: dict[str, str] | None = None,
    ) -> None:
        name = c["case"] + (f" [run {c['repeat'] + 1}]" if c["repeated"] else "")
        tc = ET.SubElement(
            parent,
            "testcase",
            classname=_clean(classname),
            name=_clean(name),
            time=f"{c['time']:.3f}",
            file=_clean(file),
        )
        if change or stats:
            props = ET.SubElement(tc, "properties")
            if change:
                ET.SubElement(props, "property", name="baseline", value=change)
            for pname, pvalue in (stats or {}).items():
                ET.SubElement(props, "property", name=pname, value=pvalue)
        message = _clean(cut(c["reason"] or c["kind"], 500))
        model = f"model: {c['model'] or '–'}{' (cached)' if c['cached'] else ''}"
        if c["status"] in ("failed", "error"):
            # The message attribute holds the first reason; the body lists each broken
            # assertion once, then what was asked and what came back.
            lines = list(c["details"]) or [c["reason"]]
            if c["reason"].startswith("score "):
                lines.insert(0, c["reason"].split(";")[0])
            if c["inputs"]:
                lines += ["", c["inputs"]]
            if c["excerpt"]:
                lines += ["", f"answer ({model}):", c["excerpt"]]
            tag = "failure" if c["status"] == "failed" else "error"
            el = ET.SubElement(tc, tag, message=message, type=c["kind"] or "api_error")
            el.text = _body("\n".join(lines).strip())
        elif c["status"] == "skipped":
            ET.SubElement(tc, "skipped", message=message)
        else:
            ET.SubElement(tc, "system-out").text = _body(f"{model}\n{c['excerpt']}")

    def close(self, summary: Summary) -> None:
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        changes: dict[tuple[str, str], str] = {}
        if summary.baseline is not None:
            changes = {
                (c.case_id, c.tier): c.change
                for c in summary.baseline.cases
                if c.change != "unchanged"
            }
        case_props = _case_properties(summary)
        tier_props = {t.tier: _tally_properties(t.tally, "tier_") for t in summary.tiers}
        flaky = {(c.case_id, c.tier) for c in summary.flaky}
        root = ET.Element("testsuites", name="aicli test-prompts")
        totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
        total_time = 0.0
        for (suite, tier), cases in self._groups.items():
            counts = {
                "tests": len(cases),
                "failures": sum(c["status"] == "failed" for c in cases),
                "errors": sum(c["status"] == "error" for c in cases),
                "skipped": sum(c["status"] == "skipped" for c in cases),
            }
            time = sum(c["time"] for c in cases)
            ts = ET.SubElement(
                root,
                "testsuite",
                name=_clean(f"{suite} [{tier}]"),
                timestamp=now,
                time=f"{time:.3f}",
            )
            for k, v in counts.items():
                ts.set(k, str(v))
            props = ET.SubElement(ts, "properties")
            prop_values = {"tier": tier, "template": self._templates.get((suite, tier))}
            prop_values |= tier_props.get(tier, {})
            for pname, pvalue in prop_values.items():
                if pvalue:
                    ET.SubElement(props, "property", name=pname, value=_clean(pvalue))
            runs: dict[str, int] = {}
            for c in cases:
                runs[c["case"]] = runs.get(c["case"], 0) + 1
            for c in cases:
                c["repeated"] = runs[c["case"]] > 1 or c["repeat"] > 0
                file = self._files.get((suite, tier), "")
                self._testcase(
                    ts, f"{suite}.{tier}", file, c, changes.get(c["id"]), case_props.get(c["id"])
                )
            shaky = list(dict.fromkeys(c["case"] for c in cases if c["id"] in flaky))
            if shaky:  # the flaky cases' own section: most CI viewers show a suite's output
                lines = [f"Flaky cases ({len(shaky)}): some runs passed, some failed", *shaky]
                ET.SubElement(ts, "system-out").text = _clean("\n".join(lines))
            for k, v in counts.items():
                totals[k] += v
            total_time += time
        for k, v in totals.items():
            root.set(k, str(v))
        root.set("time", f"{total_time:.3f}")
        if summary.interrupted:
            root.set("interrupted", "true")
        ET.indent(root)
        data = ET.tostring(root, encoding="utf-8", xml_declaration=True)
        atomic_write(self.path, lambda f: f.write(data + b"\n"))

    def abort(self) -> None:
        self._groups.clear()


def _tally_properties(t: Tally, prefix: str = "") -> dict[str, str]:
    """k of n, the pass rate and its 95% Wilson interval as JUnit properties."""
    low, high = t.interval
    return {
        f"{prefix}runs": str(t.runs),
        f"{prefix}passed_runs": str(t.passed),
        f"{prefix}pass_rate": "" if t.rate is None else f"{t.rate:.4f}",
        f"{prefix}ci95_low": repr(low),
        f"{prefix}ci95_high": repr(high),
    }


def _case_properties(summary: Summary) -> dict[tuple[str, str], dict[str, str]]:
    """Per case+tier: its runs, pass rate, interval, flaky; p-values against a baseline."""
    out = {}
    for c in summary.case_stats:
        props = _tally_properties(c.tally)
        props["flaky"] = "true" if c.flaky else "false"
        out[(c.case_id, c.tier)] = props
    if summary.baseline is not None:
        for d in summary.baseline.cases:
            if d.p_value is not None and (d.case_id, d.tier) in out:
                out[(d.case_id, d.tier)] |= {
                    "p_value": repr(d.p_value),
                    "p_value_holm": repr(d.p_holm),
                    "significant": "true" if d.significant else "false",
                }
    return out


_INPUT_CHARS = 500  # of one variable; the rendered prompt gets twice that


def _inputs(r: CaseResult) -> str:
    """What the case asked: its variables, else its rendered prompt, each cut short."""
    if r.vars:
        lines = ["inputs:"]
        for name, value in r.vars.items():
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            lines.append(f"  {name}: {cut(' '.join(str(text).split()), _INPUT_CHARS)}")
        return "\n".join(lines)
    if r.prompt:
        return "prompt:\n" + cut(r.prompt, 2 * _INPUT_CHARS)
    return ""
