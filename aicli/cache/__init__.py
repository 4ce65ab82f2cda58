"""The answer cache: `open_cache(cfg)` picks a backend (disk or Redis) under one ResponseCache.

Layout: entries.py (keys and the CacheEntry JSON), backend.py (the backend Protocols),
response.py (ResponseCache: the policy, over flight.py's single-flight over core.py's keys
and failing open), disk.py + disk_store.py
(diskcache), redis.py (redis.asyncio). Importing this package stays cheap: diskcache and redis
are imported only by the backend that is used.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from aicli import install_hint
from aicli.cache.disk import DiskBackend, resolve_cache_dir
from aicli.cache.entries import CacheEntry, cache_key
from aicli.cache.response import ResponseCache
from aicli.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from aicli.cache.backend import CacheBackend
    from aicli.config import Config

__all__ = ["CacheEntry", "ResponseCache", "cache_key", "open_cache", "resolve_cache_dir"]

BACKENDS = ("disk", "redis")


def backend_name(cfg: Config) -> str:
    """$AICLI_CACHE_BACKEND, else cache.backend."""
    env = os.environ.get("AICLI_CACHE_BACKEND", "").strip()
    if not env:
        return cfg.cache.backend
    if env.lower() not in BACKENDS:
        raise ConfigError(
            f"$AICLI_CACHE_BACKEND: expected one of {', '.join(BACKENDS)}, got {env[:40]!r}",
            "unset it to use cache.backend from the config",
        )
    return env.lower()


def require_backend_package(cfg: Config) -> str:
    """The backend's name; raises UsageError (exit 2) when the Redis backend is chosen and the
    `redis` package (the `redis` extra) is not installed: that never fixes itself."""
    name = backend_name(cfg)
    if name == "redis":
        from importlib.util import find_spec

        if find_spec("redis") is None:
            chosen = "$AICLI_CACHE_BACKEND" if os.environ.get("AICLI_CACHE_BACKEND") else "cache"
            raise UsageError(
                f"the redis cache backend ({chosen}) needs the 'redis' extra (redis not installed)",
                f"{install_hint('redis')}, or use the disk cache (cache.backend: disk)",
            )
    return name


def open_cache(
    cfg: Config, *, retry_after_s: float | None = None, sole_process: bool = False
) -> ResponseCache:
    """The configured cache; nothing is opened or connected until its first use.

    retry_after_s: how long a long-running process waits before trying an unavailable backend
    again (None: once it fails, this invocation carries on without a cache).
    sole_process: the caller is the only process answering through this cache (a one-worker
    service): on the disk cache single-flight then stays in the process, without the backend's
    lock. Redis is shared across machines by design, so it always takes the lock.
    """
    backend: CacheBackend
    stale_for: float | None = None
    sole_writer = False
    if require_backend_package(cfg) == "redis":
        from aicli.cache.redis import RedisBackend, redis_url

        backend = RedisBackend(redis_url(cfg), timeout_s=cfg.cache.timeout_seconds)
        stale_for = float(cfg.cache.stale_for)
    else:
        backend = DiskBackend(resolve_cache_dir(cfg), size_limit_mb=cfg.cache.size_limit_mb)
        sole_writer = sole_process
    return ResponseCache(
        backend,
        namespace=cfg.cache.namespace,
        stale_for=stale_for,
        retry_after_s=retry_after_s,
        sole_writer=sole_writer,
    )
