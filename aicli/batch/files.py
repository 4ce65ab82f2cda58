"""The JSONL request files of a batch: one line per request, written as they come, split so no
file passes the Batch API's limits (50,000 requests, 200 MB)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

MAX_REQUESTS = 50_000
MAX_BYTES = 200 * 1024 * 1024
ENDPOINT = "/v1/chat/completions"


@dataclass
class RequestFile:
    """One file to upload: where it is and the custom_ids it holds, in order."""

    path: Path
    custom_ids: list[str] = field(default_factory=list)
    size: int = 0


def request_line(custom_id: str, body: dict[str, Any]) -> bytes:
    """One line of a batch input file, as OpenAI's Batch API reads it."""
    line = {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class RequestFiles:
    """Lines appended one at a time to as many files as the limits need; only one line is held
    in memory. `close()` returns the files; the caller removes them once uploaded."""

    def __init__(
        self, directory: Path, *, max_requests: int = MAX_REQUESTS, max_bytes: int = MAX_BYTES
    ) -> None:
        self.directory = directory
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.files: list[RequestFile] = []
        self._fh: IO[bytes] | None = None

    def add(self, custom_id: str, body: dict[str, Any]) -> None:
        line = request_line(custom_id, body)
        if len(line) > self.max_bytes:
            raise ValueError(f"one request is larger than {self.max_bytes} bytes")
        current = self.files[-1] if self.files else None
        if (
            current is None
            or self._fh is None
            or len(current.custom_ids) >= self.max_requests
            or current.size + len(line) > self.max_bytes
        ):
            self._close_file()
            fd, name = tempfile.mkstemp(prefix="aicli-batch-", suffix=".jsonl", dir=self.directory)
            self._fh = os.fdopen(fd, "wb")
            current = RequestFile(Path(name))
            self.files.append(current)
        assert self._fh is not None
        self._fh.write(line)
        current.custom_ids.append(custom_id)
        current.size += len(line)

    def _close_file(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def close(self) -> list[RequestFile]:
        self._close_file()
        return self.files

    def discard(self) -> None:
        self._close_file()
        for f in self.files:
            f.path.unlink(missing_ok=True)
        self.files = []


def write_request_files(
    requests: Iterable[tuple[str, dict[str, Any]]],
    directory: Path,
    *,
    max_requests: int = MAX_REQUESTS,
    max_bytes: int = MAX_BYTES,
) -> list[RequestFile]:
    """Write (custom_id, body) pairs to as many files as the limits need, streaming."""
    files = RequestFiles(directory, max_requests=max_requests, max_bytes=max_bytes)
    try:
        for custom_id, body in requests:
            files.add(custom_id, body)
    except BaseException:
        files.discard()
        raise
    return files.close()
