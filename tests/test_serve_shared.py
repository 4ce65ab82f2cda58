"""`aicli serve` sharing state: the daily budget across 2 workers, one Redis for two servers,
and a Redis that is down (health degraded, answers still given)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.fake_openai import FakeOpenAI
from tests.helpers import TEST_KEY, TEST_KEY_ENV
from tests.serve_process import ServeProcess, base_env, free_port
from tests.test_serve import write_config

# $1 per completion token: a call may cost 10 tokens ($10), the fake answers with 2 ($2).
PRICEY = {"input_per_1m": 0.0, "output_per_1m": 1_000_000.0}


def start(tmp: Path, server: FakeOpenAI, *, workers: int = 1, **overrides: Any) -> ServeProcess:
    config = write_config(tmp / "cfg", server.base_url, **overrides)
    env = base_env(tmp / "home")
    env[TEST_KEY_ENV] = TEST_KEY
    return ServeProcess(config, env, workers=workers, log_path=tmp / "serve.log").start()


@pytest.fixture
def budget_svc(server: FakeOpenAI, tmp_path: Path) -> Iterator[ServeProcess]:
    svc = start(
        tmp_path,
        server,
        workers=2,
        serve={"daily_budget_usd": 25.0},
        tiers={"standard": {"model": "standard-model", "provider": "fake", "price": PRICEY}},
        default_tier="standard",
    )
    yield svc
    assert svc.stop() == 0, svc.log()


def test_daily_budget_is_shared_by_two_workers(
    budget_svc: ServeProcess, server: FakeOpenAI
) -> None:
    server.set_answer("*", "abcdefgh")  # 2 completion tokens: $2 a call, $10 reserved
    statuses: list[int] = []
    costs: list[float] = []
    lock = threading.Lock()

    def one() -> None:
        body = {"prompt": f"spend {uuid.uuid4().hex}", "max_tokens": 10}
        with httpx.Client(base_url=budget_svc.url, timeout=30) as client:  # a new connection
            resp = client.post("/generate", json=body)
        with lock:
            statuses.append(resp.status_code)
            if resp.status_code == 200:
                costs.append(resp.json()["cost_usd"])
            else:
                err = resp.json()["error"]
                assert (resp.status_code, err["type"]) == (429, "insufficient_quota"), err
                assert resp.headers["x-should-retry"] == "false"

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 429 in statuses and statuses.count(200) >= 2
    assert sum(costs) <= 25.0  # never past the cap, whatever the interleaving
    # One at a time now: each call reserves $10 and settles to $2, so the sum fills exactly.
    for _ in range(20):
        one()
    spent = sum(costs)
    assert spent <= 25.0 and spent + 10 > 25.0 - 1e-9  # nothing more fits
    sdk = openai.OpenAI(base_url=f"{budget_svc.url}/v1", api_key="unused", max_retries=2)
    with pytest.raises(openai.RateLimitError) as refused:
        sdk.chat.completions.create(
            model="standard", messages=[{"role": "user", "content": "one more"}], max_tokens=10
        )
    assert refused.value.code == "insufficient_quota"


def test_two_servers_share_one_redis(
    server: FakeOpenAI, tmp_path: Path, redis_server: Any, redis_ns: str
) -> None:
    cache = {"backend": "redis", "url": redis_server.url, "namespace": redis_ns}
    first = start(tmp_path / "a", server, cache=cache)
    second = start(tmp_path / "b", server, cache=cache)
    try:
        prompt = f"shared across machines {uuid.uuid4().hex}"
        one = httpx.post(f"{first.url}/generate", json={"prompt": prompt}, timeout=30).json()
        two = httpx.post(f"{second.url}/generate", json={"prompt": prompt}, timeout=30).json()
        assert (one["cached"], two["cached"]) == (False, True)
        assert two["content"] == prompt and len(server.requests) == 1
        health = httpx.get(f"{second.url}/health", timeout=30).json()
        assert health["status"] == "healthy", health
    finally:
        assert first.stop() == 0 and second.stop() == 0


def test_redis_down_degrades_health_but_answers(server: FakeOpenAI, tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    svc = start(tmp_path, server, cache={"backend": "redis", "url": dead, "timeout_seconds": 0.3})
    try:
        prompt = f"no cache today {uuid.uuid4().hex}"
        for _ in range(2):
            resp = httpx.post(f"{svc.url}/generate", json={"prompt": prompt}, timeout=30)
            assert resp.status_code == 200 and resp.json()["cached"] is False
        health = httpx.get(f"{svc.url}/health", timeout=30)
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "degraded" and body["dependencies"]["cache"]["status"] == "down"
        assert httpx.get(f"{svc.url}/health/ready", timeout=30).status_code == 200
    finally:
        assert svc.stop() == 0, svc.log()
