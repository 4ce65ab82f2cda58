"""Benchmark the answer cache: cold open, set, get (hit), record_hit, prune and stats timings.

Usage: python scripts/bench_cache.py [--entries N] [--dir PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aicli.cache import CacheEntry, ResponseCache, cache_key
from aicli.types import Usage


def timed(label: str, fn: Callable[[], object], repeat: int = 1) -> None:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) * 1000)
    print(f"{label:<38} median {statistics.median(runs):8.3f} ms  (n={repeat})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    if args.dir is not None:
        bench(args.dir, args.entries)
        return
    with tempfile.TemporaryDirectory(prefix="aicli-bench-") as tmp:
        bench(Path(tmp) / "cache", args.entries)


def bench(directory: Path, entries: int) -> None:
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

    cache = ResponseCache(directory)
    timed("first open (creates the stores)", lambda: cache.get("warm-up"))
    start = time.perf_counter()
    for i, k in enumerate(keys):
        cache.set(k, make(i))
    per_set = (time.perf_counter() - start) * 1000 / len(keys)
    print(f"{'set':<38} mean   {per_set:8.3f} ms  (n={len(keys)})")
    cache.close()

    def cold_hit() -> None:
        with ResponseCache(directory) as c:
            entry = c.get(keys[1])
            assert entry is not None
            c.record_hit(entry)

    timed("cold open + get (hit) + record_hit", cold_hit, repeat=20)
    cache = ResponseCache(directory)
    cache.get(keys[1])
    timed("warm get (hit)", lambda: cache.get(keys[2]), repeat=200)
    timed("warm get (miss)", lambda: cache.get("0" * 64), repeat=200)
    timed("record_hit", lambda: cache.record_hit(make(1)), repeat=200)
    timed("stats", cache.stats, repeat=5)
    timed(f"prune ({entries // 4} expired)", cache.prune)
    print(f"size on disk: {cache.stats()['size_bytes'] / 1024:.0f} KiB in {directory}")
    cache.close()


if __name__ == "__main__":
    main()
