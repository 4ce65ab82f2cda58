"""Where the cache lives, which backend opens, what importing it costs, stores being created."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from aicli.cache import ResponseCache, resolve_cache_dir
from aicli.cache.disk import DiskBackend
from tests.fakes import MemoryBackend
from tests.helpers import REPO_ROOT


def test_resolve_cache_dir_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("AICLI_CACHE_DIR", raising=False)
    cfg = SimpleNamespace(cache=SimpleNamespace(dir=None), config_dir=tmp_path / "conf")
    assert resolve_cache_dir(cfg) == tmp_path / "xdg" / "aicli"
    assert resolve_cache_dir(None) == tmp_path / "xdg" / "aicli"
    cfg.cache.dir = "rel/cache"
    assert resolve_cache_dir(cfg) == tmp_path / "conf" / "rel" / "cache"
    cfg.cache.dir = "~/c"
    assert resolve_cache_dir(cfg) == Path.home() / "c"
    monkeypatch.setenv("AICLI_CACHE_DIR", str(tmp_path / "env"))
    assert resolve_cache_dir(cfg) == tmp_path / "env"


def test_open_cache_picks_the_backend(make_config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from aicli.cache import open_cache
    from aicli.config import load_config

    path = make_config(cache={"dir": "c", "size_limit_mb": 3, "namespace": "proj"})
    c = open_cache(load_config(path))
    assert isinstance(c.backend, DiskBackend) and c.backend_name == "disk"
    assert c.directory == path.parent / "c" and c.backend.size_limit_bytes == 3 * 1024 * 1024
    assert c.entry_key("abc") == "proj:v1:entry:abc" and c.stale_for is None
    monkeypatch.setenv("AICLI_CACHE_BACKEND", "redis")
    monkeypatch.setenv("AICLI_REDIS_URL", "redis://:s3cret@example.invalid:6380/2")
    c = open_cache(load_config(path))
    assert c.backend_name == "redis" and c.directory is None
    assert c.location == "redis://:***@example.invalid:6380/2"
    assert c.stale_for == 604800


def test_import_is_light() -> None:
    code = (
        "import sys, aicli.cache\n"
        "heavy = {'diskcache', 'sqlite3', 'openai', 'httpx', 'httpx2', 'jsonschema',"
        " 'platformdirs'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("store", ["entries", "counters"])
def test_a_store_being_created_by_another_process_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: str
) -> None:
    # diskcache does not retry creating/dropping its tag index; a second process opening the same
    # fresh store at that moment gets "database is locked" and must wait, not lose the cache.
    import sqlite3

    import diskcache

    from aicli.cache.disk_store import Stores

    name = "create_tag_index" if store == "entries" else "drop_tag_index"
    real = getattr(diskcache.Cache, name)
    calls: list[int] = []

    def busy_twice(self: Any) -> None:
        calls.append(1)
        if len(calls) <= 2:
            raise sqlite3.OperationalError("database is locked")
        real(self)

    monkeypatch.setattr(diskcache.Cache, name, busy_twice)
    stores = Stores(tmp_path / "cache", 10**7)
    try:
        stores.run(store, lambda s: s.set("k", "v"))
        assert stores.run(store, lambda s: s.get("k")) == "v"
    finally:
        stores.close()
    assert len(calls) == 3


def test_a_store_locked_for_good_is_reported_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    import diskcache

    from aicli.cache import disk_store
    from aicli.errors import CacheUnavailable

    def always_busy(self: Any) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(diskcache.Cache, "create_tag_index", always_busy)
    monkeypatch.setattr(disk_store, "_TIMEOUT_S", 0.05)
    stores = disk_store.Stores(tmp_path / "cache", 10**7)
    with pytest.raises(CacheUnavailable, match="locked"):
        stores.run(disk_store.ENTRIES, lambda s: s.get("k"))
    stores.close()


async def test_redis_prune_keeps_an_answer_rewritten_since_it_was_read(
    redis_server: Any, redis_ns: str
) -> None:
    # Another process writes a fresh answer between prune's read and its delete: it must stay.
    from aicli.cache.redis import RedisBackend

    backend = RedisBackend(redis_server.url)
    client = redis_server.client()
    prefix = f"{redis_ns}:v1:entry:"
    for name in ("old", "raced", "fresh"):
        client.set(prefix + name, f"{name} expired" if name != "fresh" else "fresh")

    def expired(value: str) -> bool:
        if value == "raced expired":
            client.set(prefix + "raced", "raced rewritten")  # lands before prune deletes
        return value.endswith("expired")

    try:
        assert await backend.prune(prefix, expired) == 1
        assert sorted(client.keys(prefix + "*")) == [prefix + "fresh", prefix + "raced"]
        assert client.get(prefix + "raced") == "raced rewritten"
    finally:
        await backend.aclose()
        client.close()


async def test_the_engine_needs_only_the_backend_protocol(make_config: Any, server: Any) -> None:
    """The engine caches, single-flights and counts through any backend (here: a dict)."""
    import asyncio

    from aicli.config import load_config
    from aicli.engine import Engine
    from aicli.types import Request

    cfg = load_config(make_config())
    cache = ResponseCache(MemoryBackend())
    engine = Engine(cfg, cache=cache)
    ask = [{"role": "user", "content": "the same question"}]
    try:
        first = await asyncio.gather(*(engine.run(Request(messages=list(ask))) for _ in range(5)))
        again = await engine.run(Request(messages=list(ask)))
    finally:
        await engine.aclose()
    assert len(server.requests) == 1  # four waited for the one call; the sixth was a hit
    assert {r.content for r in [*first, again]} == {first[0].content}
    assert again.cached is True
    s = await cache.stats()
    assert s["backend"] == "memory" and s["hits"] == 5 and s["misses"] == 1
