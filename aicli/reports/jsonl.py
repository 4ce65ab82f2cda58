"""`.jsonl`: one line per case result, written and flushed as it arrives."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO

from aicli.private_files import close_durably
from aicli.reports.atomic import dumps
from aicli.reports.results import CaseResult, Summary


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
        self._f.write(dumps(r.to_dict()).encode() + b"\n")
        self._f.flush()

    def close(self, summary: Summary) -> None:
        """With repeats, one line `{"summary": {...}}` (the JSON report's summary: each case's
        and tier's k of n, pass rate and 95% interval, the flaky cases); with --baseline, one
        last line `{"baseline": {...}}` (the JSON report's section). A run without either keeps
        one line per case result."""
        if self._f is not None and (summary.repeats > 1 or summary.max_repeat is not None):
            totals = {**summary.to_dict(), "tiers": [t.to_dict() for t in summary.tiers]}
            self._f.write(dumps({"summary": totals}).encode() + b"\n")
        if self._f is not None and summary.baseline is not None:
            self._f.write(dumps({"baseline": summary.baseline.to_dict()}).encode() + b"\n")
        self.abort()

    def abort(self) -> None:
        """The lines written so far stay: each one was whole when it was flushed."""
        if self._f is None:
            return
        f, self._f = self._f, None
        close_durably(f)
