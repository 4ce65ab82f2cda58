"""Money fails closed, end to end: real `aicli serve` processes (2 workers, 2 replicas where it
matters) on a real redis-server that is killed, paused and restarted empty, in front of the fake
provider, whose billed total (usage x price) is the truth the daily budget is checked against."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fake_openai import FakeOpenAI
from tests.redis_server import RedisServer
from tests.serve_process import REPO_ROOT, ServeProcess
from tests.test_serve_shared import start

OUT_PER_TOKEN = 0.05  # dollars per completion token
USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}  # $0.10 a call
CALL_USD = 0.10
MAX_TOKENS = 3  # a call reserves $0.15
TIERS = {
    "paid": {
        "model": "paid-model",
        "provider": "fake",
        "timeout_seconds": 20,
        "price": {"input_per_1m": 0.0, "output_per_1m": OUT_PER_TOKEN * 1_000_000},
    },
    "free": {"model": "free-model", "provider": "fake", "price": {}},
}


def billed(server: FakeOpenAI) -> float:
    """What the provider billed: every answer it sent, usage x price."""
    return sum(
        r["usage"]["completion_tokens"] * OUT_PER_TOKEN
        for r in server.requests
        if "usage" in r and r["model"] == "paid-model"
    )


def today() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d")


class Fleet:
    """Replicas of `aicli serve` sharing one Redis namespace."""

    def __init__(self, tmp: Path, server: FakeOpenAI, redis: RedisServer, **serve: Any) -> None:
        self.ns = f"money-{uuid.uuid4().hex[:8]}"
        self.redis = redis
        cache = {"backend": "redis", "url": redis.url, "namespace": self.ns, "timeout_seconds": 0.5}
        self.tmp, self.server, self.cache, self.serve = tmp, server, cache, serve
        self.replicas: list[ServeProcess] = []

    def start(self, replicas: int = 2, workers: int = 2) -> Fleet:
        for i in range(replicas):
            svc = start(
                self.tmp / f"r{i}", self.server, workers=workers, cache=self.cache,
                serve=self.serve, tiers=TIERS, default_tier="paid",
            )  # fmt: skip
            self.replicas.append(svc)
            for _ in range(2 * workers):  # the SDK loaded in every worker before the money
                assert ask(svc.url, tier="free").status_code == 200
        return self

    def stop(self) -> None:
        for svc in self.replicas:
            assert svc.stop() == 0, svc.log()
            assert "Traceback" not in svc.log(), svc.log()

    def counters(self) -> tuple[float, float]:
        """(spent, reserved) today, read straight from Redis, in dollars."""
        client = self.redis.client()
        try:
            base = f"{self.ns}:v1:spend:{today()}"
            spent, reserved = client.mget(f"{base}:spent", f"{base}:reserved")
        finally:
            client.close()
        return int(spent or 0) / 1e9, int(reserved or 0) / 1e9


@pytest.fixture
def priced(server: FakeOpenAI) -> FakeOpenAI:
    server.usage_override = dict(USAGE)
    return server


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    own = RedisServer(tmp_path / "redis").start()  # its own: these tests kill it
    yield own
    own.stop()


def ask(url: str, *, tier: str = "paid") -> httpx.Response:
    body = {"prompt": f"spend {uuid.uuid4().hex}", "max_tokens": MAX_TOKENS, "tier": tier}
    with httpx.Client(timeout=30) as client:  # a new connection: any worker may take it
        return client.post(f"{url}/generate", json=body)


def race(
    urls: list[str], total: int, *, threads: int = 16, during: Callable[[], None] | None = None
) -> list[httpx.Response]:
    """`total` paid requests from `threads` clients over the replicas; `during()` runs in
    the middle of it."""
    answers: list[httpx.Response] = []
    lock = threading.Lock()
    left = [total]

    def client(i: int) -> None:
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            resp = ask(urls[(i + left[0]) % len(urls)])
            with lock:
                answers.append(resp)

    pool = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    if during is not None:
        during()
    for t in pool:
        t.join()
    return answers


def paid_calls(server: FakeOpenAI, n: int, timeout: float = 30) -> None:
    """Wait until the provider has received n paid calls (the race is on)."""
    deadline = time.monotonic() + timeout
    while len(server.requests_for("paid-model")) < n and time.monotonic() < deadline:
        time.sleep(0.01)


def check_refusals(answers: list[httpx.Response]) -> None:
    for resp in answers:
        if resp.status_code == 200:
            continue
        err = resp.json()["error"]
        if resp.status_code == 503:
            assert (err["type"], err["code"]) == ("server_error", "budget_unavailable"), err
            assert int(resp.headers["retry-after"]) >= 1
            assert "x-should-retry" not in resp.headers  # a later retry can succeed
            assert "127.0.0.1" not in err["message"]  # where Redis lives is not the caller's
        else:
            assert (resp.status_code, err["code"]) == (429, "insufficient_quota"), err
            assert (
                "today's spend is $" in err["message"]
                and "calls in flight hold $" in err["message"]
            )


@pytest.mark.parametrize("mode", ["refuse", "local"])
def test_redis_killed_mid_race_never_spends_past_the_budget(
    priced: FakeOpenAI, redis: RedisServer, tmp_path: Path, mode: str
) -> None:
    priced.latency = 0.3
    budget = 2.0
    fleet = Fleet(tmp_path, priced, redis, daily_budget_usd=budget, budget_when_unavailable=mode)
    fleet.start(replicas=2, workers=2)
    try:
        answers = race(
            [svc.url for svc in fleet.replicas], 120,
            during=lambda: (paid_calls(priced, 6), redis.kill()),
        )  # fmt: skip
        check_refusals(answers)
        codes = [r.status_code for r in answers]
        assert codes.count(200) >= 3 and 503 in codes, codes
        total = billed(priced)
        # `local`: each of the 4 workers spends at most its quarter of what it saw was left
        allowed = budget if mode == "refuse" else budget + budget / 4
        assert total <= allowed + 1e-9, (total, codes)
        assert abs(total - CALL_USD * codes.count(200)) < 1e-9  # every paid answer was sent
    finally:
        fleet.stop()


def test_redis_down_before_paid_calls_refuses_them_and_free_tiers_answer(
    priced: FakeOpenAI, redis: RedisServer, tmp_path: Path
) -> None:
    fleet = Fleet(tmp_path, priced, redis, daily_budget_usd=5.0)
    fleet.start(replicas=1, workers=2)
    try:
        redis.kill()
        url = fleet.replicas[0].url
        refused = [ask(url) for _ in range(6)]
        check_refusals(refused)
        assert {r.status_code for r in refused} == {503}
        assert billed(priced) == 0 and not priced.requests_for("paid-model")
        free = ask(url, tier="free")  # price 0: nothing to count, so it answers
        assert free.status_code == 200, free.text
    finally:
        fleet.stop()


def test_redis_paused_and_resumed_the_counter_equals_what_was_billed(
    priced: FakeOpenAI, redis: RedisServer, tmp_path: Path
) -> None:
    priced.latency = 0.4
    fleet = Fleet(tmp_path, priced, redis, daily_budget_usd=1000.0)
    fleet.start(replicas=2, workers=2)

    def pause() -> None:
        paid_calls(priced, 8)
        redis.pause()  # calls in flight settle into a Redis that does not answer
        time.sleep(3)
        redis.resume()

    try:
        answers = race([svc.url for svc in fleet.replicas], 80, during=pause)
        check_refusals(answers)
        assert 503 in [r.status_code for r in answers]  # refused while it slept
        total = billed(priced)
        deadline = time.monotonic() + 30
        while fleet.counters() != (pytest.approx(total), 0) and time.monotonic() < deadline:
            time.sleep(0.2)  # each worker writes what it kept within 5 s of Redis answering
        assert fleet.counters() == (pytest.approx(total, abs=1e-9), 0), (fleet.counters(), total)
    finally:
        fleet.stop()


def test_restart_with_an_empty_redis_never_goes_negative_and_replays_what_was_spent(
    priced: FakeOpenAI, redis: RedisServer, tmp_path: Path
) -> None:
    priced.latency = 1.0
    fleet = Fleet(tmp_path, priced, redis, daily_budget_usd=1000.0)
    fleet.start(replicas=1, workers=2)
    url = fleet.replicas[0].url
    seen: list[tuple[float, float]] = []
    try:
        # 1. Reserved, then Redis dies and the calls finish: their spend waits in the workers.
        def kill_then_restart_later() -> None:
            paid_calls(priced, 8)
            redis.kill()
            time.sleep(2.0)  # the calls end while it is down
            redis.restart_empty()

        answers = race([url], 8, threads=8, during=kill_then_restart_later)
        assert [r.status_code for r in answers] == [200] * 8, [r.text for r in answers]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen.append(fleet.counters())
            if seen[-1][0] == pytest.approx(8 * CALL_USD):
                break
            time.sleep(0.1)
        assert fleet.counters() == (pytest.approx(8 * CALL_USD), 0)  # replayed once

        # 2. Reserved, then Redis restarts empty at once: settling must not release what the
        #    new Redis never held (the counter stayed at -$0.0022 before), and each worker adds
        #    back what it had written before the restart (the counter read $0.101 of $9.29).
        def restart_now() -> None:
            paid_calls(priced, 16)
            redis.kill()
            redis.restart_empty()

        answers = race([url], 8, threads=8, during=restart_now)
        assert [r.status_code for r in answers] == [200] * 8, [r.text for r in answers]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen.append(fleet.counters())
            if seen[-1] == (pytest.approx(billed(priced)), 0):
                break
            time.sleep(0.1)
        assert fleet.counters() == (pytest.approx(16 * CALL_USD), 0)
        assert billed(priced) == pytest.approx(16 * CALL_USD)
        assert all(spent >= 0 and reserved >= 0 for spent, reserved in seen)
    finally:
        fleet.stop()


def _cli(svc: ServeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**svc.env, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "aicli", *args, "--config", str(svc.config)],
        capture_output=True, text=True, env=env, cwd=str(svc.config.parent), timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("backend", ["disk", "redis"])
def test_cache_clear_keeps_the_days_spend_and_metrics_show_it(
    priced: FakeOpenAI, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    cache: dict[str, Any] = {}
    if backend == "redis":
        server = request.getfixturevalue("redis_server")
        cache = {
            "backend": "redis",
            "url": server.url,
            "namespace": f"clear-{uuid.uuid4().hex[:8]}",
        }
    svc = start(
        tmp_path, priced, workers=2, cache=cache, tiers=TIERS, default_tier="paid",
        serve={"daily_budget_usd": 1.0},
    )  # fmt: skip
    try:
        for _ in range(3):
            assert ask(svc.url).status_code == 200
        cleared = _cli(svc, "cache", "clear", "--yes")
        assert cleared.returncode == 0, cleared.stderr
        done = _cli(svc, "cache", "stats", "--json")
        assert done.returncode == 0, done.stderr
        stats = json.loads(done.stdout)
        assert stats["entries"] == 0 and stats["misses"] == 0  # the cache was cleared...
        assert stats["spend_today_usd"] == pytest.approx(3 * CALL_USD)  # ...not the spend
        assert stats["daily_budget_usd"] == 1.0
        text = _cli(svc, "cache", "stats").stdout
        assert "spent today" in text and "$0.30" in text and "$1.00 daily budget" in text
        # the cap still counts the $0.30: six more fit ($0.15 held, $0.10 spent each), not 8
        codes = [ask(svc.url).status_code for _ in range(8)]
        assert codes == [200] * 6 + [429] * 2 and billed(priced) == pytest.approx(0.9)
        metrics = httpx.get(f"{svc.url}/metrics", timeout=30).text
        gauge = [ln for ln in metrics.splitlines() if ln.startswith("aicli_spend_today_usd")]
        assert gauge and float(gauge[0].split()[-1]) == pytest.approx(billed(priced)), gauge
    finally:
        assert svc.stop() == 0, svc.log()
    assert os.path.exists(svc.log_path)
