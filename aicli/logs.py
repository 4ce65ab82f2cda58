"""Logging, set up once per process: one stderr handler on the `aicli` logger, text or JSON lines.

Core modules log with `logging.getLogger(__name__)`, a fixed message (%-style arguments) and the
values as fields in `extra=` (`event` names the kind of line). Front doors call `configure` once;
`emit` writes a line a front door must always show (an error, a summary), whatever the level.
Secrets are scrubbed in the formatters, so no log path can skip it. Request-scoped fields
(`request_id`, `tier`) come from `log_context`, a contextvar read by a filter on the handler.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Literal, get_args

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[str, ...] = get_args(LogFormat)
ROOT = "aicli"

_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "aicli_log_context", default=_NO_FIELDS
)
# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "context",
}
_PREFIX = re.compile(r"^aicli: (?:info: )?")
_RAW_TEXT = {"message", "summary", "traceback"}  # front-door lines, written as given in text
_TEXT_DEBUG_ONLY = {"request"}  # per-request lines: JSON with -v, text only with --debug


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields (request_id, tier, ...) to every line logged inside, in this task only."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> Mapping[str, Any]:
    return _context.get()


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.context = dict(_context.get())
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and k != "event"}


class TextFormatter(logging.Formatter):
    """Today's lines: `aicli: warning: ...`, `aicli: error: ...` plus `  hint: ...`."""

    def format(self, record: logging.LogRecord) -> str:
        # The last guard for server text: every line printable, no key, and a message or hint
        # stays one line, so nothing can clear the screen or forge an `aicli:` line.
        from aicli.safetext import safe_block, safe_line

        event = getattr(record, "event", None)
        message = record.getMessage()
        if event == "summary":
            return safe_line(message, None)
        if event in _RAW_TEXT:
            return safe_block(message)  # a front door's own lines, written as given
        label = "error" if event == "error" else record.levelname.lower()
        line = f"aicli: {label}: {safe_line(message, None)}"
        hint = getattr(record, "hint", None)
        if hint:
            line += f"\n  hint: {safe_line(hint, None)}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, event, message, then the context and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, timezone.utc)
        obj: dict[str, Any] = {
            "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", None) or "log",
            "message": _PREFIX.sub("", record.getMessage()),
        }
        for key, value in {**getattr(record, "context", {}), **_fields(record)}.items():
            if value is not None or key == "hint":
                obj.setdefault(key, value)
        if record.exc_info:
            obj["traceback"] = self.formatException(record.exc_info)
        from aicli.scrub import scrub

        # One scrub of the whole line, not one per field: it is on every request's path.
        return scrub(json.dumps(obj, ensure_ascii=False, default=str))


class _StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is at the time (test runners swap it)."""

    aicli_format: LogFormat = "text"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if (
                self.aicli_format == "text"
                and getattr(record, "event", None) in _TEXT_DEBUG_ONLY
                and logging.getLogger(ROOT).level > logging.DEBUG
            ):
                return
            text = self.format(record)
            stream = sys.stderr
            stream.write(text + "\n")
            stream.flush()
        except (BrokenPipeError, ValueError):
            pass  # stderr closed: nowhere left to say anything
        except Exception:
            self.handleError(record)


def _handler() -> _StderrHandler | None:
    for handler in logging.getLogger(ROOT).handlers:
        if isinstance(handler, _StderrHandler):
            return handler
    return None


def configure(fmt: LogFormat = "text", level: int = logging.WARNING) -> None:
    """Give the `aicli` logger exactly one stderr handler in `fmt`; safe to call again."""
    logger = logging.getLogger(ROOT)
    handler = _handler()
    if handler is None:
        handler = _StderrHandler()
        handler.addFilter(_ContextFilter())
        logger.addHandler(handler)
    handler.aicli_format = fmt
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    logger.setLevel(level)
    logger.propagate = False


def current_format() -> LogFormat:
    handler = _handler()
    return handler.aicli_format if handler is not None else "text"


def emit(level: int, event: str, message: str, **fields: Any) -> None:
    """Write one line now, whatever the logger's level (errors, summaries, notices)."""
    handler = _handler()
    if handler is None:
        configure()
        handler = _handler()
    assert handler is not None
    record = logging.getLogger(ROOT).makeRecord(
        ROOT, level, "aicli", 0, message, (), None, extra={"event": event, **fields}
    )
    handler.handle(record)
