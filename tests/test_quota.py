"""The daily budget's arithmetic on a real disk ledger (the Redis ledger, failures and the state
machine are in tests/test_spend_ledger.py; end to end in tests/test_spend_serve.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from aicli.cache import ResponseCache
from aicli.cache.disk import DiskBackend
from aicli.errors import BudgetUnavailable, QuotaError
from aicli.ledger import CacheLedger, spend_read, utc_day
from aicli.quota import DailyQuota


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def disk(tmp_path: Path) -> ResponseCache:
    return ResponseCache(DiskBackend(tmp_path / "cache"))


def test_reserve_settle_and_refuse(tmp_path: Path) -> None:
    async def go() -> None:
        cache = disk(tmp_path)
        quota = DailyQuota(0.01, CacheLedger(cache), clock=lambda: 86400 * 100)
        first = await quota.reserve(0.006, "a call")
        with pytest.raises(QuotaError) as refused:
            await quota.reserve(0.006, "another call")  # 0.012 would pass the cap
        assert "insufficient" not in refused.value.message and "$0.01 " in refused.value.message
        state = await quota.spent_today()
        assert state is not None and (state.spent, state.reserved) == (0, 6_000_000)
        await quota.settle(first, 0.001)  # the real cost was lower: the rest comes back
        state = await quota.spent_today()
        assert state is not None and (state.spent, state.reserved) == (1_000_000, 0)
        await quota.reserve(0.009, "fits now")
        await cache.aclose()

    run(go())


def test_each_utc_day_has_its_own_counter(tmp_path: Path) -> None:
    async def go() -> None:
        cache = disk(tmp_path)
        now = [86400 * 100 + 3600.0]
        quota = DailyQuota(0.01, CacheLedger(cache), clock=lambda: now[0])
        ticket = await quota.reserve(0.01, "a call")
        now[0] += 86400
        await quota.reserve(0.01, "tomorrow's call")
        await quota.settle(ticket, 0.004)  # settles on the day it was reserved
        assert await spend_read(cache, utc_day(now[0] - 86400)) == (4_000_000, 0)
        assert await spend_read(cache, utc_day(now[0])) == (0, 10_000_000)
        await cache.aclose()

    run(go())


def test_without_a_cap_the_spend_is_still_counted(tmp_path: Path) -> None:
    async def go() -> None:
        cache = disk(tmp_path)
        quota = DailyQuota(None, CacheLedger(cache))
        ticket = await quota.reserve(5.0, "a call")  # nothing held: there is no cap
        await quota.settle(ticket, 0.25)
        state = await quota.spent_today()
        assert state is not None and (state.spent, state.reserved) == (250_000_000, 0)
        await cache.aclose()

    run(go())


def test_an_unusable_cache_refuses_paid_calls(tmp_path: Path) -> None:
    async def go() -> None:
        from aicli.cache.redis import RedisBackend
        from tests.serve_process import free_port

        dead = ResponseCache(RedisBackend(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.3))
        quota = DailyQuota(1.0, CacheLedger(dead))
        with pytest.raises(BudgetUnavailable) as refused:
            await quota.reserve(0.001, "a call to tier 'standard' (gpt-4o-mini)")
        assert refused.value.retry_after_s >= 1
        with pytest.raises(BudgetUnavailable):  # the breaker: no second wait on a dead store
            await quota.reserve(0.001, "a call")
        await dead.aclose()

    run(go())
