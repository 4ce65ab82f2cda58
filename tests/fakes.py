"""In-memory stand-ins for tests that need neither a disk nor a server.

`MemoryBackend` is a third cache backend (a dict), held to the same contract as the disk and
Redis backends by the `cache` fixture of tests/cache/conftest.py. Several `ResponseCache`s over one
instance behave like processes sharing one store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

from aicli.cache.backend import EntryFacts


class MemoryBackend:
    """Strings under keys in a dict, each with an optional deadline (time.monotonic())."""

    name = "memory"
    location = "memory"

    def __init__(self) -> None:
        self._data: dict[str, tuple[str, float | None]] = {}

    def _live(self, key: str) -> str | None:
        found = self._data.get(key)
        if found is None:
            return None
        value, until = found
        if until is not None and time.monotonic() >= until:
            del self._data[key]
            return None
        return value

    # -- CacheBackend ---------------------------------------------------------------------------

    async def get(self, key: str) -> str | None:
        await _io()
        return self._live(key)

    async def set(
        self, key: str, value: str, *, ttl_s: float | None, expires: float | None
    ) -> None:
        await _io()
        self._data[key] = (value, None if ttl_s is None else time.monotonic() + ttl_s)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def incr(self, deltas: Mapping[str, int], *, ttl_s: float | None = None) -> list[int]:
        await _io()
        out = []
        for key, delta in deltas.items():  # one event loop: nothing runs in between
            value = int(self._live(key) or 0) + delta
            self._data[key] = (str(value), None if ttl_s is None else time.monotonic() + ttl_s)
            out.append(value)
        return out

    @asynccontextmanager
    async def lock(self, key: str, *, ttl_s: float) -> AsyncIterator[bool]:
        await _io()
        taken = self._live(key) is None
        token = object().__repr__()
        if taken:
            self._data[key] = (token, time.monotonic() + ttl_s)
        try:
            yield taken
        finally:
            if taken and self._live(key) == token:
                del self._data[key]

    async def aclose(self) -> None:
        """Nothing to close: the data stays for the next cache over this backend."""

    # -- CacheAdmin -----------------------------------------------------------------------------

    def _under(self, prefix: str) -> list[tuple[str, str]]:
        pairs = [(k, self._live(k)) for k in list(self._data) if k.startswith(prefix)]
        return [(k, v) for k, v in pairs if v is not None]

    async def read_counters(self, keys: Sequence[str]) -> list[int]:
        return [int(self._live(k) or 0) for k in keys]

    async def facts(self, prefix: str, created: Callable[[str], float | None]) -> EntryFacts:
        pairs = self._under(prefix)
        times = [t for t in (created(v) for _, v in pairs) if t is not None]
        return EntryFacts(
            entries=len(pairs),
            size_bytes=sum(len(v.encode()) for _, v in pairs),
            oldest=min(times, default=None),
            newest=max(times, default=None),
        )

    async def delete_prefix(self, prefix: str) -> int:
        pairs = self._under(prefix)
        for key, _ in pairs:
            del self._data[key]
        return len(pairs)

    async def prune(self, prefix: str, expired: Callable[[str], bool]) -> int:
        gone = [k for k, v in self._under(prefix) if expired(v)]
        for key in gone:
            del self._data[key]
        return len(gone)


async def _io() -> None:
    """A real backend's call gives other tasks a turn (a thread hop, a socket): so does this,
    or code that batches while a call is in flight would never be exercised."""
    await asyncio.sleep(0)
