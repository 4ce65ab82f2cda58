"""A sole writer (a one-worker service on the disk cache) single-flights in its own process and
never takes the backend's lock; everyone else still locks across processes. Real disk cache,
and a real one-worker `aicli serve` for the end-to-end count."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from pathlib import Path
from typing import Any

import httpx

from aicli.cache import CacheEntry, ResponseCache, open_cache
from aicli.cache.disk import DiskBackend
from aicli.config import load_config
from tests.cache.helpers import entry, key
from tests.fake_openai import FakeOpenAI
from tests.helpers import TEST_KEY, TEST_KEY_ENV
from tests.serve_process import ServeProcess, base_env
from tests.test_serve import write_config


class CountingDisk(DiskBackend):
    """The disk backend, counting the trips that take or release its single-flight lock."""

    locks = 0

    async def lead(self, *args: Any, **kwargs: Any) -> Any:
        self.locks += 1
        return await super().lead(*args, **kwargs)


async def _flight(cache: ResponseCache, callers: int) -> tuple[int, list[CacheEntry | None]]:
    produced = 0

    async def produce() -> CacheEntry:
        nonlocal produced
        produced += 1
        await asyncio.sleep(0.05)  # long enough for every caller to arrive meanwhile
        return entry("the one answer")

    shared = await asyncio.gather(
        *(cache.single_flight(key(), produce, wait_s=5, store=True) for _ in range(callers))
    )
    return produced, [e for e, _ in shared]


async def test_a_sole_writer_single_flights_without_the_backend_lock(tmp_path: Path) -> None:
    backend = CountingDisk(tmp_path / "cache", 64)
    cache = ResponseCache(backend, sole_writer=True)
    try:
        produced, entries = await _flight(cache, 6)
        assert produced == 1 and backend.locks == 0
        assert {e.content for e in entries if e is not None} == {"the one answer"}
        assert len(entries) == 6 and None not in entries
    finally:
        await cache.aclose()
    reader = ResponseCache(DiskBackend(tmp_path / "cache", 64))  # stored for every process
    try:
        found = await reader.get(key())
        assert found is not None and found.content == "the one answer"
    finally:
        await reader.aclose()


async def test_other_writers_still_take_the_lock(tmp_path: Path) -> None:
    backend = CountingDisk(tmp_path / "cache", 64)
    cache = ResponseCache(backend)
    try:
        produced, _ = await _flight(cache, 6)
        assert produced == 1 and backend.locks >= 1
    finally:
        await cache.aclose()


def test_only_a_sole_process_on_the_disk_cache_is_a_sole_writer(
    make_config: Any, tmp_path: Path
) -> None:
    disk = load_config(make_config(cache={"dir": str(tmp_path / "c")}))
    assert open_cache(disk, sole_process=True).sole_writer is True
    assert open_cache(disk).sole_writer is False
    shared = load_config(make_config(cache={"backend": "redis", "url": "redis://127.0.0.1:9"}))
    assert open_cache(shared, sole_process=True).sole_writer is False  # machines share Redis


def test_a_one_worker_service_makes_one_call_for_concurrent_equal_requests(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    env = base_env(tmp_path / "home")
    env[TEST_KEY_ENV] = TEST_KEY
    svc = ServeProcess(
        write_config(tmp_path / "cfg", server.base_url), env, workers=1, log_path=tmp_path / "log"
    ).start()
    try:
        server.script("standard-model", ["delay:0.5"])  # the first call is slow: others pile up
        prompt = f"the same new question {uuid.uuid4().hex}"

        def ask(_: int) -> httpx.Response:
            return httpx.post(f"{svc.url}/generate", json={"prompt": prompt}, timeout=30)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(8)))
        assert [a.status_code for a in answers] == [200] * 8
        assert {a.json()["content"] for a in answers} == {prompt}
        asked = [r for r in server.requests if prompt in str(r["body"])]
        assert len(asked) == 1, svc.log()
    finally:
        assert svc.stop() == 0, svc.log()
