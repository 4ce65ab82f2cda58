"""ResponseCache: the cache policy both backends share, and the only cache the engine sees.

It owns the key layout (`<namespace>:v1:entry|counter|lock|spend:...`), the CacheEntry JSON, the
counter names, how long an expired answer stays as a stale fallback, single-flight, and failing
open: on the first failure it warns once, naming the location, and carries on without the cache
(a long-running server tries it again in the background: outage.py).

A backend that can also answer without an event loop (disk) gives the `*_now` methods: the
engine reads a CLI cache hit with them before it starts asyncio (start-up time).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aicli.cache.backend import CacheAdmin, CacheBackend, NowBackend, SpendKeys
from aicli.cache.entries import CacheEntry
from aicli.cache.flight import Flights
from aicli.cache.outage import Outage
from aicli.errors import CacheError, CacheUnavailable

if TYPE_CHECKING:
    import asyncio

log = logging.getLogger("aicli")

COUNTER_NAMES = ("hits", "misses", "tokens_saved", "cost_saved_nusd")
_NANO = 1_000_000_000  # dollars are counted as integer nano-dollars so increments stay atomic
T = TypeVar("T")


class ResponseCache:
    """Cached answers by cache key, over one backend; every method is async."""

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
        self._flights = Flights(self)
        # Counter deltas that arrived while a write was in flight: they go out together in the
        # next write, so a busy server makes one counter write per batch, not one per hit.
        self._pending: dict[str, int] = {}
        self._flushing = False
        self._next_flush: asyncio.Task[None] | None = None

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

    async def guarded(
        self,
        op: Callable[[], Awaitable[T]],
        default: T,
        *,
        what: str = "",
        writes: bool = False,
    ) -> T:
        """op(), or default when the backend is (or just went) unavailable. A write fails open
        on any CacheError (the answer is paid for); a read only on CacheUnavailable, so an
        unsafe cache directory still stops the command before anything is sent."""
        if not self.available:
            return default
        try:
            result = await op()
        except CacheError as exc:
            if not (writes or isinstance(exc, CacheUnavailable)):
                raise
            self.went_down(exc, what)
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
            if not (writes or isinstance(exc, CacheUnavailable)):
                raise
            self.went_down(exc, what)
            return default

    # ---- entries -----------------------------------------------------------------------------

    async def get(self, key: str) -> CacheEntry | None:
        """The entry for key, expired or not (the caller checks `.expired()`); None on a miss."""
        full = self.entry_key(key)
        try:
            raw = await self.guarded(lambda: self.backend.get(full), None)
            return None if raw is None else CacheEntry.from_json(raw)
        except (ValueError, TypeError) as exc:  # a tampered or torn value: never fatal
            self._warn_unreadable(key, exc)
            await self.guarded(lambda: self.backend.delete(full), None, writes=True)
            return None

    @property
    def answers_now(self) -> bool:
        """Whether the `*_now` methods work (the backend answers without an event loop)."""
        return self._now is not None

    def get_now(self, key: str) -> CacheEntry | None:
        """`get` without an event loop; only when `answers_now`."""
        assert self._now is not None
        now, full = self._now, self.entry_key(key)
        try:
            raw = self.guarded_now(lambda: now.get_now(full), None)
            return None if raw is None else CacheEntry.from_json(raw)
        except (ValueError, TypeError) as exc:
            self._warn_unreadable(key, exc)
            self.guarded_now(lambda: now.delete_now(full), None, writes=True)
            return None

    def _warn_unreadable(self, key: str, exc: Exception) -> None:
        log.warning(
            "cache entry %s is unreadable (%s); deleted it and treated it as a miss",
            key[:12],
            str(exc)[:120],
        )

    async def set(self, key: str, entry: CacheEntry) -> None:
        """Store entry under key (replacing any older one). An empty answer is never cached."""
        if not entry.content and not entry.tool_calls:
            return
        ttl_s = self.kept_for(entry)
        text = entry.to_json()
        full = self.entry_key(key)
        await self.guarded(
            lambda: self.backend.set(full, text, ttl_s=ttl_s, expires=entry.expires),
            None,
            what="could not save the answer in the cache",
            writes=True,
        )

    def kept_for(self, entry: CacheEntry) -> float | None:
        """How long the backend keeps the entry (None: until evicted or pruned): past its own
        expiry for stale_for seconds, as a fallback when tiers fail."""
        if self.stale_for is None or entry.expires is None:
            return None
        return max(1.0, entry.expires - time.time() + self.stale_for)

    async def single_flight(
        self,
        key: str,
        produce: Callable[[], Awaitable[CacheEntry | None]],
        *,
        wait_s: float,
        store: bool,
    ) -> tuple[CacheEntry | None, bool]:
        """One produce() for concurrent callers of key: (the entry, whether another call made it).

        The caller that produces also stores the answer (when store) before others see it.
        """
        return await self._flights.run(key, produce, wait_s=wait_s, store=store)

    # ---- counters ----------------------------------------------------------------------------

    async def record_hit(self, entry: CacheEntry) -> None:
        await self._bump(**_hit_deltas(entry))

    def record_hit_now(self, entry: CacheEntry) -> None:
        """`record_hit` without an event loop: written at once."""
        for name, delta in _hit_deltas(entry).items():
            key = self.counter_key(name)
            self._pending[key] = self._pending.get(key, 0) + delta
        self._flush_now()

    def _flush_now(self) -> None:
        assert self._now is not None
        now = self._now
        batch, self._pending = self._pending, {}
        if batch:
            empty: list[int] = []
            self.guarded_now(
                lambda: now.incr_now(batch),
                empty,
                what="could not update the cache counters",
                writes=True,
            )

    async def record_miss(self) -> None:
        await self._bump(misses=1)

    async def _bump(self, **deltas: int) -> None:
        for name, delta in deltas.items():
            key = self.counter_key(name)
            self._pending[key] = self._pending.get(key, 0) + delta
        if not self._flushing:
            await self._flush()  # nothing in flight: written now, as before
        # else: the write in flight schedules the next batch, which carries these deltas

    async def _flush(self) -> None:
        self._flushing = True
        batch, self._pending = self._pending, {}
        try:
            empty: list[int] = []
            await self.guarded(
                lambda: self.backend.incr(batch),
                empty,
                what="could not update the cache counters",
                writes=True,
            )
        finally:
            if self._pending:  # arrived meanwhile: a task writes them, not this caller
                import asyncio

                self._next_flush = asyncio.get_running_loop().create_task(self._flush())
            else:
                self._flushing = False

    async def flush_counters(self) -> None:
        """Write the counter deltas still pending (stats and aclose read them back)."""
        while True:
            if self._next_flush is not None and not self._next_flush.done():
                await self._next_flush
            elif self._flushing:
                import asyncio

                await asyncio.sleep(0.001)  # a caller's write is in flight; its deltas follow
            elif self._pending:
                await self._flush()
            else:
                return

    async def incr_counter(self, name: str, delta: int, *, ttl_s: float | None = None) -> int:
        """Add delta to a shared counter atomically and return its new value (ttl_s: it expires
        that long after its last change). Raises CacheUnavailable: the caller decides."""
        (value,) = await self.backend.incr({self.counter_key(name): delta}, ttl_s=ttl_s)
        return value

    # ---- admin (aicli cache) -----------------------------------------------------------------

    @property
    def _admin(self) -> CacheAdmin:
        return cast(CacheAdmin, self.backend)

    async def _admin_op(self, op: Callable[[], Awaitable[T]]) -> T:
        """op(); CacheUnavailable (exit 3) names the cache, as `aicli cache` shows it."""
        try:
            return await op()
        except CacheUnavailable as exc:
            raise CacheUnavailable(
                f"the {self.backend.name} cache at {self.location} is unavailable: {exc.message}",
                exc.hint,
            ) from None

    async def stats(self) -> dict[str, Any]:
        """SPEC's `aicli cache stats --json` object. Raises CacheUnavailable."""
        await self.flush_counters()
        admin = self._admin
        names = [self.counter_key(name) for name in COUNTER_NAMES]
        hits, misses, tokens, nanos = await self._admin_op(lambda: admin.read_counters(names))
        facts = await self._admin_op(lambda: admin.facts(self.entry_key(""), _created))
        lookups = hits + misses
        directory = self.directory
        return {
            "directory": None if directory is None else str(directory),
            "backend": self.backend.name,
            "location": self.backend.location,
            "entries": facts.entries,
            "size_bytes": facts.size_bytes,
            "hits": hits,
            "misses": misses,
            "hit_rate": round(hits / lookups, 4) if lookups else 0.0,
            "tokens_saved": tokens,
            "cost_saved_usd": round(nanos / _NANO, 9),
            "oldest": _iso(facts.oldest),
            "newest": _iso(facts.newest),
        }

    async def clear(self) -> int:
        """Delete every entry and reset the counters (this namespace only); how many entries."""
        count = await self._admin_op(lambda: self._admin.delete_prefix(self.entry_key("")))
        await self._admin_op(lambda: self._admin.delete_prefix(self.counter_key("")))
        return count

    async def prune(self) -> int:
        """Delete expired entries; returns how many."""
        return await self._admin_op(lambda: self._admin.prune(self.entry_key(""), _expired))

    async def aclose(self) -> None:
        await self.outage.aclose()
        await self.flush_counters()
        await self.backend.aclose()

    def close_now(self) -> None:
        """`aclose` without an event loop, after the `*_now` methods alone were used."""
        assert self._now is not None
        self._flush_now()
        self._now.close_now()


def _hit_deltas(entry: CacheEntry) -> dict[str, int]:
    tokens = max(0, int(entry.usage.total_tokens))
    nanos = max(0, round(entry.cost_usd * _NANO))
    return {"hits": 1, "tokens_saved": tokens, "cost_saved_nusd": nanos}


def _created(raw: str) -> float | None:
    try:
        return CacheEntry.from_json(raw).created
    except (ValueError, TypeError):
        return None


def _expired(raw: str) -> bool:
    try:
        return CacheEntry.from_json(raw).expired()
    except (ValueError, TypeError):
        return True  # unreadable: nothing could ever use it


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    from datetime import datetime, timezone

    moment = datetime.fromtimestamp(ts, tz=timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
