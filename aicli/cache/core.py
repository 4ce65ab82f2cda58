"""CacheCore: the cache's key layout, failing open, and reading and writing entries.

The layers below ResponseCache, one class each (as httpx puts BaseClient under Client and
AsyncClient): CacheCore here, SingleFlight (flight.py) on it, ResponseCache (response.py, the
counters and `aicli cache`) on top. Every decision is written once; the async methods and the
`*_now` ones (a backend that answers without an event loop: a CLI cache hit never starts asyncio)
are thin adapters around it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TypeVar, cast

from aicli.cache.backend import CacheBackend, NowBackend, SpendKeys
from aicli.cache.entries import CacheEntry
from aicli.cache.outage import Outage
from aicli.errors import CacheError, CacheUnavailable

log = logging.getLogger("aicli")

T = TypeVar("T")


class CacheCore:
    """Entries by cache key over one backend, failing open."""

    def __init__(
        self,
        backend: CacheBackend,
        *,
        namespace: str = "aicli",
        stale_for: float | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.backend = backend
        self._now = cast(NowBackend, backend) if hasattr(backend, "get_now") else None
        self.namespace = namespace
        self.prefix = f"{namespace}:v1:"
        self.stale_for = stale_for  # None: kept until pruned or evicted (disk)
        self.retry_after_s = retry_after_s  # None: once down, down for this invocation
        self.outage = Outage(backend, self.counter_key("hits"), retry_after_s)

    # ---- where ---------------------------------------------------------------------------------

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def location(self) -> str:
        return self.backend.location

    @property
    def directory(self) -> Path | None:
        directory = getattr(self.backend, "directory", None)
        return directory if isinstance(directory, Path) else None

    def entry_key(self, key: str) -> str:
        return f"{self.prefix}entry:{key}"

    def counter_key(self, name: str) -> str:
        return f"{self.prefix}counter:{name}"

    def lock_key(self, key: str) -> str:
        return f"{self.prefix}lock:{key}"

    def spend_keys(self, day: str, ticket: str = "") -> SpendKeys:
        """The daily spend lives beside the cache, not in it: `clear` and `prune` never touch
        the `spend:` keys (only entries and the hit/miss counters are the cache's)."""
        base = f"{self.prefix}spend:"
        day_keys = (f"{base}{day}:{part}" for part in ("spent", "reserved", "epoch"))
        spent, reserved, epoch = day_keys
        return SpendKeys(spent, reserved, f"{base}ticket:{ticket}", epoch)

    # ---- failing open ----------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """Whether calls use the backend now (False: they carry on without the cache)."""
        return self.outage.available

    @property
    def retry_in_s(self) -> float | None:
        return self.outage.retry_in_s

    def retry_now(self) -> None:
        self.outage.retry_now()

    def went_down(self, exc: CacheError, what: str = "") -> None:
        """Stop using the backend (for good, or until a probe gets an answer) after one warning."""
        self.outage.went_down(exc, what)

    def _failed(self, exc: CacheError, what: str, writes: bool) -> None:
        """The one rule for a failed op: a write fails open on any CacheError (the answer is
        paid for); a read only on CacheUnavailable, so an unsafe cache directory still stops
        the command before anything is sent."""
        if not (writes or isinstance(exc, CacheUnavailable)):
            raise exc
        self.went_down(exc, what)

    async def guarded(
        self,
        op: Callable[[], Awaitable[T]],
        default: T,
        *,
        what: str = "",
        writes: bool = False,
    ) -> T:
        """op(), or default when the backend is (or just went) unavailable (`_failed`)."""
        if not self.available:
            return default
        try:
            result = await op()
        except CacheError as exc:
            self._failed(exc, what, writes)
            return default
        if writes:
            self.outage.wrote()
        return result

    def guarded_now(
        self, op: Callable[[], T], default: T, *, what: str = "", writes: bool = False
    ) -> T:
        """`guarded` for an op that answers without an event loop."""
        if not self.available:
            return default
        try:
            return op()
        except CacheError as exc:
            self._failed(exc, what, writes)
            return default

    @asynccontextmanager
    async def _held(self, key: str, ttl_s: float) -> AsyncIterator[bool | None]:
        """The backend's lock for key, failing open: True when ours, False when another
        process holds it, None when the backend just went down. Its release is best effort:
        the answer may be paid for by now (a full disk must not lose it), and a lock left
        behind lapses by itself after ttl_s."""
        stack = AsyncExitStack()
        lock = self.backend.lock(self.lock_key(key), ttl_s=ttl_s)
        taken = await self.guarded(lambda: stack.enter_async_context(lock), None, writes=True)
        try:
            yield taken
        finally:
            try:
                await stack.aclose()
            except CacheError as exc:
                self.went_down(exc, "could not release the single-flight lock")

    # ---- entries -----------------------------------------------------------------------------

    @property
    def answers_now(self) -> bool:
        """Whether the `*_now` methods work (the backend answers without an event loop)."""
        return self._now is not None

    async def get(self, key: str) -> CacheEntry | None:
        """The entry for key, expired or not (the caller checks `.expired()`); None on a miss."""
        full = self.entry_key(key)
        raw: str | ValueError | TypeError | None
        try:
            raw = await self.guarded(lambda: self.backend.get(full), None)
        except (ValueError, TypeError) as exc:  # a value the backend cannot even decode
            raw = exc
        entry, unreadable = self._decoded(key, raw)
        if unreadable:
            await self.guarded(lambda: self.backend.delete(full), None, writes=True)
        return entry

    def get_now(self, key: str) -> CacheEntry | None:
        """`get` without an event loop; only when `answers_now`."""
        assert self._now is not None
        now, full = self._now, self.entry_key(key)
        raw: str | ValueError | TypeError | None
        try:
            raw = self.guarded_now(lambda: now.get_now(full), None)
        except (ValueError, TypeError) as exc:
            raw = exc
        entry, unreadable = self._decoded(key, raw)
        if unreadable:
            self.guarded_now(lambda: now.delete_now(full), None, writes=True)
        return entry

    def _decoded(
        self, key: str, raw: str | ValueError | TypeError | None
    ) -> tuple[CacheEntry | None, bool]:
        """The one decision both `get`s share: (the entry or None, whether the stored value is
        unreadable and goes). raw: the stored text, or what reading it raised. A tampered or
        torn value is never fatal, only a miss."""
        if raw is None:
            return None, False
        try:
            if isinstance(raw, Exception):
                raise raw
            return CacheEntry.from_json(raw), False
        except (ValueError, TypeError) as exc:
            log.warning(
                "cache entry %s is unreadable (%s); deleted it and treated it as a miss",
                key[:12],
                str(exc)[:120],
            )
            return None, True

    async def set(self, key: str, entry: CacheEntry) -> None:
        """Store entry under key (replacing any older one). An empty answer is never cached."""
        text = self.stored_text(entry)
        if text is None:
            return
        ttl_s = self.kept_for(entry)
        full = self.entry_key(key)
        await self.guarded(
            lambda: self.backend.set(full, text, ttl_s=ttl_s, expires=entry.expires),
            None,
            what="could not save the answer in the cache",
            writes=True,
        )

    @staticmethod
    def stored_text(entry: CacheEntry | None) -> str | None:
        """The JSON stored for entry; None when nothing is (no entry, or an empty answer)."""
        if entry is None or not (entry.content or entry.tool_calls):
            return None
        return entry.to_json()

    def kept_for(self, entry: CacheEntry) -> float | None:
        """How long the backend keeps the entry (None: until evicted or pruned): past its own
        expiry for stale_for seconds, as a fallback when tiers fail."""
        if self.stale_for is None or entry.expires is None:
            return None
        return max(1.0, entry.expires - time.time() + self.stale_for)
