"""`retry` events: each retry the openai SDK makes becomes one aicli log line (attempt, status,
the wait), so a CI log shows why a run was slow.

The SDK decides and logs its retries ("Retrying request in %f seconds (retry %i of %s)"); an httpx
response hook notes the status that caused it. Both run in the caller's task, so a contextvar
carries the status and `logs.log_context` supplies the tier and request id.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

log = logging.getLogger(__name__)
_SDK_LOGGER = "openai._base_client"

_last_status: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "aicli_last_status", default=None
)


async def note_request(_request: Any) -> None:
    _last_status.set(None)  # a timeout or connection error leaves no status


async def note_response(response: Any) -> None:
    _last_status.set(int(response.status_code))


class _RetryListener(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if not str(record.msg).startswith("Retrying request"):
            return
        args: tuple[Any, ...] = record.args if isinstance(record.args, tuple) else ()
        try:
            wait: float | None = round(float(args[0]), 3)
            attempt: int | None = int(args[1])
            of: int | None = int(args[2])
        except (IndexError, TypeError, ValueError):  # another SDK wording: keep what we know
            wait, attempt, of = None, None, None
        status = _last_status.get()
        why = f"HTTP {status}" if status else "a timeout or connection error"
        from aicli.logs import current_context

        tier = current_context().get("tier")
        log.info(
            "tier '%s': retry %s of %s in %s s after %s",
            tier, attempt, of, wait, why,
            extra={"event": "retry", "attempt": attempt, "max_retries": of, "status": status,
                   "wait_s": wait},
        )  # fmt: skip


def install() -> None:
    """Listen to the SDK's retry lines (once per process)."""
    sdk = logging.getLogger(_SDK_LOGGER)
    if any(isinstance(h, _RetryListener) for h in sdk.handlers):
        return
    sdk.addHandler(_RetryListener())
    if sdk.getEffectiveLevel() > logging.INFO:
        sdk.setLevel(logging.INFO)  # its retry line is INFO; the root logger still shows none
