"""The cache backend Protocols: strings under keys, atomic counters, locks, the daily spend's
ledger; the admin side.

A backend knows nothing about entries, counter names or policy (that is ResponseCache's job).
Failures a caller should survive raise CacheUnavailable; an unsafe store raises CacheError.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class EntryFacts:
    """What `aicli cache stats` reports about the stored values under one prefix."""

    entries: int
    size_bytes: int
    oldest: float | None  # epoch seconds
    newest: float | None


class CacheBackend(Protocol):
    """Stores strings under keys. It knows nothing about entries, counter names or policy."""

    name: str  # "disk" | "redis"
    location: str  # the directory, or the URL without its password

    async def get(self, key: str) -> str | None: ...

    async def set(
        self, key: str, value: str, *, ttl_s: float | None, expires: float | None
    ) -> None:
        """Store value; ttl_s bounds how long it is kept (None: until evicted or pruned);
        expires is the value's own freshness (epoch s), which `prune` may use."""

    async def delete(self, key: str) -> None: ...

    async def incr(self, deltas: Mapping[str, int], *, ttl_s: float | None = None) -> list[int]:
        """Add every delta atomically (all counters move together); the new values, in order."""

    def lock(self, key: str, *, ttl_s: float) -> AbstractAsyncContextManager[bool]:
        """Try once to take a lock that expires by itself; yields whether it was taken."""

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class SpendKeys:
    """The keys of one day's spend and of one ticket (ResponseCache names them)."""

    spent: str
    reserved: str
    ticket: str
    epoch: str  # a random id set when the day's counters are first written: a restart changes it


class SpendBackend(Protocol):
    """The daily spend's atomic operations (aicli.quota's Ledger), one store transaction each.

    A ticket key holds its reservation (nano-dollars) until settled, then "done" for done_ttl_s:
    a settlement repeated, or a reservation arriving after its own release, changes nothing.
    Both return (taken, spent, reserved, epoch) after the operation; `epoch` is set to the given
    one when the store holds none (a new day, or a store that lost the day)."""

    async def spend_reserve(
        self, keys: SpendKeys, nano: int, cap: int, epoch: str, *, ttl_s: float
    ) -> tuple[bool, int, int, str]:
        """Hold nano if spent + reserved + nano <= cap."""

    async def spend_settle(
        self, keys: SpendKeys, nano: int, epoch: str, *, ttl_s: float, done_ttl_s: float
    ) -> tuple[bool, int, int, str]:
        """Release the ticket's reservation (if held) and add nano to spent, once per ticket."""


class NowBackend(Protocol):
    """What a backend that can also answer without an event loop offers (the disk backend: a
    CLI cache hit then never starts asyncio). Same contracts as the async methods."""

    def get_now(self, key: str) -> str | None: ...

    def delete_now(self, key: str) -> None: ...

    def incr_now(self, deltas: Mapping[str, int]) -> list[int]: ...

    def close_now(self) -> None: ...


class CacheAdmin(Protocol):
    """What only `aicli cache stats|clear|prune` needs."""

    async def read_counters(self, keys: Sequence[str]) -> list[int]: ...

    async def facts(self, prefix: str, created: Callable[[str], float | None]) -> EntryFacts: ...

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with prefix (nothing else); returns how many."""

    async def prune(self, prefix: str, expired: Callable[[str], bool]) -> int:
        """Delete the values under prefix whose entry has expired; returns how many."""
