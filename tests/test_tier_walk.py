"""The walk down a request's tiers (aicli/tier_walk.py) decides alone; the engine's two adapters
(`run_sync`'s read without an event loop, `run`'s on one) only do its I/O, so they answer alike.

First the walk itself, pure: for any cache mode, --replay or not, any pattern of fresh, expired
and missing entries and any pattern of tiers that fail, it makes the decisions of the old
`_run` loop (an oracle below, written from the rules, not from the code). Then the two real
adapters over a real disk cache and the OpenAI-compatible test server: same answer, same
counters, and the synchronous one answers whenever the walk needs no call."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aicli.cache import CacheEntry, ResponseCache
from aicli.config import Config, load_config
from aicli.engine import Engine
from aicli.errors import NoAnswerError
from aicli.planning import Plan, make_redactor, plan_request
from aicli.replay import ReplayStore
from aicli.request_builder import PromptInput, build_request
from aicli.tier_walk import Answer, Call, GiveUp, Read, TierWalk, looked_up_in
from aicli.types import CacheMode, Request, Result

State = Literal["fresh", "expired", "missing"]
MODES: tuple[CacheMode, ...] = ("use", "only", "refresh", "off")
TIERS = ("premium", "standard", "economy")  # the test config's chain from premium


def entry(state: State, tier: str = "t") -> CacheEntry | None:
    if state == "missing":
        return None
    now = time.time()
    return CacheEntry(
        content=f"cached by {tier}",
        model_used=f"{tier}-model",
        provider="fake",
        tier=tier,
        cost_usd=0.25,
        created=now - 7200,
        expires=now + 3600 if state == "fresh" else now - 60,
    )


def fake_plans(n: int) -> list[Plan]:
    return [
        Plan(name=f"t{i}", tier=None, model=f"m{i}", messages=[], key=f"k{i}", redacted=False,
             body={})  # type: ignore[arg-type]  # the walk reads only name and key
        for i in range(n)
    ]  # fmt: skip


# ---- the oracle: the rules, written out once more as plain code ------------------------------


@dataclass
class Expected:
    # (an Answer's kind, the answering tier's index as text) or ("give up", GiveUp.why)
    outcome: tuple[str, str]
    reads: list[int] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    counts: str | None = None


def oracle(mode: CacheMode, replay: bool, states: list[State], answers: list[str]) -> Expected:
    """answers[i]: what calling tier i gives: "ok", "fails" or "shared" (a request in flight
    paid for it). With --replay, states[i] is whether tier i was recorded ("missing": not)."""
    out = Expected(("give up", ""))
    if replay:  # the recording alone answers, in tier order; nothing is called or counted
        for i, state in enumerate(states):
            out.reads.append(i)
            if state != "missing":
                out.outcome = ("replayed", str(i))
                return out
        out.outcome = ("give up", "replay")
        return out
    reads = mode in ("use", "only")
    stale: int | None = None
    for i, state in enumerate(states):
        if reads:
            out.reads.append(i)
            if state == "fresh":
                out.outcome, out.counts = ("hit", str(i)), "hit"
                return out
            if state == "expired" and stale is None:
                stale = i
        if mode == "only":
            continue
        out.calls.append(i)
        if answers[i] == "ok":
            out.outcome, out.counts = ("called", str(i)), "miss" if reads else None
            return out
        if answers[i] == "shared":
            out.outcome, out.counts = ("shared", str(i)), "hit"
            return out
    if stale is not None:
        out.outcome, out.counts = ("stale", str(stale)), "hit"
        return out
    out.outcome = ("give up", "cache-only" if mode == "only" else "calls")
    out.counts = "miss" if reads else None
    return out


def walk_through(
    mode: CacheMode, replay: bool, states: list[State], answers: list[str]
) -> Expected:
    """Drive the real TierWalk with the entries and call outcomes given; record what it did."""
    request = Request(messages=[{"role": "user", "content": "q"}], cache_mode=mode)
    plans = fake_plans(len(states))
    walk = TierWalk(request, plans, replay=replay)
    out = Expected(("give up", ""))
    for _ in range(2 * len(plans) + 1):  # each tier is read at most once and called at most once
        step = walk.next()
        if isinstance(step, Read):
            assert step.plan is plans[step.index]
            out.reads.append(step.index)
            walk.found(entry(states[step.index]))
        elif isinstance(step, Call):
            assert step.plan is plans[step.index]
            out.calls.append(step.index)
            said = answers[step.index]
            walk.called(None if said == "fails" else entry("fresh"), shared=said == "shared")
        elif isinstance(step, Answer):
            assert step.plan is plans[step.index] and walk.next() == step  # it stays the answer
            out.outcome, out.counts = (step.kind, str(step.index)), step.counts
            assert step.cached is (step.kind in ("hit", "stale", "shared"))
            assert step.streams is (step.kind != "called")
            return out
        else:
            assert isinstance(step, GiveUp)
            out.outcome, out.counts = ("give up", step.why), step.counts
            return out
    raise AssertionError("the walk did not end")


states_st = st.lists(st.sampled_from(["fresh", "expired", "missing"]), min_size=1, max_size=4)


@settings(max_examples=400, deadline=None)
@given(
    mode=st.sampled_from(MODES),
    replay=st.booleans(),
    states=states_st,
    answers=st.lists(st.sampled_from(["ok", "fails", "shared"]), min_size=4, max_size=4),
)
def test_the_walk_decides_as_the_rules_say(
    mode: CacheMode, replay: bool, states: list[State], answers: list[str]
) -> None:
    assert walk_through(mode, replay, states, answers) == oracle(mode, replay, states, answers)


@pytest.mark.parametrize(
    ("mode", "replay", "source", "uses_cache", "flight"),
    [
        ("use", False, "cache", True, True),  # a plain run shares its call with identical ones
        ("only", False, "cache", True, None),  # nothing is called
        ("refresh", False, None, True, False),  # its own call, written to the cache
        ("off", False, None, False, False),
        ("use", True, "replay", False, None),  # a replay never touches the cache
        ("off", True, "replay", False, None),
    ],
)
def test_where_answers_are_looked_up_and_how_tiers_are_called(
    mode: CacheMode, replay: bool, source: str | None, uses_cache: bool, flight: bool | None
) -> None:
    request = Request(messages=[], cache_mode=mode)
    assert looked_up_in(request, replay=replay) == source
    walk = TierWalk(request, fake_plans(2), replay=replay)
    assert walk.uses_cache is uses_cache
    first = walk.next()
    assert isinstance(first, Read if source else Call)  # no lookup: the walk starts with a call
    if isinstance(first, Read):
        walk.found(None)
    step = walk.next()
    assert (step.flight if isinstance(step, Call) else None) is flight


@pytest.mark.parametrize(
    ("mode", "states", "answers", "outcome"),
    [
        ("use", ["expired", "fresh"], ["fails", "ok"], ("hit", "1")),  # read 1 after 0 failed
        ("use", ["expired", "missing"], ["ok", "ok"], ("called", "0")),  # a call beats stale
        ("use", ["expired", "expired"], ["fails", "fails"], ("stale", "0")),  # the first expired
        ("only", ["missing", "expired", "fresh"], ["ok"] * 3, ("hit", "2")),  # fresh beats stale
        ("only", ["missing", "missing"], ["ok", "ok"], ("give up", "cache-only")),
        ("refresh", ["fresh", "fresh"], ["fails", "ok"], ("called", "1")),  # never read
    ],
)
def test_the_walk_in_cases(
    mode: CacheMode, states: list[State], answers: list[str], outcome: tuple[str, str]
) -> None:
    assert walk_through(mode, False, states, answers).outcome == outcome


def test_a_step_must_be_answered_by_its_own_kind() -> None:
    walk = TierWalk(Request(messages=[], cache_mode="use"), fake_plans(1), replay=False)
    with pytest.raises(AssertionError):
        walk.called(None)  # the step is a Read
    walk.found(None)
    with pytest.raises(AssertionError):
        walk.found(None)  # the step is now a Call


# ---- the two adapters, for real: a disk cache, the test server over HTTP ---------------------


class NeedsLoop(Exception):
    """run_sync tried to start an event loop: its synchronous read did not answer."""


def plans_for(cfg: Config, req: Request) -> list[Plan]:
    return plan_request(cfg, req, make_redactor(cfg, req))


def new_request(cfg: Config, mode: CacheMode) -> Request:
    req = build_request(cfg, PromptInput(prompt="what is the walk?", tier="premium"))
    req.cache_mode = mode
    return req


async def fill(cfg: Config, states: list[State], plans: list[Plan]) -> None:
    from aicli.cache import open_cache

    cache = open_cache(cfg)
    try:
        for plan, state in zip(plans, states, strict=True):
            found = entry(state, plan.name)
            if found is not None:
                await cache.set(plan.key, found)
    finally:
        await cache.aclose()


def record(path: Path, states: list[State], plans: list[Plan]) -> None:
    lines = [
        {"key": plan.key, "content": f"recorded by {plan.name}", "tier": plan.name,
         "model": plan.model, "provider": "fake", "cost_usd": 0.5}
        for plan, state in zip(plans, states, strict=True)
        if state != "missing"
    ]  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")


async def counters(cfg: Config) -> tuple[int, int]:
    from aicli.cache import open_cache

    cache: ResponseCache = open_cache(cfg)
    try:
        stats = await cache.stats()
    finally:
        await cache.aclose()
    return int(stats["hits"]), int(stats["misses"])


def sync_answer(engine: Engine, req: Request, monkeypatch: pytest.MonkeyPatch) -> Result | None:
    def no_loop(main: Any) -> Any:
        main.close()  # the coroutine run_sync made: never awaited, so closed here
        raise NeedsLoop

    with monkeypatch.context() as patched:
        patched.setattr(asyncio, "run", no_loop)
        try:
            return engine.run_sync(req)
        except NeedsLoop:
            return None


def async_answer(engine: Engine, req: Request) -> Result | NoAnswerError:
    async def go() -> Result:
        try:
            return await engine.run(req)
        finally:
            await engine.aclose()

    try:
        return asyncio.run(go())
    except NoAnswerError as exc:
        return exc


def comparable(result: Result) -> dict[str, Any]:
    data = result.to_json()
    data.pop("request_id")
    return data


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    mode=st.sampled_from(MODES),
    replay=st.booleans(),
    states=st.lists(st.sampled_from(["fresh", "expired", "missing"]), min_size=3, max_size=3),
    failing=st.lists(st.booleans(), min_size=3, max_size=3),
)
def test_both_adapters_choose_the_same_answer(
    server: Any,
    make_config: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: CacheMode,
    replay: bool,
    states: list[State],
    failing: list[bool],
) -> None:
    server.reset()
    for tier, fails in zip(TIERS, failing, strict=True):
        if fails:
            server.script(f"{tier}-model", ["503"] * 4)  # no retries: each call fails once
    make_config()
    monkeypatch.setenv("AICLI_CACHE_DIR", str(tmp_path / uuid.uuid4().hex))
    cfg = load_config()
    plans = plans_for(cfg, new_request(cfg, mode))
    assert [p.name for p in plans] == list(TIERS)
    store: ReplayStore | None = None
    if replay:
        record(tmp_path / "recording.jsonl", states, plans)
        store = ReplayStore(tmp_path / "recording.jsonl")
    else:
        asyncio.run(fill(cfg, states, plans))

    before = asyncio.run(counters(cfg))
    direct = sync_answer(Engine(cfg, replay=store), new_request(cfg, mode), monkeypatch)
    between = asyncio.run(counters(cfg))
    assert not server.requests  # the synchronous adapter never calls
    looped = async_answer(Engine(cfg, replay=store), new_request(cfg, mode))
    after = asyncio.run(counters(cfg))
    called = bool(server.requests)

    expected = oracle(mode, replay, states, ["fails" if fails else "ok" for fails in failing])
    if isinstance(looped, NoAnswerError):
        assert expected.outcome[0] == "give up" and direct is None
        return
    kind, index = expected.outcome
    assert (looped.tier, looped.stale) == (TIERS[int(index)], kind == "stale")
    assert looped.cached is (kind in ("hit", "stale"))
    assert called is bool(expected.calls)
    if direct is None:  # the walk needed the loop: only a call does
        assert called
        return
    assert not called  # what the sync adapter answered, the loop answered without a call
    assert comparable(direct) == comparable(looped)
    assert [b - a for a, b in zip(before, between, strict=True)] == [
        c - b for b, c in zip(between, after, strict=True)
    ]  # the same counters moved
