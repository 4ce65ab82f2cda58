"""The service's daily spending cap, shared by every worker and replica through atomic counters.

Each call reserves its worst case on today's counter (UTC) before it is sent and settles to its
real cost afterwards, so concurrent requests on many processes can never spend past the cap
together. Amounts are counted in integer nano-dollars so that increments stay atomic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aicli.errors import CacheError, QuotaError

log = logging.getLogger(__name__)

# incr(name, delta, ttl_s=...) -> the counter's new value; atomic across processes (the cache's)
Incr = Callable[..., Awaitable[int]]
_NANO = 1_000_000_000
_KEEP_S = 2 * 86400  # a day's counter outlives its day by one more, then expires


@dataclass(frozen=True)
class Reservation:
    counter: str  # the day's counter the amount went on (a call may end after midnight)
    nano: int


class DailyQuota:
    """`reserve` before a call (QuotaError when the cap would be passed), `settle` after it."""

    def __init__(
        self, cap_usd: float, incr: Incr, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.cap_usd = cap_usd
        self._cap = round(cap_usd * _NANO)
        self._shared = incr
        self._clock = clock
        self._local: dict[str, int] = {}  # while the shared counter cannot be reached
        self._warned = False

    async def _incr(self, name: str, delta: int, *, ttl_s: float) -> int:
        """The shared counter; when the cache is down, this process's own count (a cap per
        process is still a cap), with one warning."""
        try:
            value = await self._shared(name, delta, ttl_s=ttl_s)
        except CacheError as exc:
            if not self._warned:
                self._warned = True
                log.warning(
                    "the daily budget is counted per process while the cache is unavailable",
                    extra={"event": "quota.local", "error": exc.message},
                )
            self._local[name] = self._local.get(name, 0) + delta
            return self._local[name]
        return value + self._local.get(name, 0)

    def counter(self) -> str:
        return "serve_spend:" + time.strftime("%Y-%m-%d", time.gmtime(self._clock()))

    async def spent_usd(self) -> float:
        return await self._incr(self.counter(), 0, ttl_s=_KEEP_S) / _NANO

    async def reserve(self, amount_usd: float, what: str) -> Reservation:
        name, nano = self.counter(), max(0, round(amount_usd * _NANO))
        total = await self._incr(name, nano, ttl_s=_KEEP_S)
        if total > self._cap:
            await self._incr(name, -nano, ttl_s=_KEEP_S)
            spent = (total - nano) / _NANO
            raise QuotaError(
                f"{what} could cost up to ${amount_usd:.6f}; ${spent:.6f} of today's"
                f" ${self.cap_usd:.2f} budget is spent or reserved (serve.daily_budget_usd)",
                "try again tomorrow (UTC), lower max_tokens, or use a cheaper tier",
            )
        return Reservation(name, nano)

    async def settle(self, reservation: Reservation, actual_usd: float) -> None:
        """Count what the call really cost: the counter then holds today's true spend, so a
        call that cost more than its bound (the CLI's exit 4) makes the cap refuse sooner."""
        delta = round(actual_usd * _NANO) - reservation.nano
        if delta:
            await self._incr(reservation.counter, delta, ttl_s=_KEEP_S)
        if delta > 0:
            log.warning(
                "a call cost $%.6f, over the $%.6f reserved for it (the provider reported more"
                " usage than the bound); today's budget counts what it cost",
                actual_usd, reservation.nano / _NANO,
                extra={"event": "quota.overrun", "cost_usd": actual_usd,
                       "reserved_usd": reservation.nano / _NANO},
            )  # fmt: skip
