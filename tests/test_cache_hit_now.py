"""A CLI cache hit is read without an event loop (Engine.run_sync); it must answer exactly as the
event-loop path (Engine.run) does: the same result, counters, redaction restore and fallbacks."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest

from aicli.config import load_config
from aicli.engine import Engine
from aicli.request_builder import PromptInput, build_request
from aicli.types import Result
from tests.helpers import child_env


def request(cfg: Any, prompt: str, *, tier: str | None = None, mode: str = "use") -> Any:
    req = build_request(cfg, PromptInput(prompt=prompt, tier=tier))
    req.cache_mode = mode
    return req


def through_the_loop(cfg: Any, req: Any) -> Result:
    async def go() -> Result:
        engine = Engine(cfg)
        try:
            return await engine.run(req)
        finally:
            await engine.aclose()

    return asyncio.run(go())


def without_a_loop(cfg: Any, req: Any, monkeypatch: pytest.MonkeyPatch) -> Result:
    def no_loop(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a cache hit started an event loop")

    with monkeypatch.context() as patched:
        patched.setattr(asyncio, "run", no_loop)
        return Engine(cfg).run_sync(req)


def same(a: Result, b: Result) -> None:
    left, right = a.to_json(), b.to_json()
    assert left.pop("request_id") != right.pop("request_id")
    assert left == right


def stats(cli: Any) -> dict[str, Any]:
    done = cli("cache", "stats", "--json")
    assert done.exit_code == 0, done
    return dict(json.loads(done.stdout))


@pytest.mark.parametrize(
    ("asked", "again", "tier", "mode"),
    [
        ("plain", "plain", None, "use"),
        # the key is on the redacted prompt: the hit restores this request's own address
        ("mail bob@example.com today", "mail carol@example.net today", None, "use"),
        ("plain", "plain", "premium", "only"),  # premium misses, its fallback standard hits
    ],
)
def test_a_hit_without_a_loop_is_the_hit_through_the_loop(
    cli: Any,
    server: Any,
    make_config: Any,
    monkeypatch: pytest.MonkeyPatch,
    asked: str,
    again: str,
    tier: str | None,
    mode: str,
) -> None:
    make_config()  # the test server answers with the prompt it got
    cfg = load_config()
    filled = through_the_loop(cfg, request(cfg, asked))
    assert filled.cached is False and filled.content == asked and len(server.requests) == 1
    before = stats(cli)
    looped = through_the_loop(cfg, request(cfg, again, tier=tier, mode=mode))
    direct = without_a_loop(cfg, request(cfg, again, tier=tier, mode=mode), monkeypatch)
    assert looped.cached is True and len(server.requests) == 1
    same(looped, direct)
    assert direct.content == again and direct.tier == "standard"
    assert direct.fallback_used is (tier == "premium")
    after = stats(cli)
    assert (after["hits"] - before["hits"], after["misses"] - before["misses"]) == (2, 0)
    assert after["tokens_saved"] - before["tokens_saved"] == 2 * filled.usage.total_tokens


def test_a_stale_or_missing_entry_goes_through_the_loop(
    cli: Any, server: Any, make_config: Any
) -> None:
    make_config(defaults={"cache_ttl": 0})  # answers are stored expired: only a stale fallback
    cfg = load_config()
    assert Engine(cfg).run_sync(request(cfg, "q")).cached is False  # a miss: called
    assert Engine(cfg).run_sync(request(cfg, "q")).cached is False  # expired: called again
    assert len(server.requests) == 2
    s = stats(cli)
    assert (s["hits"], s["misses"]) == (0, 2)


def test_a_cli_cache_hit_imports_no_event_loop_and_nothing_forbidden(tmp_path: Any) -> None:
    env = child_env({"XDG_CACHE_HOME": str(tmp_path), "AICLI_CACHE_DIR": None})
    args = [sys.executable, "-X", "importtime", "-m", "aicli", "generate", "-t", "echo", "x"]
    runs = []
    for _ in range(2):  # fill, then hit
        done = subprocess.run(
            [*args, "--json"], capture_output=True, text=True, env=env, cwd=tmp_path,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        runs.append(done)
    assert json.loads(runs[1].stdout)["cached"] is True
    modules = {line.rsplit("|", 1)[-1].strip() for line in runs[1].stderr.splitlines()}
    forbidden = {"asyncio", "openai", "httpx", "jsonschema", "fastapi", "redis", "pydantic"}
    assert not modules & forbidden
    assert "yaml" not in modules  # no config file: the built-in settings are read as JSON
    assert "diskcache" in modules  # the hit was read from the disk cache
