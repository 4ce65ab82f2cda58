"""Single-flight: concurrent requests with the same cache key share one provider call.

Within one process the first caller of a key leads and the others await its future. Across
processes (and machines, with Redis) the leader holds a short-lived lock key in the backend,
`<namespace>:v1:lock:<key>`, and the others poll for the entry it writes; the lock expires by
itself if its holder dies. A waiter whose wait passes `wait_s` (the tier's timeout) calls the
provider itself. A dead backend never stops anyone: they simply call for themselves.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

    from aicli.cache.entries import CacheEntry
    from aicli.cache.response import ResponseCache

Produce = Callable[[], Awaitable["CacheEntry | None"]]
_FIRST_POLL_S = 0.02
_MAX_POLL_S = 0.25


class Flights:
    """The calls in flight for one ResponseCache, by cache key."""

    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache
        self._leaders: dict[str, asyncio.Future[CacheEntry | None]] = {}

    async def run(
        self, key: str, produce: Produce, *, wait_s: float, store: bool
    ) -> tuple[CacheEntry | None, bool]:
        import asyncio  # not at the top: a CLI cache hit imports this module, never asyncio

        leader = self._leaders.get(key)
        if leader is not None:
            try:
                entry = await asyncio.wait_for(asyncio.shield(leader), wait_s)
            except asyncio.TimeoutError:
                entry = None
            if entry is not None:
                return entry, True
            return await produce(), False  # the leader failed or was too slow: our own call
        future: asyncio.Future[CacheEntry | None] = asyncio.get_running_loop().create_future()
        self._leaders[key] = future
        outcome: tuple[CacheEntry | None, bool] = (None, False)
        try:
            if store and self.cache.available:
                outcome = await self._across(key, produce, wait_s)
            else:  # nothing will be stored for others to find: share within this process only
                outcome = (await produce(), False)
            return outcome
        finally:
            del self._leaders[key]
            future.set_result(outcome[0])

    async def _across(
        self, key: str, produce: Produce, wait_s: float
    ) -> tuple[CacheEntry | None, bool]:
        """Lead through the backend's lock, or wait for the entry the lock holder writes."""
        import asyncio

        cache = self.cache
        deadline = time.monotonic() + wait_s
        delay = _FIRST_POLL_S
        folded = getattr(cache.backend, "lead", None) is not None
        while time.monotonic() < deadline and cache.available:
            if folded:
                outcome = await self._lead(key, produce, wait_s)
                if outcome is not None:
                    return outcome
                if not cache.available:
                    break
                await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 1.5, _MAX_POLL_S)
                continue
            lock = cache.backend.lock(cache.lock_key(key), ttl_s=wait_s)
            taken = await cache.guarded(lock.__aenter__, None, writes=True)
            if taken is None:  # the backend just went down
                break
            try:
                found = await self._fresh(key)  # the previous holder may have just written it
                if found is not None:
                    return found, True
                if taken:
                    entry = await produce()
                    if entry is not None:
                        await cache.set(key, entry)  # before the lock goes: waiters find it
                    return entry, False
            finally:
                await self._release(lock)
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, _MAX_POLL_S)
        return await produce(), False

    async def _lead(
        self, key: str, produce: Produce, wait_s: float
    ) -> tuple[CacheEntry | None, bool] | None:
        """One round on a backend that takes the lock and reads the entry in one trip, and
        stores the answer and releases the lock in one more (the disk cache: two trips to its
        thread per miss, not four). None: another process holds the lock and nothing is
        stored yet (poll again), or the backend just went down."""
        from aicli.cache.entries import CacheEntry

        cache = self.cache
        backend = cache.backend
        lock_key, entry_key = cache.lock_key(key), cache.entry_key(key)
        got = await cache.guarded(
            lambda: backend.lead(lock_key, wait_s, entry_key),  # type: ignore[attr-defined]
            None,
            writes=True,
        )
        if got is None:
            return None
        token, raw = got
        found = None
        if raw is not None:
            try:
                found = CacheEntry.from_json(raw)
            except (ValueError, TypeError):
                found = None  # tampered or torn: the answer produced below replaces it
        if found is not None and not found.expired():
            if token is not None:
                await cache.guarded(lambda: backend.finish(lock_key, token), None, writes=True)  # type: ignore[attr-defined]
            return found, True
        if token is None:
            return None
        entry: CacheEntry | None = None
        try:
            entry = await produce()
        finally:  # the answer (when there is one) is stored before the lock goes
            text = (
                entry.to_json()
                if entry is not None and (entry.content or entry.tool_calls)
                else None
            )
            ttl = cache.kept_for(entry) if entry is not None else None
            expires = entry.expires if entry is not None else None
            await cache.guarded(
                lambda: backend.finish(  # type: ignore[attr-defined]
                    lock_key,
                    token,
                    entry_key if text is not None else None,
                    text or "",
                    ttl_s=ttl,
                    expires=expires,
                ),
                None,
                what="could not save the answer in the cache",
                writes=True,
            )
        return entry, False

    async def _release(self, lock: AbstractAsyncContextManager[bool]) -> None:
        """Best effort: the answer may be paid for by now (a full disk must not lose it), and a
        lock left behind lapses by itself after its ttl."""
        from aicli.errors import CacheError

        try:
            await lock.__aexit__(None, None, None)
        except CacheError as exc:
            self.cache.went_down(exc, "could not release the single-flight lock")

    async def _fresh(self, key: str) -> CacheEntry | None:
        entry = await self.cache.get(key)
        return entry if entry is not None and not entry.expired() else None
