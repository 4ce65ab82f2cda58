"""File reports: JSON (full), JSONL (streamed per result) and JUnit XML; atomic, owner-only."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from aicli.security import close_durably
from aicli.suites.reports import CaseResult, Summary

_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write via a 0600 temp file in the same folder, fsync, then rename over `path`.

    On any error (or Ctrl-C) the temp file is removed and `path` is left as it was.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _dumps(obj: Any, **kw: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str, **kw)


class JsonWriter:
    """`.json`: {summary, tiers, results}. Results spool to an anonymous temp file meanwhile."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._spool: IO[bytes] | None = tempfile.TemporaryFile(dir=path.parent)  # noqa: SIM115 (lives until close)
        self._count = 0

    def add(self, r: CaseResult) -> None:
        assert self._spool is not None, "writer is closed"
        sep = b",\n" if self._count else b"\n"
        self._spool.write(sep + _dumps(r.to_dict()).encode())
        self._count += 1

    def close(self, summary: Summary) -> None:
        spool = self._spool
        if spool is None:
            return
        self._spool = None
        head = {
            "summary": summary.to_dict(),
            "tiers": [t.to_dict() for t in summary.tiers],
        }

        def write(f: IO[bytes]) -> None:
            text = _dumps(head, indent=2)
            f.write(text[: text.rindex("}")].rstrip().encode() + b',\n  "results": [')
            spool.seek(0)
            shutil.copyfileobj(spool, f)
            f.write(b"\n  ]\n}\n")

        try:
            atomic_write(self.path, write)
        finally:
            spool.close()

    def abort(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None


class JsonlWriter:
    """`.jsonl`: one line per case result, written and flushed as it arrives (file 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o600)  # an existing file keeps its mode otherwise
        self._f: IO[bytes] | None = os.fdopen(fd, "wb")

    def add(self, r: CaseResult) -> None:
        assert self._f is not None, "writer is closed"
        self._f.write(_dumps(r.to_dict()).encode() + b"\n")
        self._f.flush()

    def close(self, summary: Summary) -> None:
        if self._f is None:
            return
        f, self._f = self._f, None
        close_durably(f)

    abort = close


def _clean(text: str) -> str:
    """Text XML 1.0 can carry: control characters shown as \\xNN."""
    return _XML_BAD.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


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
        message = _clean(_cut(c["reason"] or c["kind"], 500))
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
