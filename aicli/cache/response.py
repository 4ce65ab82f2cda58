"""ResponseCache: the cache policy both backends share, and the only cache the engine sees.

Three layers, one class each: CacheCore (core.py: the key layout
`<namespace>:v1:entry|counter|lock|spend:...`, the CacheEntry JSON, how long an expired answer
stays as a stale fallback, failing open), SingleFlight (flight.py) on it, and ResponseCache here:
the hit/miss counters and `aicli cache stats|clear|prune`. On the first failure it warns once,
naming the location, and carries on without the cache (a long-running server tries it again in
the background: outage.py).

A backend that can also answer without an event loop (disk) gives the `*_now` methods: the
engine reads a CLI cache hit with them before it starts asyncio (start-up time).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aicli.cache.backend import CacheAdmin, CacheBackend
from aicli.cache.entries import CacheEntry
from aicli.cache.flight import SingleFlight
from aicli.errors import CacheUnavailable

if TYPE_CHECKING:
    import asyncio

COUNTER_NAMES = ("hits", "misses", "tokens_saved", "cost_saved_nusd")
_NANO = 1_000_000_000  # dollars are counted as integer nano-dollars so increments stay atomic
T = TypeVar("T")


class ResponseCache(SingleFlight):
    """Cached answers by cache key, over one backend, with single-flight and the counters."""

    def __init__(
        self,
        backend: CacheBackend,
        *,
        namespace: str = "aicli",
        stale_for: float | None = None,
        retry_after_s: float | None = None,
        sole_writer: bool = False,
    ) -> None:
        super().__init__(
            backend,
            namespace=namespace,
            stale_for=stale_for,
            retry_after_s=retry_after_s,
            sole_writer=sole_writer,
        )
        # Counter deltas that arrived while a write was in flight: they go out together in the
        # next write, so a busy server makes one counter write per batch, not one per hit.
        self._pending: dict[str, int] = {}
        self._flushing = False
        self._next_flush: asyncio.Task[None] | None = None

    # ---- counters ----------------------------------------------------------------------------

    async def record_hit(self, entry: CacheEntry) -> None:
        await self._bump(**_hit_deltas(entry))

    def record_hit_now(self, entry: CacheEntry) -> None:
        """`record_hit` without an event loop: written at once."""
        self._queue(_hit_deltas(entry))
        self._flush_now()

    def _queue(self, deltas: dict[str, int]) -> None:
        """Add counter deltas to the next write (the one place both adapters count in)."""
        for name, delta in deltas.items():
            key = self.counter_key(name)
            self._pending[key] = self._pending.get(key, 0) + delta

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
        self._queue(deltas)
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
        """The figures behind `aicli cache stats` (counts, bytes, dollars; `oldest`/`newest` in
        epoch seconds): the CLI words and dates them. Raises CacheUnavailable."""
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
            "oldest": facts.oldest,
            "newest": facts.newest,
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
