"""A batch's result lines in, as answers or failures, each line checked like any answer.

Result files come from a server: a line that does not parse, is too deep or too long, or names
a custom_id nobody asked for is dropped with a warning, and every line that did parse is kept."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from aicli.safetext import safe_line

log = logging.getLogger("aicli.batch")
MAX_LINE_BYTES = 32 * 1024 * 1024


@dataclass
class LineResult:
    """One result line: the chat completion body when it succeeded, else why it failed."""

    custom_id: str
    body: dict[str, Any] | None
    error: str | None


def parse_lines(lines: Iterable[bytes], source: str) -> Iterator[LineResult]:
    """Every usable line of a result or error file, in order; broken lines are counted and
    reported once, never fatal."""
    dropped = 0
    first_problem = ""
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            parsed = _parse(raw)
        except (ValueError, TypeError, RecursionError) as exc:
            dropped += 1
            first_problem = first_problem or f"line {number}: {safe_line(exc, 80)}"
            continue
        yield parsed
    if dropped:
        log.warning(
            "%s: skipped %d unreadable result line(s) (%s)",
            source, dropped, first_problem,
            extra={"event": "batch.bad_lines", "count": dropped},
        )  # fmt: skip


def _parse(raw: bytes) -> LineResult:
    if len(raw) > MAX_LINE_BYTES:
        raise ValueError("line too long")
    obj = json.loads(raw.decode("utf-8", "replace"))
    if not isinstance(obj, dict) or not isinstance(obj.get("custom_id"), str):
        raise ValueError("no custom_id")
    cid = obj["custom_id"]
    response = obj.get("response")
    error = obj.get("error")
    if isinstance(response, dict):
        status = response.get("status_code")
        body = response.get("body")
        if status == 200 and isinstance(body, dict) and not error:
            return LineResult(cid, body, None)
        message = _message(body) or f"HTTP {status}"
        return LineResult(cid, None, f"HTTP {status}: {message}" if status else message)
    if isinstance(error, dict):
        code = safe_line(error.get("code") or "error", 40)
        return LineResult(cid, None, f"{code}: {_message({'error': error})}")
    raise ValueError("neither a response nor an error")


def _message(body: Any) -> str:
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return safe_line(err["message"], 200)
    return ""
