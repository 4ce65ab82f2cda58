"""`.json`: the whole run in one document ({format_version, summary, tiers, results})."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import IO

from aicli.reports.atomic import atomic_write, dumps
from aicli.reports.results import FORMAT_VERSION, CaseResult, Summary


class JsonWriter:
    """The whole run in one document; results spool to an anonymous temp file meanwhile."""

    def __init__(self, path: Path, *, stream: IO[bytes] | None = None) -> None:
        self.path = path
        self._stream = stream
        spool_dir = None if stream is not None else path.parent
        self._spool: IO[bytes] | None = tempfile.TemporaryFile(dir=spool_dir)  # noqa: SIM115 (lives until close)
        self._count = 0

    @classmethod
    def to_stream(cls, stream: IO[bytes]) -> JsonWriter:
        """The report written to `stream` (stdout for `-o -`) when the run ends."""
        return cls(Path("-"), stream=stream)

    def add(self, r: CaseResult) -> None:
        assert self._spool is not None, "writer is closed"
        sep = b",\n" if self._count else b"\n"
        self._spool.write(sep + dumps(r.to_dict()).encode())
        self._count += 1

    def close(self, summary: Summary) -> None:
        spool = self._spool
        if spool is None:
            return
        self._spool = None
        head = {
            "format_version": FORMAT_VERSION,
            "summary": summary.to_dict(),
            "tiers": [t.to_dict() for t in summary.tiers],
            "baseline": summary.baseline.to_dict() if summary.baseline else None,
        }

        def write(f: IO[bytes]) -> None:
            text = dumps(head, indent=2)
            f.write(text[: text.rindex("}")].rstrip().encode() + b',\n  "results": [')
            spool.seek(0)
            shutil.copyfileobj(spool, f)
            f.write(b"\n  ]\n}\n")

        try:
            if self._stream is not None:
                write(self._stream)
                self._stream.flush()
            else:
                atomic_write(self.path, write)
        finally:
            spool.close()

    def abort(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None
