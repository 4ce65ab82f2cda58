"""Log lines of the service: one JSON object per line on stderr."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_STD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        from aicli.security import scrub

        fields: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "event": getattr(record, "event", None) or "log",
        }
        if record.getMessage() != fields["event"]:
            fields["message"] = scrub(record.getMessage())
        for key, value in record.__dict__.items():
            if key not in _STD and key not in fields:
                fields[key] = value
        return json.dumps(fields, default=str)


def configure_logging() -> None:
    logger = logging.getLogger("aicli")
    for handler in list(logger.handlers):
        if getattr(handler, "_aicli", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._aicli = True  # type: ignore[attr-defined]
    handler.setFormatter(_Json())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
