"""The openai provider: its chat request on the wire is byte for byte what the SDK's
`chat.completions.create` sends for the same parameters (aicli posts through the client without
the SDK's param walk), and the SDK is imported from a fresh thread's shallow stack."""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from typing import Any

import openai
import pytest

from aicli.config import load_config
from aicli.engine import Engine
from aicli.providers import import_shallow
from aicli.types import Request
from tests.fake_openai import FakeOpenAI
from tests.helpers import TEST_KEY

SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "string", "pattern": "^x"}, "n": {"type": ["integer", "null"]}},
    "required": ["a"],
}


def _last(server: FakeOpenAI) -> tuple[dict[str, Any], dict[str, str]]:
    entry = server.requests[-1]
    return entry["body"], {k.lower(): v for k, v in entry["headers"].items()}


async def _create(server: FakeOpenAI, body: dict[str, Any]) -> None:
    """Send `body` the documented way; the test config's tier has 2 s and no retries."""
    client = openai.AsyncOpenAI(
        base_url=server.base_url, api_key=TEST_KEY, timeout=2.0, max_retries=0
    )
    try:
        answer = await client.chat.completions.create(**body)
        if body.get("stream"):
            async for _ in answer:  # type: ignore[union-attr]
                pass
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("fields", "stream"),
    [
        ({}, False),
        ({"seed": 7, "temperature": 0.0, "max_tokens": 50}, False),
        ({"schema": SCHEMA}, False),
        ({"temperature": 1.5}, True),
    ],
)
def test_the_request_is_what_chat_completions_create_sends(
    server: FakeOpenAI, make_config: Any, fields: dict[str, Any], stream: bool
) -> None:
    server.set_answer("standard-model", '{"a": "xy", "n": null}')
    engine = Engine(load_config(make_config()), cache=None)
    messages = [
        {"role": "system", "content": "Answer in JSON."},
        {"role": "user", "content": 'Ünïcode, "quotes" and\nnew lines'},
    ]
    request = Request(messages=messages, fallback=False, redact=False, **fields)
    engine.run_sync(request, (lambda text: None) if stream else None)
    ours, our_headers = _last(server)

    asyncio.run(_create(server, ours))
    theirs, their_headers = _last(server)

    assert ours == theirs
    assert ours["stream"] is True if stream else "stream" not in ours
    assert ("response_format" in ours) is ("schema" in fields)
    assert our_headers == their_headers


def test_import_shallow_imports_in_another_thread_and_raises_in_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "aicli_probe_ok.py").write_text(
        "import threading\nTHREAD = threading.current_thread().name\n"
    )
    (tmp_path / "aicli_probe_bad.py").write_text("raise ValueError('broken module')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import_shallow("aicli_probe_ok")
    probe = sys.modules["aicli_probe_ok"]
    assert probe.THREAD == "aicli-import" != threading.current_thread().name
    import_shallow("aicli_probe_ok")  # already there: nothing to do
    with pytest.raises(ValueError, match="broken module"):
        import_shallow("aicli_probe_bad")
    assert "aicli_probe_bad" not in sys.modules
    for name in ("aicli_probe_ok", "aicli_probe_bad"):
        monkeypatch.delitem(sys.modules, name, raising=False)
