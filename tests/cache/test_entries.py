"""ResponseCache entries on every backend: round trip, expiry, stale answers, concurrent writers."""

from __future__ import annotations

import time

import pytest

from aicli.cache import CacheEntry, ResponseCache
from tests.cache.helpers import entry, key, same_backend


async def test_round_trip_and_miss(cache: ResponseCache) -> None:
    k = key()
    assert await cache.get(k) is None
    e = entry("réponse ✓ " * 3)
    await cache.set(k, e)
    assert await cache.get(k) == e
    other = same_backend(cache)  # another instance (as another process would) sees it
    try:
        assert await other.get(k) == e
    finally:
        await other.aclose()


async def test_large_entry_round_trips(cache: ResponseCache) -> None:
    e = entry("x" * 100_000)
    await cache.set("big", e)
    if cache.directory is not None:  # on disk it lands in a file of its own
        assert len(list((cache.directory / "entries").rglob("*.val"))) == 1
    assert await cache.get("big") == e


async def test_set_replaces_and_never_caches_empty_answers(cache: ResponseCache) -> None:
    await cache.set("k", entry("first"))
    await cache.set("k", entry("second"))
    got = await cache.get("k")
    assert got is not None and got.content == "second"
    await cache.set("empty", entry(""))
    assert await cache.get("empty") is None
    assert (await cache.stats())["entries"] == 1


def test_to_dict_from_dict_round_trip_and_validation() -> None:
    e = entry(ttl=None)
    data = e.to_dict()
    assert data["version"] == 1 and data["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
    }
    assert CacheEntry.from_dict(data) == e
    assert CacheEntry.from_dict({**data, "cost_usd": 0, "future_field": 1}).cost_usd == 0.0
    for bad in (
        [],
        {**data, "content": None},
        {**data, "usage": "15"},
        {**data, "usage": {**data["usage"], "total_tokens": "15"}},
        {**data, "cost_usd": True},
        {**data, "expires": "tomorrow"},
        {k: v for k, v in data.items() if k != "created"},
    ):
        with pytest.raises(ValueError):
            CacheEntry.from_dict(bad)


async def test_expired_entries_are_still_returned(cache: ResponseCache) -> None:
    await cache.set("old", entry("old", ttl=-1))
    await cache.set("forever", entry("forever", ttl=None))
    old = await cache.get("old")
    assert old is not None and old.expired()
    assert not old.expired(now=old.expires - 1)  # type: ignore[operator]
    forever = await cache.get("forever")
    assert forever is not None and not forever.expired(now=time.time() + 10**9)


async def test_prune_drops_only_expired(cache: ResponseCache) -> None:
    for i in range(5):
        await cache.set(f"old{i}", entry(f"old{i}", ttl=-10))
    await cache.set("big-old", entry("y" * 50_000, ttl=-10))  # its value file goes too
    await cache.set("fresh", entry("fresh", ttl=3600))
    await cache.set("forever", entry("forever", ttl=None))
    assert await cache.prune() == 6
    assert await cache.prune() == 0
    assert await cache.get("old0") is None and await cache.get("big-old") is None
    assert await cache.get("fresh") is not None and await cache.get("forever") is not None
    if cache.directory is not None:
        assert not list((cache.directory / "entries").rglob("*.val"))
    assert (await cache.stats())["entries"] == 2
