"""Issue 19: a tier's cooldown in a real `aicli serve` process. Only provider faults trip it
(never an answer a request made unusable), and a cooling tier lets a probe through (half-open),
so a provider's recovery is seen without waiting out the cooldown."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aicli.providers.base import ProviderFailure
from aicli.resilience import Cooldowns
from tests.fake_openai import FakeOpenAI
from tests.helpers import TEST_KEY, TEST_KEY_ENV
from tests.serve_process import ServeProcess, base_env
from tests.test_serve import write_config

TOKEN = "breaker-token-0123456789abcdef"


@pytest.fixture(scope="module")
def svc(
    fake_server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    root = tmp_path_factory.mktemp("breaker")
    no_cache = {"provider": "fake", "cache_ttl": 0}
    config = write_config(
        root / "cfg",
        fake_server.base_url,
        # A long cooldown: within a test only a probe can bring a tier back.
        cooldown={"failures": 3, "seconds": 600, "probe_seconds": 0.5},
        tiers={
            "solo": {"model": "solo-model", **no_cache},
            "blip": {"model": "blip-model", "fallback": "backup", **no_cache},
            "backup": {"model": "backup-model", **no_cache},
            "lone": {"model": "lone-model", **no_cache},
        },
    )
    env = base_env(root / "home")
    env[TEST_KEY_ENV] = TEST_KEY
    env["AICLI_SERVE_TOKENS"] = TOKEN
    proc = ServeProcess(config, env, token=TOKEN, log_path=root / "serve.log").start()
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture
def http(svc: ServeProcess, server: FakeOpenAI) -> Iterator[httpx.Client]:
    with svc.client() as client:
        yield client


def chat(tier: str, text: str | None = None, **extra: Any) -> dict[str, Any]:
    prompt = text or f"say something {uuid.uuid4().hex[:8]}"
    return {"model": tier, "messages": [{"role": "user", "content": prompt}], **extra}


def test_unusable_answers_never_switch_a_tier_off(http: httpx.Client, server: FakeOpenAI) -> None:
    # One caller makes answers unusable: empty content, a provider 400 for its request, and
    # answers that break its JSON Schema. Each is its own failure, and none says the provider
    # is down.
    server.script("solo-model", ["empty"] * 4 + ["400"] * 4)
    for _ in range(8):
        resp = http.post("/v1/chat/completions", json=chat("solo"))
        assert resp.status_code != 200, resp.text
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    for _ in range(4):
        resp = http.post("/v1/chat/completions", json=chat("solo", response_format=schema))
        assert resp.status_code == 503, resp.text  # the echoed prompt is not JSON
    # Another caller still reaches the tier: it was never switched off.
    resp = http.post("/v1/chat/completions", json=chat("solo", "a fine question"))
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-aicli-tier"] == "solo"
    assert len(server.requests_for("solo-model")) == 13


def _until_answered_by(
    http: httpx.Client, tier: str, wanted: str, deadline_s: float = 30
) -> list[httpx.Response]:
    """Requests to `tier`, one after another, until `wanted` answers one (or the deadline)."""
    seen = []
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        resp = http.post("/v1/chat/completions", json=chat(tier))
        seen.append(resp)
        if resp.status_code == 200 and resp.headers["x-aicli-tier"] == wanted:
            return seen
        time.sleep(0.05)
    raise AssertionError(f"tier {wanted!r} never answered again: {[r.status_code for r in seen]}")


def test_a_cooling_tier_is_probed_and_comes_back(http: httpx.Client, server: FakeOpenAI) -> None:
    server.script("blip-model", ["500"] * 3)  # a short blip: three 500s, then it is fine
    for _ in range(3):
        resp = http.post("/v1/chat/completions", json=chat("blip"))
        assert resp.status_code == 200 and resp.headers["x-aicli-tier"] == "backup"
    # Tripped (3 faults in a row, 600 s cooldown); only a probe can see that it recovered.
    seen = _until_answered_by(http, "blip", "blip")
    assert all(r.status_code == 200 for r in seen)
    # While it cooled, callers were answered by the fallback, and the tier got one probe.
    assert len(server.requests_for("blip-model")) == 4
    resp = http.post("/v1/chat/completions", json=chat("blip"))
    assert resp.headers["x-aicli-tier"] == "blip"  # closed again: every call goes to it


def test_a_chain_whose_every_tier_cools_still_gets_a_probe(
    http: httpx.Client, server: FakeOpenAI
) -> None:
    server.script("lone-model", ["500"] * 3)
    for _ in range(3):
        resp = http.post("/v1/chat/completions", json=chat("lone"))
        assert resp.status_code == 503, resp.text
    # Every tier of the chain is cooling: not an instant 503 until the cooldown ends.
    seen = _until_answered_by(http, "lone", "lone")
    assert all(r.status_code in (200, 503) for r in seen)
    assert len(server.requests_for("lone-model")) == 4  # three faults, then one probe


def test_a_failing_probe_keeps_the_tier_cooling(http: httpx.Client, server: FakeOpenAI) -> None:
    server.script("lone-model", ["503"] * 4)
    for _ in range(3):
        http.post("/v1/chat/completions", json=chat("lone"))
    seen = _until_answered_by(http, "lone", "lone")  # the first probe fails, a later one works
    assert len(server.requests_for("lone-model")) == 5
    assert sum(r.status_code == 503 for r in seen) >= 1


# ---- the breaker itself, on a fake clock --------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def failure(kind: Any, status: int | None = None) -> ProviderFailure:
    return ProviderFailure("x", kind=kind, fall_back=True, attempts=1, status=status)


@pytest.mark.parametrize(
    ("kind", "status", "counts"),
    [
        ("connection", None, True),
        ("timeout", None, True),
        ("malformed", None, True),
        ("status", 500, True),
        ("status", 503, True),
        ("status", 429, True),
        ("status", 408, True),
        ("status", 400, False),
        ("status", 404, False),
        ("status", 422, False),
        ("empty", None, False),
        ("schema", None, False),
    ],
)
def test_only_provider_faults_count(kind: Any, status: int | None, counts: bool) -> None:
    assert failure(kind, status).provider_unhealthy is counts
    cool = Cooldowns(threshold=2, seconds=60, probe_seconds=None, clock=Clock())
    for _ in range(5):
        cool.failed("t", failure(kind, status))
    assert cool.cooling("t") is counts


def test_an_unusable_answer_ends_the_streak() -> None:
    cool = Cooldowns(threshold=3, seconds=60, probe_seconds=None, clock=Clock())
    cool.failed("t", failure("status", 500))
    cool.failed("t", failure("status", 500))
    cool.failed("t", failure("empty"))  # the provider answered: it is up
    cool.failed("t", failure("status", 500))
    assert not cool.cooling("t")


def test_half_open_lets_one_call_per_probe_interval() -> None:
    clock = Clock()
    cool = Cooldowns(threshold=1, seconds=30, probe_seconds=2, clock=clock)
    cool.failed("t", failure("timeout"))
    assert not cool.admit("t")
    clock.now += 2
    assert cool.admit("t") and not cool.admit("t")  # one probe, the rest keep falling back
    cool.failed("t", failure("timeout"))  # the probe failed: still cooling, next probe later
    clock.now += 1
    assert not cool.admit("t")
    clock.now += 1
    assert cool.admit("t")
    cool.succeeded("t")
    assert cool.admit("t") and cool.admit("t") and not cool.cooling("t")


def test_the_cooldown_ends_by_itself_without_probes() -> None:
    clock = Clock()
    cool = Cooldowns(threshold=1, seconds=30, probe_seconds=None, clock=clock)
    cool.failed("t", failure("status", 502))
    clock.now += 29
    assert not cool.admit("t")
    clock.now += 1
    assert cool.admit("t")


def test_settings_reach_the_breaker(tmp_path: Path) -> None:
    import yaml

    from aicli.calling import TierCaller
    from aicli.config import load_config

    path = tmp_path / "aicli.yaml"
    path.write_text(
        yaml.safe_dump({"cooldown": {"failures": 5, "seconds": 9, "probe_seconds": None}})
    )
    caller = TierCaller(load_config(str(path)), None, 4)
    cool = caller.cooldowns
    assert (cool.threshold, cool.seconds, cool.probe_seconds) == (5, 9, None)


_FAILURES = [
    ("connection", None),
    ("timeout", None),
    ("malformed", None),
    ("empty", None),
    ("schema", None),
    *(("status", code) for code in (400, 401, 404, 408, 409, 422, 429, 500, 502, 503)),
]


def _events() -> Any:
    from hypothesis import strategies as st

    fail = st.tuples(st.just("fail"), st.sampled_from(_FAILURES))
    tick = st.tuples(st.just("tick"), st.floats(0, 40, allow_nan=False))
    return st.lists(st.one_of(fail, tick, st.just(("ok", None)), st.just(("admit", None))))


def test_breaker_properties() -> None:
    from hypothesis import given, settings

    @settings(max_examples=300, deadline=None)
    @given(_events())
    def check(events: list[tuple[str, Any]]) -> None:
        clock = Clock()
        cool = Cooldowns(threshold=3, seconds=30, probe_seconds=2, clock=clock)
        faults = 0
        for op, arg in events:
            if op == "fail":
                fault = failure(*arg)
                faults += fault.provider_unhealthy
                cool.failed("t", fault)
            elif op == "tick":
                clock.now += arg
            elif op == "ok":
                cool.succeeded("t")
            else:
                cool.admit("t")
        if faults < 3:  # fewer provider faults than the threshold never trip it, whatever else
            assert cool.admit("t")
        clock.now += 2
        assert cool.admit("t")  # a probe (or the closed breaker) always gets through in time
        clock.now += 30
        assert cool.admit("t") and cool.admit("t")  # and the cooldown always ends

    check()
