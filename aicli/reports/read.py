"""JSON reports read back for `report merge` and `--baseline`: version-checked, size-bounded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aicli import yamlsafe
from aicli.errors import UsageError
from aicli.jsontext import too_deep
from aicli.reports.results import (
    FORMAT_VERSION,
    REASON_KINDS,
    STATUSES,
    AssertionRecord,
    CaseResult,
)
from aicli.safetext import safe_line
from aicli.types import TemplateRef, Usage

MAX_REPORT_BYTES = 512 * 1024 * 1024  # far above any real run; refuses a runaway file
MAX_DEPTH = yamlsafe.MAX_DEPTH + 10  # a result's vars and assertion values come from YAML
MAX_RESULTS = 1_000_000  # runs in one report


@dataclass
class Report:
    """A JSON report's results, and the summary fields merge carries over."""

    path: Path
    results: list[CaseResult]
    duration_s: float | None
    interrupted: bool
    shard: str | None
    max_repeat: int | None = None  # the run's --repeat auto --max-repeat (a setting, shown)


def _bad(path: Path, why: str, hint: str | None = None) -> UsageError:
    return UsageError(
        f"{path}: {why}", hint or "pass JSON reports written by `aicli test-prompts -o FILE.json`"
    )


def read_report(path: Path) -> Report:
    """One JSON report; any unreadable, foreign or unknown-version file is a UsageError (2)."""
    try:
        # the rules of every input file: a regular file or a pipe (never /dev/zero), bounded
        text = yamlsafe.read_text(path, MAX_REPORT_BYTES)
        data = json.loads(text)
    except OSError as exc:
        raise _bad(path, f"cannot read it: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:  # bad JSON, absurd nesting
        raise _bad(path, f"not JSON: {safe_line(exc, 200)}") from None
    if too_deep(data, MAX_DEPTH):
        raise _bad(path, f"nested deeper than {MAX_DEPTH} levels (the limit)")
    if yamlsafe.has_lone_surrogate(data):
        raise _bad(path, yamlsafe.LONE_SURROGATE)
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise _bad(path, "not an aicli JSON report (no `results` list)")
    if len(data["results"]) > MAX_RESULTS:
        raise _bad(path, f"holds more than {MAX_RESULTS:,} results (the limit)")
    version = data.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        shown = "missing" if version is None else repr(version)
        raise _bad(
            path,
            f"unknown format_version {shown} (this aicli reads {FORMAT_VERSION})",
            "write the reports again with this aicli version",
        )
    results = []
    for i, raw in enumerate(data["results"]):
        try:
            results.append(result_from_dict(raw))
        except ValueError as exc:
            raise _bad(path, f"result #{i + 1}: {exc}") from None
    summary = data["summary"] if isinstance(data.get("summary"), dict) else {}
    duration = summary.get("duration_s")
    shard = summary.get("shard")
    most = summary.get("max_repeat")
    return Report(
        path=path,
        results=results,
        duration_s=float(duration) if isinstance(duration, (int, float)) else None,
        interrupted=summary.get("interrupted") is True,
        shard=shard if isinstance(shard, str) else None,
        max_repeat=most if isinstance(most, int) and not isinstance(most, bool) else None,
    )


def merge_reports(reports: list[Report]) -> list[CaseResult]:
    """All results, refusing the same case+tier+repeat in two reports (shards must not overlap)."""
    seen: dict[tuple[str, str, str, int], tuple[int, Path]] = {}
    merged: list[CaseResult] = []
    for n, rep in enumerate(reports, start=1):
        for r in rep.results:
            first = seen.get(r.key)
            if first is not None:
                what = f"{r.case_id} [{r.tier}] run {r.repeat_index + 1}"
                m, path = first
                if m == n:  # one file with a result twice: doctored or hand-edited
                    where, hint = f"{path} holds twice", "each run may appear once in a report"
                elif path == rep.path:
                    where = f"{path} (report {m}) and {rep.path} (report {n}) are the same file:"
                    where += " both hold"
                    hint = "give each shard's report once"
                else:
                    where, hint = (
                        f"{path} and {rep.path} both hold",
                        ("merge the reports of one run's shards, each given once"),
                    )
                raise UsageError(f"{where} {what}", hint)
            seen[r.key] = (n, rep.path)
            merged.append(r)
    return merged


def _get(d: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    """A field of a report read back from JSON, checked; ValueError names a bad one."""
    value = d.get(key, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ValueError(f"field {key!r} must be a number")
    if not isinstance(value, kind):
        raise ValueError(f"field {key!r} has the wrong type ({type(value).__name__})")
    return value


def _assertion_from_dict(d: Any) -> AssertionRecord:
    if not isinstance(d, dict):
        raise ValueError("an assertion must be an object")
    kind = _get(d, "kind", str)
    if kind is not None and kind not in REASON_KINDS:
        raise ValueError(f"unknown assertion kind {kind!r}")
    type_ = _get(d, "type", str, "")
    return AssertionRecord(
        type=type_,
        label=_get(d, "label", str, type_) or type_,
        passed=_get(d, "passed", bool, False),
        score=float(_get(d, "score", (int, float), 0.0)),
        reason=_get(d, "reason", str, ""),
        kind=kind,
        value=d.get("value"),
        threshold=_get(d, "threshold", (int, float)),
        weight=float(_get(d, "weight", (int, float), 1.0)),
        grader=_get(d, "grader", str),
    )


def result_from_dict(d: Any) -> CaseResult:
    """A result read back from a JSON report; ValueError when a field is missing or wrong."""
    if not isinstance(d, dict):
        raise ValueError("a result must be an object")
    for key in ("suite", "case", "tier", "status"):
        if not isinstance(d.get(key), str) or not d[key]:
            raise ValueError(f"a result needs a string {key!r}")
    if d["status"] not in STATUSES:
        raise ValueError(f"unknown status {d['status']!r}")
    kind = _get(d, "reason_kind", str)
    if kind is not None and kind not in REASON_KINDS:
        raise ValueError(f"unknown reason_kind {kind!r}")
    repeat = _get(d, "repeat", int, 0)
    if repeat < 0:
        raise ValueError("field 'repeat' must be >= 0")
    tpl = _get(d, "template", dict)
    assertions = _get(d, "assertions", list, [])
    usage = _get(d, "usage", dict, {})
    try:
        template = TemplateRef(str(tpl["name"]), str(tpl["version"]), str(tpl["checksum"]))
    except (KeyError, TypeError):
        template = None
    answered = _get(d, "answered_tier", str, "")
    recorded = _get(d, "recorded_cost_usd", (int, float))
    return CaseResult(
        suite=d["suite"],
        case=d["case"],
        tier=d["tier"],
        repeat_index=repeat,
        status=d["status"],
        reason_kind=kind,
        reason=_get(d, "reason", str, ""),
        output=_get(d, "output", str, ""),
        assertions=[_assertion_from_dict(a) for a in assertions],
        score=float(_get(d, "score", (int, float), 0.0)),
        latency_ms=float(_get(d, "latency_ms", (int, float), 0.0)),
        usage=Usage.from_dict(usage),
        cost_usd=float(_get(d, "cost_usd", (int, float), 0.0)),
        batch_saved_usd=float(_get(d, "batch_saved_usd", (int, float), 0.0)),
        cached=_get(d, "cached", bool, False),
        model_used=_get(d, "model_used", str, ""),
        template=template,
        vars=_get(d, "vars", dict, {}),
        file=_get(d, "file", str, ""),
        fallback_used=_get(d, "fallback_used", bool, False),
        answered_tier="" if answered == d["tier"] else answered,
        prompt=_get(d, "prompt", str, ""),
        recorded_cost_usd=None if recorded is None else float(recorded),
    )
