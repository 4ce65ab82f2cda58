"""What the cache tests share: a request body and its key, an entry, opening a cache on each
backend, a disk cache's stats."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from aicli.cache import CacheEntry, ResponseCache, cache_key
from aicli.cache.disk import DiskBackend
from aicli.providers.body import chat_body
from aicli.types import Usage
from tests.fakes import MemoryBackend

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


def disk_cache(directory: Path | str, size_limit_mb: float = 1024) -> ResponseCache:
    return ResponseCache(DiskBackend(directory, size_limit_mb))


def open_backend(request: pytest.FixtureRequest, cache_dir: Path) -> ResponseCache:
    if request.param == "memory":
        return ResponseCache(MemoryBackend(), stale_for=3600)
    if request.param == "disk":
        return disk_cache(cache_dir)
    from aicli.cache.redis import RedisBackend

    server = request.getfixturevalue("redis_server")
    namespace = request.getfixturevalue("redis_ns")
    return ResponseCache(RedisBackend(server.url), namespace=namespace, stale_for=3600)


def same_backend(c: ResponseCache) -> ResponseCache:
    """A second cache on the same store, as another process would open it."""
    if isinstance(c.backend, MemoryBackend):
        return ResponseCache(c.backend, namespace=c.namespace, stale_for=c.stale_for)
    if c.directory is not None:
        return disk_cache(c.directory)
    from aicli.cache.redis import RedisBackend

    return ResponseCache(RedisBackend(c.location), namespace=c.namespace, stale_for=c.stale_for)


async def disk_stats(directory: Path) -> dict[str, Any]:
    """The stats of the disk cache in `directory`, opened and closed again."""
    c = disk_cache(directory)
    try:
        return await c.stats()
    finally:
        await c.aclose()
