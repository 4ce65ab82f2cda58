"""Adaptive concurrency on 429s and x-ratelimit headers, the rate-limit notice, no default cap."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from aicli.config import load_config
from aicli.resilience import AdaptiveConcurrency, _seconds
from tests.cli.test_prompts.helpers import many_cases, write
from tests.helpers import DELETE

OK: dict[str, str] = {}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --- the controller itself (narrow unit tests) -------------------------------------------------


def test_a_burst_of_429s_halves_once_then_each_new_round_halves_again() -> None:
    async def go() -> None:
        gate = AdaptiveConcurrency("standard", 8)
        rounds = [await gate.acquire() for _ in range(8)]
        for r in rounds:  # eight calls of the same round all refused: one cut, not eight
            gate.observe(r, 429, OK)
        assert (gate.limit, gate.throttled) == (4, 8)
        for _ in rounds:
            gate.release()
        later = await gate.acquire()  # started after the cut: its 429 cuts again
        gate.observe(later, 429, OK)
        assert gate.limit == 2

    run(go())


def test_grows_back_after_runs_of_successes_up_to_the_ceiling() -> None:
    async def go() -> None:
        gate = AdaptiveConcurrency("standard", 6)
        gate.observe(await gate.acquire(), 429, OK)
        gate.release()
        assert gate.limit == 3
        seen = []
        for _ in range(40):
            gate.observe(await gate.acquire(), 200, OK)
            gate.release()
            seen.append(gate.limit)
        assert seen[:3] == [3, 3, 4]  # one more after `limit` successes in a row
        assert max(seen) == 6 and seen[-1] == 6  # never above -j

    run(go())


def test_the_limit_holds_new_calls_until_one_finishes() -> None:
    async def go() -> None:
        gate = AdaptiveConcurrency("standard", 2)
        await gate.acquire()
        await gate.acquire()
        third = asyncio.ensure_future(gate.acquire())
        await asyncio.sleep(0.05)
        assert not third.done()
        gate.release()
        await asyncio.wait_for(third, 1)
        assert gate.in_flight == 2

    run(go())


def test_a_cancelled_waiter_passes_its_wake_up_on() -> None:
    async def go() -> None:
        gate = AdaptiveConcurrency("standard", 1)
        await gate.acquire()
        first = asyncio.ensure_future(gate.acquire())
        second = asyncio.ensure_future(gate.acquire())
        await asyncio.sleep(0.01)
        gate.release()  # wakes `first`...
        first.cancel()  # ...which is cancelled before it runs
        await asyncio.wait_for(second, 1)
        assert gate.in_flight == 1

    run(go())


def test_retry_after_holds_new_calls() -> None:
    async def go() -> None:
        gate = AdaptiveConcurrency("standard", 4)
        gate.observe(await gate.acquire(), 429, {"retry-after": "1"})
        gate.release()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(gate.acquire(), 0.2)

    run(go())


def test_an_almost_spent_request_quota_spaces_the_calls() -> None:
    low = {
        "x-ratelimit-limit-requests": "100",
        "x-ratelimit-remaining-requests": "2",
        "x-ratelimit-reset-requests": "20s",  # 98 back in 20 s: one call every ~0.2 s
    }
    plenty = {**low, "x-ratelimit-remaining-requests": "90"}

    async def go() -> None:
        gate = AdaptiveConcurrency("standard", 8)
        gate.observe(await gate.acquire(), 200, low)
        await gate.acquire()  # the next one may go at once ...
        with pytest.raises(TimeoutError):  # ... the one after waits its turn
            await asyncio.wait_for(gate.acquire(), 0.1)
        gate.observe(0, 200, plenty)  # the quota refilled: no more spacing
        await asyncio.sleep(0.25)
        await asyncio.wait_for(gate.acquire(), 0.05)
        await asyncio.wait_for(gate.acquire(), 0.05)
        assert gate.limit == 8 and gate.throttled == 0  # slowed down without a single 429

    run(go())


def test_an_almost_spent_token_quota_pauses_new_calls() -> None:
    headers = {
        "x-ratelimit-limit-tokens": "10000",
        "x-ratelimit-remaining-tokens": "100",
        "x-ratelimit-reset-tokens": "6m0s",
    }

    async def go() -> None:
        gate = AdaptiveConcurrency("standard", 8)
        gate.observe(await gate.acquire(), 200, headers)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(gate.acquire(), 0.2)

    run(go())


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1", 1.0), ("0.5", 0.5), ("20ms", 0.02), ("6m0s", 360.0), ("1h2m3.5s", 3723.5)],
)
def test_durations_of_retry_after_and_reset_headers(text: str, seconds: float) -> None:
    assert _seconds(text) == pytest.approx(seconds)


def test_an_http_date_retry_after_is_left_to_the_sdk() -> None:
    assert _seconds("Wed, 21 Oct 2015 07:28:00 GMT") is None


# --- end to end: the CLI, the engine, the real SDK and the test server --------------------------


def no_fallback(**standard: Any) -> dict[str, Any]:
    return {"tiers": {"standard": {"fallback": [], **standard}}}


def test_a_rate_limited_server_gets_every_case_answered(cli, server, make_config) -> None:
    make_config(**no_fallback(max_retries=8))
    server.rate_limit = (4, 0.3)  # far less than -j 8 asks for
    write(Path("prompts/many.test.yaml"), many_cases(16))
    result = cli("test-prompts", "-j", "8", "--no-cache", "-v")
    assert result.exit_code == 0, result
    assert result.stdout.splitlines()[-1] == "16 passed, 0 failed"
    assert server.throttled > 0
    assert "calls at once now (was 8)" in result.stderr


def test_429s_without_retry_after_cut_concurrency_too(cli, server, make_config) -> None:
    make_config(**no_fallback(max_retries=3))
    server.latency = 0.1
    server.script("*", ["429"] * 6)  # no Retry-After: the SDK's own backoff
    write(Path("prompts/many.test.yaml"), many_cases(12))
    result = cli("test-prompts", "-j", "6", "--no-cache", "-v")
    assert result.exit_code == 0, result
    assert "429 (rate limited); 3 calls at once now (was 6)" in result.stderr
    assert len(server.requests) == 18  # 12 answers, 6 refusals, nothing else


def test_rate_limit_headers_slow_the_run_before_any_429(cli, server, make_config) -> None:
    make_config(**no_fallback())
    server.headers = {
        "x-ratelimit-limit-requests": "1000",
        "x-ratelimit-remaining-requests": "3",
        "x-ratelimit-reset-requests": "2s",
    }
    write(Path("prompts/many.test.yaml"), many_cases(4))
    result = cli("test-prompts", "-j", "4", "--no-cache", "-v")
    assert result.exit_code == 0, result
    assert "only 3 of 1000 requests left in the provider's quota" in result.stderr


def test_a_configured_rate_limit_says_once_that_the_run_waits(cli, server, make_config) -> None:
    make_config(tiers={"standard": {"rate_limit": 120}})  # a burst of 2, then one per 0.5 s
    write(Path("prompts/many.test.yaml"), many_cases(4))
    result = cli("test-prompts", "-j", "4", "--no-cache")
    assert result.exit_code == 0, result
    assert result.stderr.count("waiting: tiers.standard.rate_limit is 120/min") == 1


def test_no_rate_limit_by_default(cli, server, make_config) -> None:
    assert all(t.rate_limit is None for t in load_config().tiers.values())  # built-in config
    make_config(defaults={"rate_limit": DELETE})
    server.latency = 0.3
    write(Path("prompts/many.test.yaml"), many_cases(16))
    result = cli("test-prompts", "-j", "8", "--no-cache")
    assert result.exit_code == 0, result
    assert server.max_in_flight == 8  # -j means what it says
    assert "waiting:" not in result.stderr
