"""JSON reports read back for `report merge` and `--baseline`: version-checked, size-bounded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from aicli.errors import UsageError
from aicli.reports.results import FORMAT_VERSION, CaseResult

MAX_REPORT_BYTES = 512 * 1024 * 1024  # far above any real run; refuses a runaway file


@dataclass
class Report:
    """A JSON report's results, and the summary fields merge carries over."""

    path: Path
    results: list[CaseResult]
    duration_s: float | None
    interrupted: bool
    shard: str | None


def _bad(path: Path, why: str, hint: str | None = None) -> UsageError:
    return UsageError(
        f"{path}: {why}", hint or "pass JSON reports written by `aicli test-prompts -o FILE.json`"
    )


def read_report(path: Path) -> Report:
    """One JSON report; any unreadable, foreign or unknown-version file is a UsageError (2)."""
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            raise _bad(path, f"larger than {MAX_REPORT_BYTES // 2**20} MiB")
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise _bad(path, f"cannot read it: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, absurd nesting
        raise _bad(path, f"not JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise _bad(path, "not an aicli JSON report (no `results` list)")
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
            results.append(CaseResult.from_dict(raw))
        except ValueError as exc:
            raise _bad(path, f"result #{i + 1}: {exc}") from None
    summary = data["summary"] if isinstance(data.get("summary"), dict) else {}
    duration = summary.get("duration_s")
    shard = summary.get("shard")
    return Report(
        path=path,
        results=results,
        duration_s=float(duration) if isinstance(duration, (int, float)) else None,
        interrupted=summary.get("interrupted") is True,
        shard=shard if isinstance(shard, str) else None,
    )


def merge_reports(reports: list[Report]) -> list[CaseResult]:
    """All results, refusing the same case+tier+repeat in two reports (shards must not overlap)."""
    seen: dict[tuple[str, str, str, int], Path] = {}
    merged: list[CaseResult] = []
    for rep in reports:
        for r in rep.results:
            first = seen.get(r.key)
            if first is not None:
                what = f"{r.case_id} [{r.tier}] run {r.repeat_index + 1}"
                where = f"{first} and {rep.path} both hold" if first != rep.path else (
                    f"{first} holds twice"  # the same file given twice, or a doctored one
                )  # fmt: skip
                raise UsageError(
                    f"{where} {what}", "merge the reports of one run's shards, each given once"
                )
            seen[r.key] = rep.path
            merged.append(r)
    return merged
