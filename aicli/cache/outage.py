"""When the cache backend is bypassed, and the background probe that brings it back.

On a failure ResponseCache stops using the backend after one warning. A one-shot command stays
without it; a long-running server (`retry_after_s` set) has a probe try the backend after 1 s,
then 2, 4, ... up to `retry_after_s` between tries. Requests never wait on a dead or hung backend
meanwhile (the probe pays its timeout), and the cache is used again as soon as a probe gets an
answer. /health reports this state: what the worker does, not whether a ping answers.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from typing import TYPE_CHECKING

from aicli.errors import CacheError

if TYPE_CHECKING:
    import asyncio

    from aicli.cache.backend import CacheBackend

log = logging.getLogger("aicli")

RETRY_FIRST_S = 1.0  # the first wait before a bypassed backend is tried again (then doubled)


class Outage:
    """Whether one backend is in use, and when it is tried again."""

    def __init__(self, backend: CacheBackend, probe_key: str, retry_after_s: float | None) -> None:
        self.backend = backend
        self.probe_key = probe_key  # read by the probe: any answer, even a miss, will do
        self.retry_after_s = retry_after_s  # None: once down, down for this invocation
        self.retry_first_s = min(RETRY_FIRST_S, retry_after_s or RETRY_FIRST_S)
        self._wait = self.retry_first_s  # the next wait; doubles per failed try
        self._down_until: float | None = None  # time.monotonic()
        self._revival: asyncio.Task[None] | None = None  # the probe while down
        self._nudge: asyncio.Event | None = None  # set: probe now

    @property
    def available(self) -> bool:
        if self._down_until is None:
            return True
        if self._revival is not None and not self._revival.done():
            return False  # the probe says when it is back
        if time.monotonic() >= self._down_until:
            self._down_until = None
            return True
        return False

    @property
    def retry_in_s(self) -> float | None:
        """Seconds until the backend is tried again while it is bypassed (None: in use, or
        never again in this invocation)."""
        if self.available or self._down_until is None or self._down_until == float("inf"):
            return None
        return max(0.0, self._down_until - time.monotonic())

    def retry_now(self) -> None:
        """Have the probe try the bypassed backend at once (another check saw it answer)."""
        if self._nudge is not None:
            self._nudge.set()

    def wrote(self) -> None:
        """A write went through: the backend is back for good, so waits start over (a disk
        that reads but cannot write keeps backing off instead)."""
        self._wait = self.retry_first_s

    def went_down(self, exc: CacheError, what: str = "") -> None:
        """Stop using the backend (for good, or until a probe gets an answer) after one warning."""
        if not self.available:  # calls in flight when it went down fail too: one warning
            return
        backend = self.backend
        text = exc.message
        if backend.location not in text:
            text = f"the {backend.name} cache at {backend.location}: {text}"
        wait = float("inf") if self.retry_after_s is None else self._wait
        later = "" if self.retry_after_s is None else f"; trying it again in {wait:g} s"
        hint = f" ({exc.hint})" if exc.hint else ""
        log.warning(
            "%s%s; carrying on without the cache%s%s",
            f"{what}: " if what else "",
            text,
            later,
            hint,
            extra={"event": "cache.unavailable", "backend": backend.name},
        )
        self._down_until = time.monotonic() + wait
        if self.retry_after_s is not None:
            self._start_revival()

    def _start_revival(self) -> None:
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop: the first call after the wait tries it
            self._wait = min(self._wait * 2, self.retry_after_s or 0.0)
            return
        self._nudge = asyncio.Event()
        # A context of its own: the probe is no request's (its log lines carry no request id).
        self._revival = contextvars.Context().run(loop.create_task, self._revive(self._nudge))

    async def _revive(self, nudge: asyncio.Event) -> None:
        """Try the backend after each wait (doubling up to retry_after_s) until it answers."""
        import asyncio

        cap = self.retry_after_s or self.retry_first_s
        while True:
            wait = self._wait
            self._down_until = time.monotonic() + wait
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(nudge.wait(), wait)
            nudge.clear()
            self._wait = min(wait * 2, cap)
            if await self._answers():
                break
        self._down_until = None
        log.warning(
            "the %s cache at %s answers again; using it again",
            self.backend.name,
            self.backend.location,
            extra={"event": "cache.available", "backend": self.backend.name},
        )

    async def _answers(self) -> bool:
        reset = getattr(self.backend, "reset", None)
        try:
            if reset is not None:  # pooled connections from before the outage are dead
                await reset()
            await self.backend.get(self.probe_key)
        except CacheError:
            return False
        except Exception as exc:  # a probe must never end the process; it tries again later
            log.debug("cache probe failed: %s", exc)
            return False
        return True

    async def aclose(self) -> None:
        revival, self._revival = self._revival, None
        if revival is not None and not revival.done():
            import asyncio

            revival.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await revival
