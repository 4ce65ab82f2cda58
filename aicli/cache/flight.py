"""SingleFlight: concurrent requests with the same cache key share one provider call.

Within one process the first caller of a key leads and the others await its future. Across
processes (and machines, with Redis) the leader holds a short-lived lock key in the backend,
`<namespace>:v1:lock:<key>`, and the others poll for the entry it writes; the lock expires by
itself if its holder dies. A waiter whose wait passes `wait_s` (the tier's timeout) calls the
provider itself. A dead backend never stops anyone: they simply call for themselves. A
`sole_writer` (the one worker of a service on the disk cache) skips the backend's lock.

It is a layer of ResponseCache (over CacheCore, under the counters), not a helper beside it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aicli.cache.core import CacheCore
from aicli.cache.entries import CacheEntry

if TYPE_CHECKING:
    import asyncio

Produce = Callable[[], Awaitable[CacheEntry | None]]
Shared = tuple[CacheEntry | None, bool]  # (the entry, whether another call made it)
_FIRST_POLL_S = 0.02
_MAX_POLL_S = 0.25


class SingleFlight(CacheCore):
    """CacheCore plus the calls in flight, by cache key."""

    def __init__(self, *args: Any, sole_writer: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._leaders: dict[str, asyncio.Future[CacheEntry | None]] = {}
        # This process is the only one answering from this cache (a one-worker service on the
        # disk cache): the in-process leaders are all the single-flight there is, and the
        # backend's lock (two SQLite write transactions per miss) is skipped.
        self.sole_writer = sole_writer

    async def single_flight(
        self, key: str, produce: Produce, *, wait_s: float, store: bool
    ) -> Shared:
        """One produce() for concurrent callers of key: (the entry, whether another call made it).

        The caller that produces also stores the answer (when store) before others see it.
        """
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
        shared: Shared = (None, False)
        try:
            if store and self.available and not self.sole_writer:
                shared = await self._across(key, produce, wait_s)
            elif store and self.available:
                entry = await produce()
                if entry is not None:
                    await self.set(key, entry)  # before the future resolves: waiters find it
                shared = (entry, False)
            else:  # nothing will be stored for others to find: share within this process only
                shared = (await produce(), False)
            return shared
        finally:
            del self._leaders[key]
            future.set_result(shared[0])

    async def _across(self, key: str, produce: Produce, wait_s: float) -> Shared:
        """Lead through the backend's lock, or wait for the entry the lock holder writes."""
        import asyncio

        deadline = time.monotonic() + wait_s
        delay = _FIRST_POLL_S
        folded = getattr(self.backend, "lead", None) is not None
        while time.monotonic() < deadline and self.available:
            if folded:
                shared = await self._lead(key, produce, wait_s)
                if shared is not None:
                    return shared
                if not self.available:
                    break
            else:
                async with self._held(key, wait_s) as taken:
                    if taken is None:  # the backend just went down
                        break
                    found = await self._fresh(key)  # the previous holder may have just written it
                    if found is not None:
                        return found, True
                    if taken:
                        entry = await produce()
                        if entry is not None:
                            await self.set(key, entry)  # before the lock goes: waiters find it
                        return entry, False
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, _MAX_POLL_S)
        return await produce(), False

    async def _lead(self, key: str, produce: Produce, wait_s: float) -> Shared | None:
        """One round on a backend that takes the lock and reads the entry in one trip, and
        stores the answer and releases the lock in one more (the disk cache: two trips to its
        thread per miss, not four). None: another process holds the lock and nothing is
        stored yet (poll again), or the backend just went down."""
        backend: Any = self.backend  # the disk backend's `lead`/`finish` (checked by the caller)
        lock_key, entry_key = self.lock_key(key), self.entry_key(key)
        got = await self.guarded(
            lambda: backend.lead(lock_key, wait_s, entry_key), None, writes=True
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
                await self.guarded(lambda: backend.finish(lock_key, token), None, writes=True)
            return found, True
        if token is None:
            return None
        entry: CacheEntry | None = None
        try:
            entry = await produce()
        finally:  # the answer (when there is one) is stored before the lock goes
            text = self.stored_text(entry)
            ttl = self.kept_for(entry) if entry is not None else None
            expires = entry.expires if entry is not None else None
            await self.guarded(
                lambda: backend.finish(
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

    async def _fresh(self, key: str) -> CacheEntry | None:
        entry = await self.get(key)
        return entry if entry is not None and not entry.expired() else None
