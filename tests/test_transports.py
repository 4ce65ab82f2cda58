"""The two HTTP clients under the SDK (providers/base.HttpTransport): the CLI's httpx and the
service's aiohttp send the same request and turn every fault the test server scripts into the
same outcome (answer, tier, attempts, error), so the service's faster client changes nothing a
caller sees. Real HTTP to the test server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient

from aicli.config import load_config
from aicli.engine import Engine
from aicli.errors import AicliError
from aicli.providers import deadline
from aicli.providers.base import HttpTransport
from aicli.providers.deadline import AioDeadlineClient, DeadlineClient, deadline_client
from aicli.types import Request
from tests.fake_openai import FakeOpenAI

TRANSPORTS: tuple[HttpTransport, ...] = ("httpx", "aiohttp")


def _run(cfg_path: Path, transport: HttpTransport, request: Request, stream: bool) -> Any:
    """(content, tier, attempts, streamed text) or ("error", exit code, message)."""

    async def go() -> Any:
        engine = Engine(load_config(cfg_path), cache=None, transport=transport)
        deltas: list[object] = []
        try:
            result = await engine.run(request, deltas.append if stream else None)
        except AicliError as exc:
            return ("error", exc.exit_code, str(exc))
        finally:
            await engine.aclose()
        return (
            result.content,
            result.tier,
            result.attempts,
            "".join(getattr(d, "text", "") for d in deltas),
        )

    return asyncio.run(go())


def _ask(text: str, **fields: Any) -> Request:
    return Request(messages=[{"role": "user", "content": text}], redact=False, **fields)


def test_the_service_transport_is_aiohttp_and_the_cli_keeps_httpx() -> None:
    assert deadline_client("httpx") is DeadlineClient
    assert deadline_client("aiohttp") is AioDeadlineClient


def test_both_transports_put_the_same_request_on_the_wire(
    server: FakeOpenAI, make_config: Any
) -> None:
    cfg = make_config()
    seen = []
    for transport in TRANSPORTS:
        request = _ask("same bytes", fallback=False, seed=3)
        assert _run(cfg, transport, request, False)[0] == "same bytes"
        entry = server.requests[-1]
        headers = {k.lower(): v for k, v in entry["headers"].items()}
        # the transport's own framing headers may differ; what the SDK sets may not
        kept = {k: v for k, v in headers.items() if k.startswith("x-stainless") or k in (
            "authorization", "content-type", "user-agent", "accept")}  # fmt: skip
        kept.pop("x-stainless-retry-count", None)
        seen.append((entry["body"], kept))
    assert seen[0] == seen[1]


@pytest.mark.parametrize(
    ("script", "stream"),
    [
        (["ok"], False),
        (["ok"], True),
        (["500", "500"], False),  # the SDK's retry, then the fallback tier
        (["429", "ok"], False),
        (["malformed"], False),
        (["malformed"], True),
        (["bad-shape"], False),
        (["empty"], False),
        (["stream-cut"], True),
        (["stream-junk"], True),
        (["drip:0.25", "drip:0.25"], False),  # cut off by the attempt's deadline, retried
        (["drip:0.25"], True),
        (["400"], False),
    ],
)
def test_every_fault_ends_the_same_on_both_transports(
    server: FakeOpenAI, make_config: Any, script: list[str], stream: bool
) -> None:
    cfg = make_config(tiers={"standard": {"timeout_seconds": 1, "max_retries": 1}})
    outcomes = []
    for transport in TRANSPORTS:
        server.reset()
        server.script("standard-model", script)
        request = _ask("a fault " * 8)
        outcomes.append(
            (_run(cfg, transport, request, stream), [r["model"] for r in server.requests])
        )
    assert outcomes[0] == outcomes[1], outcomes


def test_a_provider_that_is_not_listening_ends_the_same(make_config: Any) -> None:
    cfg = make_config(
        providers={"fake": {"base_url": "http://127.0.0.1:9/v1"}},
        tiers={"standard": {"max_retries": 0, "fallback": []}},
    )
    outcomes = [_run(cfg, t, _ask("anyone?"), False) for t in TRANSPORTS]
    assert outcomes[0] == outcomes[1] and outcomes[0][0] == "error", outcomes


async def test_the_service_calls_providers_through_aiohttp(
    server: FakeOpenAI, make_config: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aicli.serve.app import create_app

    app = create_app(load_config(make_config()))
    async with app.router.lifespan_context(app):
        client = AsyncClient(transport=ASGITransport(app=app), base_url="http://aicli")
        resp = await client.post("/generate", json={"prompt": "through aiohttp"})
        assert resp.status_code == 200 and resp.json()["content"] == "through aiohttp"
        provider: Any = app.state.aicli.engine.calls.provider("fake")
        assert isinstance(provider._get_client()._client, AioDeadlineClient)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_reply_past_the_size_cap_is_cut_off_and_the_tier_falls_back(
    server: FakeOpenAI, make_config: Any, monkeypatch: pytest.MonkeyPatch, transport: HttpTransport
) -> None:
    monkeypatch.setattr(deadline, "MAX_RESPONSE_BYTES", 64 * 1024)
    cfg = make_config(tiers={"standard": {"max_retries": 0}})
    server.set_answer("standard-model", "too long " * 20_000)  # ~180 KB of JSON
    content, tier, _, _ = _run(cfg, transport, _ask("short, please"), False)
    assert (content, tier) == ("short, please", "economy")  # the next tier's (echo) answer

    server.reset()
    server.set_answer("standard-model", "too long " * 20_000)
    alone = _ask("short, please", fallback=False)
    outcome = _run(cfg, transport, alone, False)
    assert outcome[0] == "error" and "the reply was larger than 0 MB" in outcome[2], outcome
    streamed = _run(cfg, transport, alone, True)
    assert streamed[0] == "error" and "larger than" in streamed[2], streamed
