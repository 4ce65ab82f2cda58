"""Benchmark the cache backends: a hit's latency on disk and on Redis, in-process and as a whole
`aicli generate` run, and the provider calls made for N concurrent identical requests.

Starts its own redis-server (on a free loopback port) and a fake OpenAI server with a slow
model. Usage: python scripts/bench_cache_backends.py [--runs N] [--concurrent N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aicli.cache import CacheEntry, ResponseCache, cache_key  # noqa: E402
from aicli.cache.disk import DiskBackend  # noqa: E402
from aicli.cache.redis import RedisBackend  # noqa: E402
from aicli.types import Usage  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402


def median_ms(runs: list[float]) -> str:
    return f"median {statistics.median(runs) * 1000:8.3f} ms  (n={len(runs)})"


async def timed(fn: Callable[[], Awaitable[object]], n: int) -> list[float]:
    runs = []
    for _ in range(n):
        start = time.perf_counter()
        await fn()
        runs.append(time.perf_counter() - start)
    return runs


async def in_process(name: str, cache: ResponseCache, n: int) -> None:
    body = {
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "bench " + "x" * 500}],
        "max_tokens": 2000, "temperature": 0.3,
    }  # fmt: skip
    key = cache_key(base_url="https://api.openai.com/v1", body=body, template_checksum=None)
    now = time.time()
    entry = CacheEntry("y" * 1500, "gpt-4o-mini", "openai", "standard", Usage(120, 400, 520),
                       0.00026, 900.0, now, now + 3600, None)  # fmt: skip
    await cache.set(key, entry)

    async def hit() -> None:
        got = await cache.get(key)
        assert got is not None
        await cache.record_hit(got)

    await hit()  # connect / open the stores
    print(f"{name:<6} in-process hit (get + record_hit)     {median_ms(await timed(hit, n))}")
    await cache.aclose()


def whole_runs(name: str, env: dict[str, str], n: int) -> None:
    def once() -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "aicli", "generate", "bench prompt"],
                       env=env, check=True, capture_output=True)  # fmt: skip
        return time.perf_counter() - start

    once()  # the miss that fills the cache
    runs = [once() for _ in range(n)]
    print(f"{name:<6} `aicli generate` run, a cache hit     {median_ms(runs)}")


def concurrent(name: str, env: dict[str, str], fake: FakeOpenAI, n: int) -> None:
    before = len(fake.requests)
    args = [sys.executable, "-m", "aicli", "generate", f"concurrent {name}"]
    procs = [subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL) for _ in range(n)]
    assert all(p.wait(120) == 0 for p in procs)
    calls = len(fake.requests) - before
    print(f"{name:<6} {n} concurrent identical `aicli generate` (slow model): {calls} call(s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="whole aicli runs per backend")
    parser.add_argument("--concurrent", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aicli-bench-") as tmp:
        root = Path(tmp)
        redis = RedisServer(root / "redis").start()
        fake = FakeOpenAI().start()
        try:
            asyncio.run(in_process("disk", ResponseCache(DiskBackend(root / "c1")), 500))
            asyncio.run(in_process("redis", ResponseCache(RedisBackend(redis.url)), 500))
            config = {
                "providers": {"fake": {"base_url": fake.base_url, "api_key_env": "BENCH_KEY"}},
                "defaults": {"timeout_seconds": 20, "max_retries": 0},
                "tiers": {"standard": {"model": "bench-model", "provider": "fake"}},
            }
            path = root / "aicli.yaml"
            path.write_text(yaml.safe_dump(config), encoding="utf-8")
            base = {**os.environ, "AICLI_CONFIG": str(path), "BENCH_KEY": "sk-bench",
                    "PYTHONPATH": str(REPO), "AICLI_CACHE_DIR": str(root / "c2")}  # fmt: skip
            envs = {
                "disk": {**base, "AICLI_CACHE_BACKEND": "disk"},
                "redis": {**base, "AICLI_CACHE_BACKEND": "redis", "AICLI_REDIS_URL": redis.url},
            }
            for name, env in envs.items():
                whole_runs(name, env, args.runs)
            fake.latency = 2.0
            for name, env in envs.items():
                concurrent(name, env, fake, args.concurrent)
        finally:
            fake.stop()
            redis.stop()


if __name__ == "__main__":
    main()
