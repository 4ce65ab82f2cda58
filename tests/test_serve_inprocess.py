"""The service's app built in the test process (httpx's ASGITransport), for the error paths:
create_app changes nothing in the process, a 500 keeps its id, auth comes before the body,
lone surrogates, HEAD, what error messages name, one template store per app."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st

from aicli.config import load_config
from aicli.engine import Engine
from aicli.request_builder import TemplateSource
from aicli.serve.app import create_app
from aicli.serve.middleware import unicode_problem
from aicli.serve.state import ServeState
from tests.fake_openai import FakeOpenAI
from tests.helpers import TEST_KEY, TEST_KEY_ENV
from tests.test_serve import TEMPLATE, write_config

TOKEN = "in-process-token-77"


class Exploding(Engine):
    """A real engine that fails unexpectedly (a bug's stand-in) for one prompt."""

    async def run(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if "explode" in str(request.messages):
            raise RuntimeError(f"quoting the prompt: {request.messages}")
        return await super().run(request, *args, **kwargs)


@pytest.fixture
def cfg_path(server: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(TEST_KEY_ENV, TEST_KEY)
    monkeypatch.setenv("AICLI_SERVE_TOKENS", TOKEN)
    return write_config(tmp_path / "cfg", server.base_url)


@pytest.fixture
async def app(cfg_path: Path) -> AsyncIterator[FastAPI]:
    cfg = load_config(cfg_path)
    built = create_app(cfg, engine=Exploding(cfg))
    async with built.router.lifespan_context(built):  # what uvicorn runs around the app
        yield built


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        yield c


def test_create_app_changes_nothing_in_the_process(cfg_path: Path) -> None:
    interval = sys.getswitchinterval()
    loggers = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).level)
        for name in ("", "aicli", "aicli.serve", "uvicorn", "uvicorn.error")
    }
    create_app(load_config(cfg_path))
    assert sys.getswitchinterval() == interval
    for name, (handlers, level) in loggers.items():
        assert logging.getLogger(name).handlers == handlers, name
        assert logging.getLogger(name).level == level, name


async def test_an_unexpected_error_is_a_500_with_its_id_and_one_line(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aicli.serve")
    resp = await client.post(
        "/generate", json={"prompt": "explode PRIVATE"}, headers={"x-request-id": "req-1"}
    )
    assert resp.status_code == 500
    assert resp.headers["x-request-id"] == "req-1"
    assert resp.json()["error"]["code"] == "internal_error"
    events = [(r.name, getattr(r, "event", None)) for r in caplog.records]
    assert events == [("aicli.serve", "serve.error"), ("aicli.serve.access", "request")]
    error = caplog.records[0]
    assert error.error == "RuntimeError"  # type: ignore[attr-defined]
    assert error.exc_info is None
    assert "PRIVATE" not in caplog.text


async def test_a_stream_that_fails_unexpectedly_is_logged_with_its_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aicli.serve")
    body = {"model": "standard", "messages": [{"role": "user", "content": "explode"}]}
    resp = await client.post("/v1/chat/completions", json={**body, "stream": True})
    assert resp.status_code == 500 and resp.headers["x-request-id"]
    assert "explode" not in caplog.text


async def test_auth_is_decided_before_the_body(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/generate", content=b"\xff not even json", headers={"Authorization": "Bearer nope"}
    )
    assert resp.status_code == 401  # not 400: the body was never looked at
    assert resp.headers["connection"] == "close" and resp.headers["x-request-id"]
    assert (await client.get("/health/live", headers={"Authorization": ""})).status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/generate", b'{"prompt": "\\ud800"}'),
        ("/generate", b'{"template": "greet", "vars": {"name": "\\udbff!"}}'),
        (
            "/v1/chat/completions",
            b'{"model": "standard", "messages": [{"role": "user", "content": "\\ude00"}]}',
        ),
        ("/v1/chat/completions", b'{"model": "standard", "messages": "\xc3\x28"}'),
    ],
)
async def test_bad_unicode_is_400(client: httpx.AsyncClient, path: str, body: bytes) -> None:
    resp = await client.post(path, content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"
    assert resp.headers["x-request-id"]


async def test_head_as_get(client: httpx.AsyncClient) -> None:
    for path in ("/health/live", "/v1/models", "/health/ready"):
        got, head = await client.get(path), await client.head(path)
        assert head.status_code == got.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == got.headers["content-length"]
    assert (await client.get("/health/live")).json() == {"status": "ok"}


async def test_messages_name_only_what_was_sent(client: httpx.AsyncClient) -> None:
    model = await client.post(
        "/v1/chat/completions", json={"model": "gpt-x", "messages": [{"role": "user"}]}
    )
    tier = await client.post("/generate", json={"prompt": "p", "tier": "gold"})
    template = await client.post("/generate", json={"template": "nope@1.0.0"})
    for resp, sent in ((model, "gpt-x"), (tier, "gold"), (template, "nope@1.0.0")):
        assert resp.status_code in (400, 404) and sent in resp.text
        for secret in ("economy", "premium", "standard", "greet", "prompts"):
            assert secret not in resp.text, resp.text


async def test_one_template_store_per_app_reloaded_when_files_change(
    app: FastAPI, client: httpx.AsyncClient, cfg_path: Path
) -> None:
    state: ServeState = app.state.aicli
    assert state.templates is not None
    state.templates.recheck_s = 0.0
    body = {"template": "greet", "vars": {"name": "Ada"}, "prompt": "tea"}
    first = await client.post("/generate", json=body)
    assert first.status_code == 200, first.text
    store = state.templates.current()
    await client.post("/generate", json=body)
    assert state.templates.current() is store  # nothing changed: the same store
    newer = TEMPLATE.replace("1.0.0", "1.1.0").replace("Say hello", "Say goodbye")
    (cfg_path.parent / "prompts" / "greet" / "1.1.0.yaml").write_text(newer, encoding="utf-8")
    assert state.templates.current() is not store
    assert state.templates.current().get("greet").version == "1.1.0"


def test_template_source_rechecks_at_most_once_per_interval(tmp_path: Path) -> None:
    (tmp_path / "greet").mkdir()
    (tmp_path / "greet" / "1.0.0.yaml").write_text(TEMPLATE, encoding="utf-8")
    source = TemplateSource(tmp_path, recheck_s=3600)
    store = source.current()
    (tmp_path / "greet" / "1.0.0.yaml").write_text(TEMPLATE + "\n", encoding="utf-8")
    assert source.current() is store  # within the interval: not even looked at
    source._checked = time.monotonic() - 7200
    assert source.current() is not store


_CODE_POINTS = st.one_of(
    st.integers(0xD800, 0xDFFF),  # surrogates, alone or (by chance) paired
    st.sampled_from([0x5C, 0x22, 0x75, 0x64, 0x38]),  # \ " u d 8: near-misses of an escape
    st.integers(0x20, 0x10FFFF),
)


@given(st.lists(_CODE_POINTS, max_size=12), st.booleans())
def test_the_unicode_check_flags_exactly_the_bodies_with_a_lone_surrogate(
    points: list[int], ascii_only: bool
) -> None:
    text = "".join(map(chr, points))
    try:
        raw = json.dumps({"prompt": text}, ensure_ascii=ascii_only).encode("utf-8")
    except UnicodeEncodeError:  # a raw surrogate in UTF-8 is invalid UTF-8: that check's case
        raw = json.dumps({"prompt": text}, ensure_ascii=False).encode("utf-8", "surrogatepass")
    parsed = json.loads(raw.decode("utf-8", "surrogatepass"))["prompt"]
    lone = any(0xD800 <= ord(c) <= 0xDFFF for c in parsed)
    problem = unicode_problem([{"type": "http.request", "body": raw, "more_body": False}])
    assert (problem is not None) == lone
    if problem is not None:
        assert problem.status == 400 and problem.etype == "invalid_request_error"
