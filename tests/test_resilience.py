"""Per-tier rate limits and cooldowns, seen from the test server's request log."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aicli.resilience import Cooldowns, TierLimiters
from tests.cli.test_prompts.helpers import many_cases, write


def test_rate_limit_spaces_requests_per_tier(cli, server, make_config) -> None:
    # 120/min: a burst of 2, then one every 0.5 s; 5 requests cannot all start within 1.2 s.
    make_config(tiers={"standard": {"rate_limit": 120}})
    write(Path("prompts/many.test.yaml"), many_cases(5))
    result = cli("test-prompts", "-j", "5", "--no-cache")
    assert result.exit_code == 0, result
    times = sorted(r["time"] for r in server.requests)
    assert len(times) == 5
    assert times[-1] - times[0] >= 1.2
    # the first two went out together (the burst), so the limiter is not a plain queue
    assert times[1] - times[0] < 0.4


def test_latency_is_the_providers_not_the_rate_limit_wait(cli, server, make_config) -> None:
    import json

    make_config(tiers={"standard": {"rate_limit": 60}})  # one request a second
    write(Path("prompts/many.test.yaml"), many_cases(3))
    result = cli("test-prompts", "-j", "3", "--no-cache", "-o", "report.json")
    assert result.exit_code == 0, result
    times = sorted(r["time"] for r in server.requests)
    assert times[-1] - times[0] >= 1.5  # the run waited on the limiter...
    latencies = [r["latency_ms"] for r in json.loads(Path("report.json").read_text())["results"]]
    assert max(latencies) < 1000  # ...but no answer's latency includes that wait


def test_echo_is_not_rate_limited(cli, make_config) -> None:
    make_config(tiers={"echo": {"rate_limit": 1}})
    write(Path("prompts/many.test.yaml"), many_cases(3, tier="echo"))
    result = cli("test-prompts", "-j", "3", "--no-cache")
    assert result.exit_code == 0, result


def test_other_tiers_have_their_own_bucket(cli, server, make_config) -> None:
    make_config(tiers={"standard": {"rate_limit": 60}, "economy": {"rate_limit": 6000}})
    write(Path("prompts/many.test.yaml"), many_cases(4, tier="economy"))
    result = cli("test-prompts", "-j", "4", "--no-cache")
    assert result.exit_code == 0, result
    times = sorted(r["time"] for r in server.requests)
    assert times[-1] - times[0] < 0.9  # economy is not slowed by standard's 1/s


def test_a_failing_tier_cools_down_and_is_skipped(cli, server, make_config) -> None:
    make_config(cooldown={"probe_seconds": 600})  # no probe within the run: the count is exact
    server.script("standard-model", ["503"] * 50)
    write(Path("prompts/many.test.yaml"), many_cases(8))
    result = cli("test-prompts", "-j", "1", "--no-cache")
    assert result.exit_code == 0, result  # every case answered by the fallback tier
    # three failures in a row put `standard` in cooldown: later cases go straight to economy
    assert len(server.requests_for("standard-model")) == 3
    assert len(server.requests_for("economy-model")) == 8


def test_cooldowns_unit() -> None:
    cool = Cooldowns(threshold=2, seconds=60)
    cool.failed("a")
    assert not cool.cooling("a")
    cool.failed("a")
    assert cool.cooling("a") and not cool.cooling("b")
    cool.succeeded("a")
    assert not cool.cooling("a")


def test_limiter_is_shared_per_tier() -> None:
    limiters = TierLimiters()
    assert limiters.get("x", 60) is limiters.get("x", 60)
    assert limiters.get("x", 60) is not limiters.get("y", 60)

    async def burst() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for _ in range(3):
            async with limiters.get("fast", 6000):
                pass
        return loop.time() - start

    assert asyncio.run(burst()) < 0.5
