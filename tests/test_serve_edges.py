"""`aicli serve` at its edges: deep health probes reused, not repeated; a client that leaves in
the middle of a stream; calls that cost more than reserved, or an unknown amount."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aicli.config import load_config
from aicli.serve.checks import DEEP_TTL_S, HealthCache
from tests.fake_openai import FakeOpenAI
from tests.helpers import TEST_KEY, TEST_KEY_ENV
from tests.serve_process import ServeProcess, base_env
from tests.test_serve import write_config

# $1 per completion token, nothing for the prompt: max_tokens 10 reserves $10.
PRICEY = {"input_per_1m": 0.0, "output_per_1m": 1_000_000.0}


def start(tmp: Path, server: FakeOpenAI, **overrides: Any) -> ServeProcess:
    config = write_config(tmp / "cfg", server.base_url, **overrides)
    env = base_env(tmp / "home")
    env[TEST_KEY_ENV] = TEST_KEY
    return ServeProcess(config, env, log_path=tmp / "serve.log").start()


@pytest.fixture
def svc(server: FakeOpenAI, tmp_path: Path) -> Iterator[ServeProcess]:
    proc = start(tmp_path, server)
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture
def budget_svc(server: FakeOpenAI, tmp_path: Path) -> Iterator[ServeProcess]:
    proc = start(
        tmp_path,
        server,
        serve={"daily_budget_usd": 15.0},
        tiers={"standard": {"model": "standard-model", "provider": "fake", "price": PRICEY}},
    )
    yield proc
    assert proc.stop() == 0, proc.log()


def ask(svc: ServeProcess, **extra: Any) -> httpx.Response:
    body = {"prompt": f"spend {uuid.uuid4().hex}", "max_tokens": 10, **extra}
    return httpx.post(f"{svc.url}/generate", json=body, timeout=30)


def test_deep_health_probes_once_and_shallow_never(svc: ServeProcess, server: FakeOpenAI) -> None:
    for _ in range(2):
        assert httpx.get(f"{svc.url}/health", timeout=30).status_code == 200
    assert server.model_lists == 0  # a shallow check never calls a provider

    first = httpx.get(f"{svc.url}/health", params={"deep": 1}, timeout=30)
    assert first.status_code == 200, first.text
    assert first.json()["dependencies"]["providers"]["fake"]["status"] == "ok"
    probes = server.model_lists
    assert probes >= 1  # the fake provider's /models was asked

    again = httpx.get(f"{svc.url}/health", params={"deep": 1}, timeout=30)
    assert again.json()["dependencies"] == first.json()["dependencies"]
    assert httpx.get(f"{svc.url}/health", timeout=30).status_code == 200
    assert server.model_lists == probes  # reused: within 30 s nothing probes again


async def test_a_deep_result_is_reused_for_30_s_then_probed_again(
    make_config: Any, server: FakeOpenAI
) -> None:
    cfg = load_config(make_config())
    now = [1000.0]
    health = HealthCache(clock=lambda: now[0])
    await health.checks(cfg, deep=True)
    probes = server.model_lists
    assert probes >= 1
    now[0] += DEEP_TTL_S - 0.5
    await health.checks(cfg, deep=True)
    assert server.model_lists == probes
    now[0] += 1.0  # 30.5 s after the probe: stale, so asked again
    await health.checks(cfg, deep=True)
    assert server.model_lists == 2 * probes


def test_a_client_leaving_mid_stream_is_logged_and_harmless(
    svc: ServeProcess, server: FakeOpenAI
) -> None:
    server.set_answer("*", "word " * 200)  # 250 chunks of 4 characters, 20 ms apart: 5 s
    server.chunk_delay = 0.02
    rid = "leaver-" + uuid.uuid4().hex
    body = {
        "model": "standard",
        "messages": [{"role": "user", "content": f"a long story {uuid.uuid4().hex}"}],
        "stream": True,
    }
    started = time.monotonic()
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        with client.stream(
            "POST", "/v1/chat/completions", json=body, headers={"x-request-id": rid}
        ) as resp:
            assert resp.status_code == 200
            lines = resp.iter_lines()
            received = [next(lines) for _ in range(6)]  # a few chunks, then hang up
        assert any("word" in line for line in received)

    entry = svc.wait_for_log(rid, timeout=10)
    assert time.monotonic() - started < 4  # the request ended when the client left
    assert entry["client_disconnected"] is True and entry["status"] == 200
    assert (entry["tier"], entry["model"]) == ("standard", "standard-model")
    deadline = time.monotonic() + 5
    while server.in_flight and time.monotonic() < deadline:  # the provider call was stopped
        time.sleep(0.05)
    assert server.in_flight == 0

    server.chunk_delay = 0.0
    after = httpx.post(f"{svc.url}/generate", json={"prompt": "still fine?"}, timeout=30)
    assert after.status_code == 200 and after.json()["content"] == "word " * 200
    log = svc.log()
    assert "Traceback" not in log and "Exception" not in log, log
    for line in log.splitlines():  # every line still one JSON object
        assert isinstance(json.loads(line), dict), line


def test_a_stream_its_client_left_keeps_its_reservation(
    budget_svc: ServeProcess, server: FakeOpenAI
) -> None:
    server.set_answer("*", "word " * 200)
    server.chunk_delay = 0.02
    body = {
        "model": "standard",
        "messages": [{"role": "user", "content": f"a long story {uuid.uuid4().hex}"}],
        "stream": True,
        "max_tokens": 10,
    }
    with httpx.stream("POST", f"{budget_svc.url}/v1/chat/completions", json=body, timeout=30) as r:
        lines = r.iter_lines()
        assert [next(lines) for _ in range(4)]  # then hang up: the provider may bill its tokens
    deadline = time.monotonic() + 5
    while server.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)
    # No usage came back, so the $10 reserved stays counted: another $10 would pass $15.
    refused = ask(budget_svc)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["type"] == "insufficient_quota"


def test_a_call_over_its_bound_is_answered_logged_and_counted(
    budget_svc: ServeProcess, server: FakeOpenAI
) -> None:
    server.usage_override = {"prompt_tokens": 1, "completion_tokens": 12, "total_tokens": 13}
    rid = "overrun-" + uuid.uuid4().hex
    first = httpx.post(
        f"{budget_svc.url}/generate",
        json={"prompt": "a pricey one", "max_tokens": 10},
        headers={"x-request-id": rid},
        timeout=30,
    )
    assert first.status_code == 200, first.text  # paid for: the answer is sent
    assert first.json()["cost_usd"] == pytest.approx(12.0)  # over the $10 reserved
    budget_svc.wait_for_log(rid)
    warnings = [
        json.loads(line) for line in budget_svc.log().splitlines() if '"quota.overrun"' in line
    ]
    assert [w["request_id"] for w in warnings] == [rid]
    assert warnings[0]["reserved_usd"] == pytest.approx(10.0, rel=0.01)
    # $12 is counted, not $10: a $10 reservation no longer fits under $15
    server.usage_override = None
    refused = ask(budget_svc)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "insufficient_quota"
    assert ask(budget_svc, max_tokens=3).status_code == 200  # $3 still fits


def test_a_missing_provider_key_is_503_for_the_caller_not_400(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    """The caller's request is fine; the service's operator forgot a key: a server error the
    caller may retry elsewhere, and the key's variable is named, never a value."""
    import openai

    config = write_config(tmp_path / "cfg", server.base_url)
    env = base_env(tmp_path / "home")
    env.pop(TEST_KEY_ENV, None)
    proc = ServeProcess(config, env, log_path=tmp_path / "serve.log").start()
    try:
        resp = httpx.post(f"{proc.url}/generate", json={"prompt": "hi"}, timeout=30)
        assert resp.status_code == 503, resp.text
        error = resp.json()["error"]
        assert error["type"] == "server_error" and error["code"] == "provider_not_configured"
        assert f"${TEST_KEY_ENV} is not set" in error["message"]
        client = openai.OpenAI(base_url=f"{proc.url}/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(
                model="standard", messages=[{"role": "user", "content": "hi"}]
            )
        assert server.requests == []
    finally:
        assert proc.stop() == 0, proc.log()
