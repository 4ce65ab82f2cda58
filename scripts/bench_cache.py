"""Benchmark the answer cache: cold open, set, get (hit), record_hit, prune and stats timings.

Usage: python scripts/bench_cache.py [--entries N] [--dir PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aicli.cache import CacheEntry, ResponseCache, cache_key
from aicli.cache.disk import DiskBackend
from aicli.types import Usage


async def timed(label: str, fn: Callable[[], Awaitable[object]], repeat: int = 1) -> None:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        await fn()
        runs.append((time.perf_counter() - start) * 1000)
    print(f"{label:<38} median {statistics.median(runs):8.3f} ms  (n={repeat})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    if args.dir is not None:
        asyncio.run(bench(args.dir, args.entries))
        return
    with tempfile.TemporaryDirectory(prefix="aicli-bench-") as tmp:
        asyncio.run(bench(Path(tmp) / "cache", args.entries))


def disk(directory: Path) -> ResponseCache:
    return ResponseCache(DiskBackend(directory))


async def bench(directory: Path, entries: int) -> None:
    keys = [
        cache_key(
            base_url="https://api.openai.com/v1",
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"question {i} " + "x" * 500}],
            max_tokens=2000,
            temperature=0.3,
            seed=None,
            schema=None,
            template_checksum=None,
        )
        for i in range(entries)
    ]
    now = time.time()

    def make(i: int) -> CacheEntry:
        ttl = -1 if i % 4 == 0 else 3600  # a quarter already expired
        return CacheEntry(
            f"answer {i} " + "y" * 1500, "gpt-4o-mini", "openai", "standard",
            Usage(120, 400, 520), 0.00026, 900.0, now, now + ttl, None,
        )  # fmt: skip

    cache = disk(directory)
    await timed("first open (creates the stores)", lambda: cache.get("warm-up"))
    start = time.perf_counter()
    for i, k in enumerate(keys):
        await cache.set(k, make(i))
    per_set = (time.perf_counter() - start) * 1000 / len(keys)
    print(f"{'set':<38} mean   {per_set:8.3f} ms  (n={len(keys)})")
    await cache.aclose()

    async def cold_hit() -> None:
        c = disk(directory)
        entry = await c.get(keys[1])
        assert entry is not None
        await c.record_hit(entry)
        await c.aclose()

    await timed("cold open + get (hit) + record_hit", cold_hit, repeat=20)
    cache = disk(directory)
    await cache.get(keys[1])
    await timed("warm get (hit)", lambda: cache.get(keys[2]), repeat=200)
    await timed("warm get (miss)", lambda: cache.get("0" * 64), repeat=200)
    await timed("record_hit", lambda: cache.record_hit(make(1)), repeat=200)
    await timed("stats", cache.stats, repeat=5)
    await timed(f"prune ({entries // 4} expired)", cache.prune)
    print(f"size on disk: {(await cache.stats())['size_bytes'] / 1024:.0f} KiB in {directory}")
    await cache.aclose()


if __name__ == "__main__":
    main()
