"""ResponseCache counters and `stats()`: hits, misses, sizes, on every backend and across
processes."""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import pytest

from aicli.cache import ResponseCache
from aicli.types import Usage
from tests.cache.helpers import disk_cache, entry
from tests.test_cache_cli import STATS_FIELDS


async def test_stats_fields_and_counters(cache: ResponseCache) -> None:
    s = await cache.stats()
    assert list(s) == STATS_FIELDS
    assert s["backend"] == cache.backend_name and s["location"] == cache.location
    assert s["directory"] == (None if cache.directory is None else str(cache.directory))
    assert (s["entries"], s["hits"], s["misses"], s["hit_rate"]) == (0, 0, 0, 0.0)
    assert (s["tokens_saved"], s["cost_saved_usd"]) == (0, 0.0)
    assert (s["oldest"], s["newest"]) == (None, None)

    await cache.set("a", entry("a", created=time.time() - 5))
    await cache.set("b", entry("b"))
    e = entry(usage=Usage(100, 50, 150), cost_usd=0.0000015)
    for _ in range(3):
        await cache.record_hit(e)
    await cache.record_miss()
    s = await cache.stats()
    assert (s["entries"], s["hits"], s["misses"], s["hit_rate"]) == (2, 3, 1, 0.75)
    assert s["tokens_saved"] == 450
    assert s["cost_saved_usd"] == pytest.approx(0.0000045, abs=1e-12)
    assert 0 < s["oldest"] <= s["newest"] <= time.time()  # epoch seconds: the CLI dates them
    assert s["size_bytes"] > 0
    if cache.directory is not None:
        on_disk = sum(p.stat().st_size for p in cache.directory.rglob("*") if p.is_file())
        assert s["size_bytes"] == on_disk
    else:  # Redis: the entries' own creation times
        assert s["oldest"] < s["newest"]


async def test_concurrent_hits_are_counted_exactly_in_fewer_writes(cache: ResponseCache) -> None:
    import asyncio

    writes = 0
    real = cache.backend.incr

    async def counted(deltas: Any, **kwargs: Any) -> list[int]:
        nonlocal writes
        writes += 1
        return await real(deltas, **kwargs)

    cache.backend.incr = counted  # type: ignore[method-assign]
    e = entry(usage=Usage(10, 5, 15), cost_usd=0.000001)
    await asyncio.gather(*(cache.record_hit(e) for _ in range(50)), cache.record_miss())
    s = await cache.stats()  # reads back every pending delta
    assert (s["hits"], s["misses"], s["tokens_saved"]) == (50, 1, 750)
    assert s["cost_saved_usd"] == pytest.approx(0.00005, abs=1e-12)
    assert writes < 51  # batched while a write was in flight


async def test_shared_counter_returns_the_new_value(cache: ResponseCache) -> None:
    assert await cache.incr_counter("spent-2026-01-01", 5, ttl_s=60) == 5
    assert await cache.incr_counter("spent-2026-01-01", 7, ttl_s=60) == 12
    assert await cache.incr_counter("other", 1) == 1
    assert await cache.incr_counter("short", 3, ttl_s=0.2) == 3
    time.sleep(0.3)
    assert await cache.incr_counter("short", 1, ttl_s=0.2) == 1  # expired: starts again


async def test_clear_empties_entries_and_resets_counters(cache: ResponseCache) -> None:
    for i in range(3):
        await cache.set(f"k{i}", entry(f"v{i}"))
    await cache.set("big", entry("z" * 50_000))
    await cache.record_hit(entry())
    await cache.record_miss()
    assert await cache.clear() == 4
    s = await cache.stats()
    assert (s["entries"], s["hits"], s["misses"], s["tokens_saved"]) == (0, 0, 0, 0)
    assert await cache.get("k0") is None
    if cache.directory is not None:
        assert not list((cache.directory / "entries").rglob("*.val"))


def _hammer(location: str, namespace: str, worker: int, rounds: int) -> None:
    import asyncio

    from aicli.cache.redis import RedisBackend

    async def go() -> None:
        if location.startswith("redis"):
            c = ResponseCache(RedisBackend(location), namespace=namespace, stale_for=60)
        else:
            c = disk_cache(location)
        hit = entry(usage=Usage(2, 1, 3), cost_usd=0.000001)
        try:
            for i in range(rounds):
                await c.record_hit(hit)
                await c.record_miss()
                if i % 5 == 0:
                    await c.set(f"w{worker}-{i}", entry(f"answer {worker} {i}"))
                    assert await c.get(f"w{worker}-{i}") is not None
        finally:
            await c.aclose()

    asyncio.run(go())


async def test_counters_add_up_across_concurrent_processes(shared_cache: ResponseCache) -> None:
    cache = shared_cache
    workers, rounds = 8, 50
    ctx = multiprocessing.get_context("spawn")
    where = str(cache.directory) if cache.directory is not None else cache.location
    procs = [
        ctx.Process(target=_hammer, args=(where, cache.namespace, w, rounds))
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * workers
    s = await cache.stats()
    total = workers * rounds
    assert (s["hits"], s["misses"], s["hit_rate"]) == (total, total, 0.5)
    assert s["tokens_saved"] == 3 * total
    assert s["cost_saved_usd"] == pytest.approx(0.000001 * total, abs=1e-12)
    assert s["entries"] == workers * rounds // 5
