"""Issue 19: /health says what a real `aicli serve` worker does about a Redis cache that went
away (bypassed, not just "Redis answers a ping"), and the worker goes back to Redis by itself
soon after it returns (a probe that backs off from 1 s, not a fixed 30 s)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fake_openai import FakeOpenAI
from tests.helpers import TEST_KEY, TEST_KEY_ENV
from tests.redis_server import RedisServer
from tests.serve_process import ServeProcess, base_env
from tests.test_serve import write_config

TOKEN = "outage-token-0123456789abcdef"


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()  # its own: this test kills it
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def svc(server: FakeOpenAI, redis: RedisServer, tmp_path: Path) -> Iterator[ServeProcess]:
    config = write_config(
        tmp_path / "cfg", server.base_url, cache={"backend": "redis", "namespace": "outage"}
    )
    env = base_env(tmp_path / "home")
    env[TEST_KEY_ENV] = TEST_KEY
    env["AICLI_SERVE_TOKENS"] = TOKEN
    env["AICLI_REDIS_URL"] = redis.url
    proc = ServeProcess(config, env, token=TOKEN, log_path=tmp_path / "serve.log").start()
    yield proc
    proc.stop()


def ask(http: httpx.Client) -> httpx.Response:
    prompt = f"a question {uuid.uuid4().hex[:8]}"
    body = {"model": "standard", "messages": [{"role": "user", "content": prompt}]}
    resp = http.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text  # with or without the cache: answered
    return resp


def entries(redis: RedisServer) -> int:
    client = redis.client()
    try:
        return len(client.keys("outage:v1:entry:*"))
    finally:
        client.close()


def cache_health(http: httpx.Client) -> tuple[str, dict[str, Any]]:
    body = http.get("/health").json()
    return body["status"], body["dependencies"]["cache"]


def test_health_tells_a_bypassed_cache_and_the_worker_goes_back(
    svc: ServeProcess, redis: RedisServer
) -> None:
    with svc.client() as http:
        ask(http)
        assert entries(redis) == 1
        status, cache = cache_health(http)
        assert status == "healthy" and cache["in_use"] is True

        redis.stop()  # SIGKILL: the next request finds it gone and carries on without it
        ask(http)
        status, cache = cache_health(http)
        assert status == "degraded"
        assert cache["in_use"] is False and cache["status"] == "down"
        worker = next(c for c in cache["checks"] if c["name"] == "cache.worker")
        assert "bypassing" in worker["detail"]

        redis.restart()  # back on the same port (empty)
        # /health turns back only when the worker uses Redis again, which happens by itself.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, cache = cache_health(http)
            if cache["in_use"]:
                break
            time.sleep(0.2)
        assert cache["in_use"] is True and status == "healthy", cache
        ask(http)
        assert entries(redis) == 1  # the answer went to Redis: the worker really is back
    log = svc.log()
    assert '"event": "cache.available"' in log or '"event":"cache.available"' in log, log


def test_the_worker_comes_back_without_anyone_asking_health(
    svc: ServeProcess, redis: RedisServer
) -> None:
    with svc.client() as http:
        redis.stop()
        ask(http)  # finds Redis gone
        redis.restart()
        deadline = time.monotonic() + 15  # the probe tries after 1 s (it used to be 30 s)
        while time.monotonic() < deadline and entries(redis) == 0:
            ask(http)
            time.sleep(0.2)
        assert entries(redis) >= 1
