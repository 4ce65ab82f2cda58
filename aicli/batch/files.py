"""The JSONL request files of a batch: one line per request, written as they come, split so no
file passes the Batch API's limits (50,000 requests, 200 MB)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def write_request_files(
    requests: Iterable[tuple[str, dict[str, Any]]],
    directory: Path,
    *,
    max_requests: int = MAX_REQUESTS,
    max_bytes: int = MAX_BYTES,
) -> list[RequestFile]:
    """Write (custom_id, body) pairs to as many files as the limits need, streaming: only one
    line is held at a time. The caller removes the files once they are uploaded."""
    files: list[RequestFile] = []
    current: RequestFile | None = None
    fh = None
    try:
        for custom_id, body in requests:
            line = request_line(custom_id, body)
            if len(line) > max_bytes:
                raise ValueError(f"one request is larger than {max_bytes} bytes")
            full = current is not None and (
                len(current.custom_ids) >= max_requests or current.size + len(line) > max_bytes
            )
            if current is None or full:
                if fh is not None:
                    fh.close()
                fd, name = tempfile.mkstemp(prefix="aicli-batch-", suffix=".jsonl", dir=directory)
                fh = os.fdopen(fd, "wb")
                current = RequestFile(Path(name))
                files.append(current)
            assert fh is not None and current is not None
            fh.write(line)
            current.custom_ids.append(custom_id)
            current.size += len(line)
    except BaseException:
        if fh is not None:
            fh.close()
        for f in files:
            f.path.unlink(missing_ok=True)
        raise
    if fh is not None:
        fh.close()
    return files
