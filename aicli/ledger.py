"""The daily spend's ledger: per UTC day what was spent, what calls in flight reserved, and one
key per ticket, in the cache backend (a Lua script per operation in Redis, one SQLite
transaction on disk), beside the cache and never cleared with it.

Each reservation and settlement is applied exactly once by ticket id: a settlement repeated, or
one after a Redis restart that forgot the reservation, never releases what was not held, and no
counter goes below zero. Each day has an epoch (a random id), so a reader can tell that the store
lost the day. Amounts are integer nano-dollars.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

from aicli.errors import CacheError

if TYPE_CHECKING:
    from aicli.cache import ResponseCache
    from aicli.cache.backend import CacheAdmin, SpendBackend

NANO = 1_000_000_000
KEEP_S = 2 * 86400  # a day's counters outlive their day by one more, then expire
DONE_S = 3600  # a settled ticket is remembered this long: a late or repeated message is a no-op
LEDGER_RETRY_S = 5.0  # after a failure, the ledger is tried again this much later


def utc_day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def reserve_nano(amount_usd: float) -> int:
    """A worst case in nano-dollars, rounded up: a reservation never holds less than its bound."""
    return max(0, math.ceil(round(amount_usd * NANO, 3)))


def cost_nano(amount_usd: float) -> int:
    return max(0, round(amount_usd * NANO))


@dataclass(frozen=True)
class LedgerState:
    """A day's counters after one ledger operation (taken: the reservation or settlement was
    applied now; False when refused, or already applied before)."""

    taken: bool
    spent: int
    reserved: int
    epoch: str = ""  # changes when the store lost the day (a Redis restart): see DailyQuota._saw


class Ledger(Protocol):
    """The day's shared money. Each method is one atomic operation; CacheError when the store
    cannot be reached (the operation may or may not have happened)."""

    @property
    def available(self) -> bool:
        """False for a while after a failure: callers skip the store (a dead Redis costs one
        timeout per LEDGER_RETRY_S, not one per request)."""

    def retry_after_s(self) -> float: ...

    async def reserve(self, day: str, ticket: str, nano: int, cap: int) -> LedgerState:
        """Hold nano under ticket if spent + reserved + nano <= cap (and the ticket was not
        settled or released already)."""

    async def settle(self, day: str, ticket: str, nano: int) -> LedgerState:
        """Release the ticket's reservation, if the store holds it, and add nano to spent; a
        ticket already settled changes nothing."""

    async def read(self, day: str) -> LedgerState: ...


async def spend_today(cache: ResponseCache, *, clock: Callable[[], float] = time.time) -> float:
    """Today's spend (UTC) as the cache holds it, in dollars. Raises CacheUnavailable."""
    spent, _reserved = await spend_read(cache, utc_day(clock()))
    return spent / NANO


async def spend_read(cache: ResponseCache, day: str) -> tuple[int, int]:
    """(spent, reserved) of a day, in nano-dollars. Raises CacheUnavailable."""
    keys = cache.spend_keys(day)
    admin = cast("CacheAdmin", cache.backend)
    spent, reserved = await admin.read_counters([keys.spent, keys.reserved])
    return spent, reserved


class CacheLedger:
    """The Ledger on the service's cache (Redis or disk), with a short breaker of its own."""

    def __init__(self, cache: ResponseCache, *, retry_s: float = LEDGER_RETRY_S) -> None:
        self.cache = cache
        self.retry_s = retry_s
        self._down_until = 0.0  # time.monotonic()

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def retry_after_s(self) -> float:
        return max(1.0, math.ceil(self._down_until - time.monotonic()))

    @property
    def _store(self) -> SpendBackend:
        return cast("SpendBackend", self.cache.backend)  # both backends implement it

    async def _guard(self, op: Awaitable[tuple[bool, int, int, str]]) -> LedgerState:
        try:
            return LedgerState(*await op)
        except CacheError as exc:
            self._down_until = time.monotonic() + self.retry_s
            self.cache.went_down(exc, "daily budget")
            raise

    async def reserve(self, day: str, ticket: str, nano: int, cap: int) -> LedgerState:
        keys, epoch = self.cache.spend_keys(day, ticket), new_id()
        return await self._guard(self._store.spend_reserve(keys, nano, cap, epoch, ttl_s=KEEP_S))

    async def settle(self, day: str, ticket: str, nano: int) -> LedgerState:
        keys, epoch = self.cache.spend_keys(day, ticket), new_id()
        return await self._guard(
            self._store.spend_settle(keys, nano, epoch, ttl_s=KEEP_S, done_ttl_s=DONE_S)
        )

    async def read(self, day: str) -> LedgerState:
        # A settlement of nothing on one shared ticket: it changes no amount, and it reports
        # the day's epoch, so a reader notices a store that restarted empty.
        return await self.settle(day, "read", 0)


def new_id() -> str:
    return os.urandom(12).hex()
