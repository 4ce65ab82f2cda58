"""The daily budget's arithmetic on a counter (the shared counter itself is tested with the
cache backends and end to end in tests/test_serve_budget.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aicli.errors import CacheUnavailable, QuotaError
from aicli.quota import DailyQuota


class Counters:
    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.down = False

    async def incr(self, name: str, delta: int, *, ttl_s: float | None = None) -> int:
        if self.down:
            raise CacheUnavailable("redis://127.0.0.1:1/0 is down")
        self.values[name] = self.values.get(name, 0) + delta
        return self.values[name]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_reserve_settle_and_refuse() -> None:
    counters = Counters()
    quota = DailyQuota(0.01, counters.incr, clock=lambda: 86400 * 100)
    first = run(quota.reserve(0.006, "a call"))
    with pytest.raises(QuotaError) as refused:
        run(quota.reserve(0.006, "another call"))  # 0.012 would pass the cap
    assert "insufficient" not in refused.value.message and "0.01" in refused.value.message
    assert run(quota.spent_usd()) == pytest.approx(0.006)  # the refused one left nothing behind
    run(quota.settle(first, 0.001))  # the real cost was lower: the rest comes back
    assert run(quota.spent_usd()) == pytest.approx(0.001)
    run(quota.reserve(0.009, "fits now"))


def test_each_utc_day_has_its_own_counter() -> None:
    counters = Counters()
    now = [86400 * 100 + 3600.0]
    quota = DailyQuota(0.01, counters.incr, clock=lambda: now[0])
    ticket = run(quota.reserve(0.01, "a call"))
    now[0] += 86400
    run(quota.reserve(0.01, "tomorrow's call"))
    run(quota.settle(ticket, 0.0))  # settles on the day it was reserved
    assert sorted(counters.values.values()) == [0, 10_000_000]


def test_a_cache_that_is_down_still_caps_per_process(caplog: pytest.LogCaptureFixture) -> None:
    counters = Counters()
    counters.down = True
    quota = DailyQuota(0.01, counters.incr)
    run(quota.reserve(0.008, "a call"))
    with pytest.raises(QuotaError):
        run(quota.reserve(0.008, "another call"))
    assert [r.message for r in caplog.records].count(
        "the daily budget is counted per process while the cache is unavailable"
    ) == 1
