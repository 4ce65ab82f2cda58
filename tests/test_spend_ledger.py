"""The daily spend's ledger and quota on the real cache backends (a disk cache, a real
redis-server): exact and idempotent reservations and settlements, failing closed, the local share,
replay once, and a Hypothesis state machine of the money against a model."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
)

from aicli.cache import ResponseCache
from aicli.cache.disk import DiskBackend
from aicli.cost import Budget, Ticket, reserve_all, usd
from aicli.errors import BudgetError, BudgetUnavailable, CacheUnavailable, QuotaError
from aicli.ledger import NANO, CacheLedger, LedgerState, spend_read
from aicli.quota import DailyQuota

DAY = 86400 * 20000 + 3600.0  # a fixed UTC day


def clock() -> float:
    return DAY


class FlakyLedger:
    """A CacheLedger whose store goes down ("down": nothing reaches it) or loses its replies
    ("lost": the operation runs, the caller hears a failure: a paused Redis)."""

    def __init__(self, cache: ResponseCache) -> None:
        self.inner = CacheLedger(cache, retry_s=0.0)
        self.mode = "up"

    @property
    def available(self) -> bool:
        return True

    def retry_after_s(self) -> float:
        return 1.0

    async def _do(self, op: Any) -> LedgerState:
        if self.mode == "down":
            op.close()  # never sent
            raise CacheUnavailable("the store is down")
        state: LedgerState = await op
        if self.mode == "lost":
            raise CacheUnavailable("Redis did not answer within 1 s")
        return state

    async def reserve(self, day: str, ticket: str, nano: int, cap: int) -> LedgerState:
        return await self._do(self.inner.reserve(day, ticket, nano, cap))

    async def settle(self, day: str, ticket: str, nano: int) -> LedgerState:
        return await self._do(self.inner.settle(day, ticket, nano))

    async def read(self, day: str) -> LedgerState:
        return await self._do(self.inner.read(day))


def _cache(kind: str, tmp: Path, redis_url: str | None, ns: str) -> ResponseCache:
    if kind == "disk":
        return ResponseCache(DiskBackend(tmp / "cache"), namespace=ns)
    from aicli.cache.redis import RedisBackend

    assert redis_url is not None
    return ResponseCache(RedisBackend(redis_url, timeout_s=2.0), namespace=ns)


@pytest.fixture(params=["disk", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ResponseCache]:
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else None
    cache = _cache(request.param, tmp_path, url, f"spend-{uuid.uuid4().hex[:12]}")
    yield cache


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# ---- the ledger itself ------------------------------------------------------------------------


async def res(cache: ResponseCache, day: str, ticket: str, nano: int, cap: int) -> Any:
    state = await CacheLedger(cache, retry_s=0).reserve(day, ticket, nano, cap)
    return (state.taken, state.spent, state.reserved)


async def stl(cache: ResponseCache, day: str, ticket: str, nano: int) -> Any:
    state = await CacheLedger(cache, retry_s=0).settle(day, ticket, nano)
    return (state.taken, state.spent, state.reserved)


def test_a_settlement_counts_once_and_never_releases_what_was_not_held(
    store: ResponseCache,
) -> None:
    async def go() -> None:
        day = "2026-12-06"
        try:
            assert await res(store, day, "a", 300, 1000) == (True, 0, 300)
            assert await res(store, day, "b", 800, 1000) == (False, 0, 300)
            assert await stl(store, day, "a", 120) == (
                True, 120, 0,
            )  # fmt: skip
            # repeated (a retry after a lost reply): nothing changes
            assert await stl(store, day, "a", 120) == (
                False, 120, 0,
            )  # fmt: skip
            # a settlement whose reservation the store forgot (restart): spend added, nothing
            # released below zero
            assert await stl(store, day, "gone", 50) == (
                True, 170, 0,
            )  # fmt: skip
            # a release that overtook its own reservation (a paused Redis): the late
            # reservation holds nothing
            assert (await stl(store, day, "late", 0))[0]
            assert await res(store, day, "late", 500, 1000) == (False, 170, 0)
            assert await spend_read(store, day) == (170, 0)
        finally:
            await store.aclose()

    run(go())


def test_large_amounts_stay_exact_integers(store: ResponseCache) -> None:
    async def go() -> None:
        day, cap = "2026-12-06", 1_000_000 * NANO  # the largest daily_budget_usd
        try:
            assert await res(store, day, "a", 999_999_999_999_999, cap) == (
                True, 0, 999_999_999_999_999,
            )  # fmt: skip
            assert await res(store, day, "b", 2, cap) == (False, 0, 999_999_999_999_999)
            assert await stl(store, day, "a", 999_999_999_999_998) == (
                True, 999_999_999_999_998, 0,
            )  # fmt: skip
            assert await res(store, day, "c", 2, cap) == (True, 999_999_999_999_998, 2)
            assert await stl(store, day, "c", 1) == (True, 999_999_999_999_999, 0)
        finally:
            await store.aclose()

    run(go())


def test_clear_and_prune_keep_the_days_spend(store: ResponseCache) -> None:
    async def go() -> None:
        day = "2026-12-06"
        try:
            await res(store, day, "a", 300, 1000)
            await stl(store, day, "a", 250)
            await store.record_miss()
            await store.prune()
            await store.clear()
            assert await spend_read(store, day) == (250, 0)
            assert (await store.stats())["misses"] == 0  # the cache's own counters did reset
        finally:
            await store.aclose()

    run(go())


# ---- the quota over it ------------------------------------------------------------------------


def quota_on(cache: ResponseCache, cap: float | None, **kw: Any) -> tuple[DailyQuota, FlakyLedger]:
    ledger = FlakyLedger(cache)
    return DailyQuota(cap, ledger, clock=clock, **kw), ledger


def test_refusal_names_spent_and_reserved_apart_with_their_digits(store: ResponseCache) -> None:
    async def go() -> None:
        quota, _ = quota_on(store, 0.001)
        try:
            first = await quota.reserve(0.0004, "a call")
            await quota.settle(first, 0.0001)
            await quota.reserve(0.0005, "a slow call")
            with pytest.raises(QuotaError) as refused:
                await quota.reserve(0.0005, "a third call")
            text = refused.value.message
            assert "today's spend is $0.0001 and calls in flight hold $0.0005" in text
            assert "$0.001 daily budget" in text and "$0.0005" in text
        finally:
            await store.aclose()

    run(go())


def test_money_fails_closed_when_the_counter_is_down(store: ResponseCache) -> None:
    async def go() -> None:
        quota, ledger = quota_on(store, 1.0)
        try:
            ledger.mode = "down"
            with pytest.raises(BudgetUnavailable) as refused:
                await quota.reserve(0.01, "a call")
            assert "unreachable" in refused.value.message and refused.value.retry_after_s >= 1
            free = await quota.reserve(0.0, "a free call")  # price 0: never waits on the counter
            await quota.settle(free, 0.0)
        finally:
            await store.aclose()

    run(go())


def test_local_share_then_replay_once(store: ResponseCache) -> None:
    async def go() -> None:
        quota, ledger = quota_on(store, 1.0, when_unavailable="local", local_share=4)
        try:
            seen = await quota.reserve(0.2, "first")
            await quota.settle(seen, 0.2)  # the ledger saw $0.20 of $1: $0.80 left
            ledger.mode = "down"
            spent = 0.0
            with pytest.raises(BudgetUnavailable) as refused:
                while True:
                    ticket = await quota.reserve(0.03, "a call")
                    await quota.settle(ticket, 0.03)
                    spent += 0.03
            assert spent <= 0.8 / 4 + 1e-9 and spent > 0.8 / 4 - 0.03
            assert (
                "this worker's share" in refused.value.message and "$0.2" in refused.value.message
            )
            ledger.mode = "up"
            state = await quota.spent_today()
            assert state is not None and state.spent == round((0.2 + spent) * NANO)
            assert quota.unwritten_usd() == 0
            again = await quota.spent_today()  # nothing is replayed twice
            assert again is not None and again.spent == state.spent
        finally:
            await store.aclose()

    run(go())


def test_budget_and_quota_reserve_together_and_roll_back_together(store: ResponseCache) -> None:
    async def go() -> None:
        quota, _ = quota_on(store, 0.05)
        budget = Budget(1.0)
        try:
            held = await reserve_all([budget, quota], 0.04, "a call")
            with pytest.raises(QuotaError):
                await reserve_all([budget, quota], 0.04, "another call")
            assert budget.reserved == pytest.approx(0.04)  # the refused one was rolled back
            small = Budget(0.01)
            with pytest.raises(BudgetError):
                await reserve_all([small, quota], 0.02, "too dear for the request")
            for limit, ticket in held:
                await limit.release(ticket)
            state = await quota.spent_today()
            assert state is not None and (state.spent, state.reserved) == (0, 0)
            assert budget.reserved == 0
        finally:
            await store.aclose()

    run(go())


def test_usd_keeps_significant_digits() -> None:
    assert [usd(x) for x in (0.001, 1e-7, 2.32, 2.0, 0.0)] == [
        "$0.001", "$0.0000001", "$2.32", "$2.00", "$0.00",
    ]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=1e-12, max_value=1e9, allow_nan=False))
def test_usd_never_rounds_money_away(amount: float) -> None:
    text = usd(amount)
    assert text.startswith("$")
    shown = float(text[1:])
    assert shown > 0 and abs(shown - amount) <= amount * 1e-5


# ---- the state machine ------------------------------------------------------------------------


class QuotaMachine(RuleBasedStateMachine):
    """Reserve, settle, release, the store going down or losing replies, and restarts (the
    store emptied) against a model: the ledger, once it answers and the quota has replayed,
    holds exactly what the provider billed (a restart loses nothing: the quota adds back what it
    wrote); its counters are never negative; without restarts or overruns the day never passes
    its cap."""

    kind = "disk"
    local = False
    tickets = Bundle("tickets")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.cap = 1_000_000  # nano-dollars: $0.001
        self.model_spent = 0
        self.billed = 0
        self.exact = True  # no restart or overrun yet: the cap holds for the billed total

    @initialize()
    def open(self) -> None:
        import tempfile

        self.tmp = tempfile.TemporaryDirectory()
        url = REDIS_URL[0] if self.kind == "redis" else None
        self.cache = _cache(self.kind, Path(self.tmp.name), url, f"sm-{uuid.uuid4().hex[:10]}")
        mode = "local" if self.local else "refuse"
        self.quota, self.ledger = quota_on(self.cache, self.cap / NANO, when_unavailable=mode)

    def teardown(self) -> None:
        if hasattr(self, "cache"):
            self.loop.run_until_complete(self.cache.aclose())
            self.tmp.cleanup()
        self.loop.close()

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def _raw(self) -> tuple[int, int]:
        result: tuple[int, int] = self._run(spend_read(self.cache, self.quota.today()))
        return result

    @rule(target=tickets, nano=st.integers(1, 600_000))
    def reserve(self, nano: int) -> Any:
        try:
            ticket = self._run(self.quota.reserve(nano / NANO, "a call"))
        except (QuotaError, BudgetUnavailable):
            return None
        return (ticket, nano)

    @rule(held=consumes(tickets), part=st.floats(0, 1), over=st.booleans())
    def settle(self, held: tuple[Ticket, int] | None, part: float, over: bool) -> None:
        if held is None:
            return
        ticket, nano = held
        actual = round(nano * part) + (nano if over and part > 0.9 else 0)
        self.exact = self.exact and actual <= nano
        self._run(self.quota.settle(ticket, actual / NANO))
        self.billed += actual
        self.model_spent += actual

    @rule(held=consumes(tickets))
    def release(self, held: tuple[Ticket, int] | None) -> None:
        if held is not None:
            self._run(self.quota.release(held[0]))

    @rule(mode=st.sampled_from(["up", "down", "lost"]))
    def store_mode(self, mode: str) -> None:
        self.ledger.mode = mode

    @rule()
    def restart(self) -> None:
        """The store restarts empty: what it held is gone, what the quota still holds is not."""
        prefix = self.cache.prefix + "spend:"
        backend: Any = self.cache.backend
        if self.kind == "redis":
            client = REDIS_CLIENT[0]
            keys = client.keys(prefix + "*")
            if keys:
                client.delete(*keys)
        else:
            from aicli.cache.disk_store import COUNTERS

            def wipe(c: Any) -> None:
                for key in list(c.iterkeys()):
                    if str(key).startswith(prefix):
                        c.delete(key)

            self._run(backend._run(COUNTERS, wipe))
        # every live worker adds back what it wrote before: nothing billed is lost
        self.exact = False

    @precondition(lambda self: hasattr(self, "quota"))
    @rule()
    def store_back(self) -> None:
        """The store answers again: the quota replays, and the ledger matches the model."""
        self.ledger.mode = "up"
        state = self._run(self.quota.spent_today())
        assert state is not None
        assert self.quota.unwritten_usd() == 0
        assert state.spent == self.model_spent

    @invariant()
    def never_negative_nor_past_the_cap(self) -> None:
        if not hasattr(self, "quota"):
            return
        spent, reserved = self._raw()
        assert spent >= 0 and reserved >= 0
        if self.exact and not self.local:
            assert self.billed <= self.cap
            assert spent + reserved <= self.cap


REDIS_URL: list[str] = []
REDIS_CLIENT: list[Any] = []

_SETTINGS = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class LocalQuotaMachine(QuotaMachine):
    local = True


class RedisQuotaMachine(QuotaMachine):
    kind = "redis"


@pytest.mark.parametrize("machine", [QuotaMachine, LocalQuotaMachine, RedisQuotaMachine])
def test_quota_state_machine(machine: type[QuotaMachine], request: pytest.FixtureRequest) -> None:
    if machine.kind == "redis":
        server = request.getfixturevalue("redis_server")
        REDIS_URL[:] = [server.url]
        REDIS_CLIENT[:] = [server.client()]
    try:
        machine.TestCase.settings = _SETTINGS
        machine.TestCase().runTest()
    finally:
        for client in REDIS_CLIENT:
            with contextlib.suppress(Exception):
                client.close()
        REDIS_CLIENT.clear()
