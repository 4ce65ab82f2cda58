"""A damaged disk cache: unreadable entries and databases are dropped or rebuilt, never trusted."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from aicli.cache import ResponseCache
from tests.cache.helpers import disk_cache, disk_stats, entry


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
        s = await disk_stats(cache_dir)
    assert (s["entries"], s["hits"]) == (3, 0)
    assert "counters restart at 0" in caplog.text
