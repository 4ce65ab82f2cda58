"""ResponseCache and cache_key against a real diskcache (temporary directories) and a real Redis.

Tests of behaviour both backends share take the `cache` fixture, which runs them on each;
the disk-only ones (files, permissions, damaged databases, size limit) take `disk`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from aicli.cache import CacheEntry, ResponseCache, cache_key, resolve_cache_dir
from aicli.cache.disk import DiskBackend
from aicli.errors import CacheError
from aicli.providers.body import chat_body
from aicli.types import Usage
from tests.fakes import MemoryBackend
from tests.test_cache_cli import STATS_FIELDS

BASE: dict[str, Any] = {
    "base_url": "https://api.example.com/v1",
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hi"},
    ],
    "max_tokens": 100,
    "temperature": 0.3,
    "seed": 7,
    "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
    "template_checksum": "0123456789ab",
}


def key(**changes: Any) -> str:
    """The key of the body a request with BASE's fields (and `changes`) sends."""
    fields = {**BASE, **changes}
    base_url, checksum = fields.pop("base_url"), fields.pop("template_checksum")
    return cache_key(base_url=base_url, body=chat_body(**fields), template_checksum=checksum)


def entry(content: str = "hello", *, ttl: float | None = 3600, **changes: Any) -> CacheEntry:
    now = time.time()
    fields: dict[str, Any] = {
        "content": content,
        "model_used": "gpt-4o-mini",
        "provider": "openai",
        "tier": "standard",
        "usage": Usage(10, 5, 15),
        "cost_usd": 0.000123,
        "latency_ms": 321.5,
        "created": now,
        "expires": None if ttl is None else now + ttl,
        "template_checksum": "0123456789ab",
    }
    fields.update(changes)
    return CacheEntry(**fields)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def disk_cache(directory: Path | str, size_limit_mb: float = 1024) -> ResponseCache:
    return ResponseCache(DiskBackend(directory, size_limit_mb))


@pytest.fixture
async def disk(cache_dir: Path) -> AsyncIterator[ResponseCache]:
    c = disk_cache(cache_dir)
    yield c
    await c.aclose()


def _open(request: pytest.FixtureRequest, cache_dir: Path) -> ResponseCache:
    if request.param == "memory":
        return ResponseCache(MemoryBackend(), stale_for=3600)
    if request.param == "disk":
        return disk_cache(cache_dir)
    from aicli.cache.redis import RedisBackend

    server = request.getfixturevalue("redis_server")
    namespace = request.getfixturevalue("redis_ns")
    return ResponseCache(RedisBackend(server.url), namespace=namespace, stale_for=3600)


@pytest.fixture(params=["memory", "disk", "redis"])
async def cache(request: pytest.FixtureRequest, cache_dir: Path) -> AsyncIterator[ResponseCache]:
    """The same tests on each backend: the contract every backend keeps."""
    c = _open(request, cache_dir)
    yield c
    await c.aclose()


@pytest.fixture(params=["disk", "redis"])
async def shared_cache(
    request: pytest.FixtureRequest, cache_dir: Path
) -> AsyncIterator[ResponseCache]:
    """The backends other processes can open too."""
    c = _open(request, cache_dir)
    yield c
    await c.aclose()


def same_backend(c: ResponseCache) -> ResponseCache:
    """A second cache on the same store, as another process would open it."""
    if isinstance(c.backend, MemoryBackend):
        return ResponseCache(c.backend, namespace=c.namespace, stale_for=c.stale_for)
    if c.directory is not None:
        return disk_cache(c.directory)
    from aicli.cache.redis import RedisBackend

    return ResponseCache(RedisBackend(c.location), namespace=c.namespace, stale_for=c.stale_for)


# ---- keys ------------------------------------------------------------------------------------


CHANGES: dict[str, Any] = {
    "base_url": "https://other.example.com/v1",
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "Say hi"}],  # system message dropped
    "max_tokens": 101,
    "temperature": 0.4,
    "seed": 8,
    "schema": {"type": "object"},
    "template_checksum": "ba9876543210",
}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_every_field_changes_the_key(field: str) -> None:
    assert key(**{field: CHANGES[field]}) != key()


@pytest.mark.parametrize(
    "field", ["max_tokens", "temperature", "seed", "schema", "template_checksum"]
)
def test_none_differs_from_a_value(field: str) -> None:
    assert key(**{field: None}) != key()


def test_message_details_change_the_key() -> None:
    msgs = BASE["messages"]
    variants = [
        [msgs[0], {"role": "user", "content": "Say hi!"}],  # content
        [msgs[0], {"role": "assistant", "content": "Say hi"}],  # role
        [{"role": "system", "content": "You are verbose."}, msgs[1]],  # system text
        [msgs[1], msgs[0]],  # order
        [*msgs, {"role": "user", "content": ""}],  # one more message
    ]
    keys = {key(messages=v) for v in variants} | {key()}
    assert len(keys) == len(variants) + 1


def test_key_ignores_dict_order_trailing_slash_and_int_floats() -> None:
    reordered_msgs = [{"content": m["content"], "role": m["role"]} for m in BASE["messages"]]
    reordered_schema = {"properties": {"a": {"type": "string"}}, "type": "object"}
    same = [
        key(messages=reordered_msgs, schema=reordered_schema),
        key(base_url=BASE["base_url"] + "/"),
        key(),
    ]
    assert len(set(same)) == 1
    assert key(temperature=1) == key(temperature=1.0)


def test_key_is_stable_hex_sha256_of_the_body_sent() -> None:
    k = key()
    assert re.fullmatch(r"[0-9a-f]{64}", k)
    # what rides along on a message is sent to the provider, so it is part of the key
    named = [{**m, "name": "x"} for m in BASE["messages"]]
    assert key(messages=named) != k
    # a golden value: changing the serialisation silently would orphan every shared CI cache
    assert k == "bf0f036537518a75890faaaa9c5de9cfb650b9bd521be3cc6138cdb783798552"


def test_unicode_is_hashed_as_utf8() -> None:
    assert key(messages=[{"role": "user", "content": "héllo ✓"}]) != key(
        messages=[{"role": "user", "content": "hello ✓"}]
    )


# ---- entries ---------------------------------------------------------------------------------


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


# ---- counters and stats ----------------------------------------------------------------------


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


# ---- size limit ------------------------------------------------------------------------------


async def test_size_limit_evicts_least_recently_used(cache_dir: Path) -> None:
    chunk = 50 * 1024  # each value lands in its own ~50 KiB file
    c = disk_cache(cache_dir, size_limit_mb=1)
    try:
        for i in range(40):
            await c.set(f"k{i}", entry(f"{i}:" + "x" * chunk))
            assert await c.get("k0") is not None  # k0 stays the most recently used
        assert await c.get("k1") is None  # the least recently used went first
        assert await c.get("k39") is not None
        s = await c.stats()
    finally:
        await c.aclose()
    assert s["entries"] < 40
    assert s["size_bytes"] < 1.5 * 1024 * 1024


# ---- safety (disk) ---------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_files_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b" / "cache"
    old = os.umask(0)
    c = disk_cache(directory)
    try:
        assert not directory.exists()  # nothing touches the disk until first use
        await c.set("big", entry("q" * 50_000))
        await c.set("small", entry("small"))
        await c.record_hit(entry())
        assert os.umask(0) == 0  # our umask was put back
    finally:
        os.umask(old)
        await c.aclose()
    for folder in (tmp_path / "a", tmp_path / "a" / "b", directory):
        assert _mode(folder) == 0o700, folder
    for path in directory.rglob("*"):
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), path
    assert any(p.suffix == ".val" for p in directory.rglob("*"))


async def _stats(directory: Path) -> dict[str, Any]:
    c = disk_cache(directory)
    try:
        return await c.stats()
    finally:
        await c.aclose()


async def test_existing_loose_cache_directory_is_tightened(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o755)
    empty.chmod(0o755)
    await _stats(empty)
    assert _mode(empty) == 0o700
    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    unrelated.chmod(0o755)
    (unrelated / "notes.txt").write_text("mine")
    await _stats(unrelated)
    assert _mode(unrelated) == 0o755  # not obviously ours: left alone


async def test_world_writable_directory_is_refused(cache_dir: Path, disk: ResponseCache) -> None:
    cache_dir.mkdir()
    cache_dir.chmod(0o777)
    with pytest.raises(CacheError) as info:
        await disk.get("k")
    assert info.value.exit_code == 2
    assert "every user can write" in info.value.message
    assert "chmod 700" in (info.value.hint or "")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
@pytest.mark.parametrize("which", ["top", "entries"])
async def test_directory_owned_by_another_user_is_refused(
    cache_dir: Path, which: str, disk: ResponseCache
) -> None:
    cache_dir.mkdir(mode=0o700)
    target = cache_dir if which == "top" else cache_dir / "entries"
    target.mkdir(mode=0o700, exist_ok=True)
    os.chown(target, 12345, 12345)
    with pytest.raises(CacheError) as info:  # a read, which comes first, refuses it
        await disk.get("k")
    assert "owned by another user (uid 12345)" in info.value.message
    assert "AICLI_CACHE_DIR" in (info.value.hint or "")


async def test_a_file_as_cache_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(CacheError, match="not a directory"):
        await _stats(path)


# ---- corruption ------------------------------------------------------------------------------


def _pwned(marker: str) -> None:
    Path(marker).write_text("code ran")


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (_pwned, (self.marker,))


def _raw_store(directory: Path) -> Any:
    import diskcache

    return diskcache.Cache(str(directory / "entries"))


def _raw_key(name: str) -> str:
    return f"aicli:v1:entry:{name}"


async def test_garbage_in_a_value_file_is_a_miss_with_a_warning(
    disk: ResponseCache, caplog: pytest.LogCaptureFixture
) -> None:
    assert disk.directory is not None
    await disk.set("big", entry("b" * 60_000))
    await disk.set("other", entry("other"))
    (val,) = (disk.directory / "entries").rglob("*.val")
    val.write_bytes(b"\xff\xfe\x00garbage")
    with caplog.at_level(logging.WARNING, logger="aicli"):
        assert await disk.get("big") is None
    assert "unreadable" in caplog.text and "miss" in caplog.text
    assert (await disk.stats())["entries"] == 1  # the bad entry was deleted ...
    assert await disk.get("other") is not None  # ... and the rest stays readable


async def test_truncated_value_file_is_a_miss(disk: ResponseCache) -> None:
    assert disk.directory is not None
    await disk.set("big", entry("b" * 60_000))
    (val,) = (disk.directory / "entries").rglob("*.val")
    val.write_bytes(val.read_bytes()[:1000])
    assert await disk.get("big") is None
    assert await disk.get("big") is None


@pytest.mark.parametrize("value", ["{not json", "[1, 2]", '{"content": 3}', b"bytes", 42])
async def test_malformed_inline_values_are_misses(
    disk: ResponseCache, caplog: pytest.LogCaptureFixture, value: Any
) -> None:
    assert disk.directory is not None
    await disk.set("good", entry())
    raw = _raw_store(disk.directory)
    raw.set(_raw_key("bad"), value)
    raw.close()
    with caplog.at_level(logging.WARNING, logger="aicli"):
        assert await disk.get("bad") is None
    assert "cache entry bad" in caplog.text
    assert await disk.get("good") is not None


async def test_malformed_values_in_redis_are_misses(
    redis_server: Any, redis_ns: str, caplog: pytest.LogCaptureFixture
) -> None:
    from aicli.cache.redis import RedisBackend

    c = ResponseCache(RedisBackend(redis_server.url), namespace=redis_ns, stale_for=60)
    client = redis_server.client()
    for i, value in enumerate(["{not json", "[1, 2]", '{"content": 3}', "\x80\x04pickle"]):
        client.set(f"{redis_ns}:v1:entry:bad{i}", value)
    try:
        with caplog.at_level(logging.WARNING, logger="aicli"):
            for i in range(4):
                assert await c.get(f"bad{i}") is None
        assert caplog.text.count("unreadable") == 4
        assert not client.keys(f"{redis_ns}:*")  # deleted
    finally:
        await c.aclose()
        client.close()


async def test_pickled_values_are_never_unpickled(
    disk: ResponseCache, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert disk.directory is not None
    marker = tmp_path / "pwned"
    await disk.stats()  # creates the store
    raw = _raw_store(disk.directory)
    raw.set(_raw_key("evil"), _Evil(str(marker)))
    raw.set(_raw_key("evil-big"), [_Evil(str(marker)), "p" * 60_000])
    raw.close()
    with caplog.at_level(logging.WARNING, logger="aicli"):
        assert await disk.get("evil") is None
        assert await disk.get("evil-big") is None
    assert not marker.exists()
    assert "refused a pickled value" in caplog.text


async def _fill(directory: Path, n: int = 300) -> None:
    c = disk_cache(directory)
    try:
        for i in range(n):
            await c.set(f"k{i}", entry(f"value {i} " + "v" * 300))
        await c.record_hit(entry())
    finally:
        await c.aclose()


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
async def test_damaged_database_is_moved_aside_and_replaced(
    cache_dir: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    await _fill(cache_dir)
    db = cache_dir / "entries" / "cache.db"
    if damage == "truncate":
        with db.open("r+b") as f:
            f.truncate(db.stat().st_size // 3)
    else:
        db.write_bytes(b"this is not sqlite at all\n" * 200)
    c = disk_cache(cache_dir)
    try:
        with caplog.at_level(logging.WARNING, logger="aicli"):
            for i in (1, 150, 299):
                await c.get(f"k{i}")  # never raises
        assert "was damaged" in caplog.text and "started a fresh one" in caplog.text
        await c.set("new", entry("new"))
        assert await c.get("new") is not None
        s = await c.stats()
        assert s["entries"] == 1 and s["hits"] == 1  # counters live apart and survived
        (aside,) = cache_dir.glob("entries.corrupt-*")
        assert (aside / "cache.db").exists()
        await c.clear()
        assert not list(cache_dir.glob("entries.corrupt-*"))
    finally:
        await c.aclose()


async def test_damaged_counters_restart_at_zero(
    cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await _fill(cache_dir, 3)
    (cache_dir / "counters" / "cache.db").write_bytes(b"\x00garbage" * 500)
    with caplog.at_level(logging.WARNING, logger="aicli"):
        s = await _stats(cache_dir)
    assert (s["entries"], s["hits"]) == (3, 0)
    assert "counters restart at 0" in caplog.text


# ---- location and import cost ----------------------------------------------------------------


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
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
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
