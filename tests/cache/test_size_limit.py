"""The disk cache's size limit: least recently used entries go first."""

from __future__ import annotations

from pathlib import Path

from tests.cache.helpers import disk_cache, entry


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
