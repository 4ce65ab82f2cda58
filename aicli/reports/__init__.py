"""Report writers chosen by file extension: the registry, opening and closing them together.

`results.py` holds the types every writer shares; each format has its own module.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from aicli.errors import UsageError

if TYPE_CHECKING:
    from aicli.reports.results import CaseResult, Summary


class ReportWriter(Protocol):
    path: Path

    def add(self, r: CaseResult) -> None: ...

    def close(self, summary: Summary) -> None: ...

    def abort(self) -> None:
        """Drop what was gathered without writing (a streamed .jsonl keeps its lines)."""


# `-o FILE`: the extension picks the writer (module, class); only the formats asked for are
# imported, so a run without -o never pays for the HTML or JUnit writers.
WRITERS: dict[str, tuple[str, str]] = {
    ".json": ("json", "JsonWriter"),
    ".jsonl": ("jsonl", "JsonlWriter"),
    ".xml": ("junit", "JUnitWriter"),
    ".html": ("html", "HtmlWriter"),
    ".md": ("markdown", "MarkdownWriter"),
}


def _writer(path: Path) -> ReportWriter:
    module, name = WRITERS[path.suffix.lower()]
    cls = getattr(importlib.import_module(f"aicli.reports.{module}"), name)
    writer: ReportWriter = cls(path)
    return writer


def open_writers(paths: list[Path]) -> list[ReportWriter]:
    """One writer per `-o FILE`, by extension; checked before any case runs."""
    seen: set[Path] = set()
    for p in paths:
        ext = p.suffix.lower()
        if ext not in WRITERS:
            raise UsageError(
                f"--output {p}: unknown report format {ext or '(no extension)'!r}",
                f"use one of {', '.join(WRITERS)}",
            )
        if p.parent.exists() and not p.parent.is_dir():
            raise UsageError(f"--output {p}: {p.parent} is not a folder")
        if p.is_dir():
            raise UsageError(f"--output {p}: is a folder")
        if p.resolve() in seen:
            raise UsageError(f"--output {p}: given twice")
        seen.add(p.resolve())
    writers: list[ReportWriter] = []
    try:
        for p in paths:
            p.parent.mkdir(parents=True, exist_ok=True)  # CI jobs write to reports/...
            writers.append(_writer(p))
    except OSError as exc:
        for w in writers:
            w.abort()
        raise UsageError(f"--output: cannot write {exc.filename}: {exc.strerror}") from None
    return writers


def close_writers(writers: list[ReportWriter], summary: Summary) -> None:
    """Close every writer even if one fails; the first failure is raised as a UsageError."""
    first: tuple[ReportWriter, OSError] | None = None
    for w in writers:
        try:
            w.close(summary)
        except OSError as exc:
            first = first or (w, exc)
    if first is not None:
        writer, failure = first
        raise UsageError(
            f"cannot write report {writer.path}: {failure.strerror or failure}",
            "free some disk space or check the folder's permissions",
        )
