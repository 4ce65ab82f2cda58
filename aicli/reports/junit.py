"""`.xml`: JUnit XML, one <testsuite> per (suite, tier); failures and errors kept apart."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aicli.reports.atomic import atomic_write
from aicli.reports.results import CaseResult, Summary, cut

_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(text: str) -> str:
    """Text XML 1.0 can carry: control characters shown as \\xNN."""
    return _XML_BAD.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


class JUnitWriter:
    """`.xml`: JUnit, one <testsuite> per (suite, tier); failures and errors kept apart."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._files: dict[tuple[str, str], str] = {}
        self._templates: dict[tuple[str, str], str] = {}

    def add(self, r: CaseResult) -> None:
        key = (r.suite, r.tier)
        self._files.setdefault(key, r.file)
        if r.template:
            t = r.template
            self._templates.setdefault(key, f"{t.name}@{t.version} ({t.checksum})")
        details = [a.reason for a in r.failed_assertions()]
        self._groups.setdefault(key, []).append(
            {
                "case": r.case,
                "repeat": r.repeat_index,
                "status": r.status,
                "kind": r.reason_kind or ("assertion_failed" if r.status == "failed" else ""),
                "reason": r.reason,
                "details": details,
                "excerpt": r.excerpt(1000),
                "time": r.latency_ms / 1000,
                "model": r.model_used,
                "cached": r.cached,
            }
        )

    def _testcase(self, parent: ET.Element, classname: str, file: str, c: dict[str, Any]) -> None:
        name = c["case"] + (f" [run {c['repeat'] + 1}]" if c["repeated"] else "")
        tc = ET.SubElement(
            parent,
            "testcase",
            classname=_clean(classname),
            name=_clean(name),
            time=f"{c['time']:.3f}",
            file=_clean(file),
        )
        message = _clean(cut(c["reason"] or c["kind"], 500))
        body = "\n".join([c["reason"], *c["details"]]).strip()
        if c["status"] == "failed":
            el = ET.SubElement(tc, "failure", message=message, type=c["kind"])
            el.text = _clean(body)
        elif c["status"] == "error":
            el = ET.SubElement(tc, "error", message=message, type=c["kind"] or "api_error")
            el.text = _clean(body)
        elif c["status"] == "skipped":
            ET.SubElement(tc, "skipped", message=message)
        if c["status"] != "skipped":
            out = f"model: {c['model']}{' (cached)' if c['cached'] else ''}\n{c['excerpt']}"
            ET.SubElement(tc, "system-out").text = _clean(out)

    def close(self, summary: Summary) -> None:
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
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
            for pname, pvalue in prop_values.items():
                if pvalue:
                    ET.SubElement(props, "property", name=pname, value=_clean(pvalue))
            runs: dict[str, int] = {}
            for c in cases:
                runs[c["case"]] = runs.get(c["case"], 0) + 1
            for c in cases:
                c["repeated"] = runs[c["case"]] > 1 or c["repeat"] > 0
                self._testcase(ts, f"{suite}.{tier}", self._files.get((suite, tier), ""), c)
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
