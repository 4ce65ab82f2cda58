"""The disk cache of answers (diskcache on SQLite): keys, entries, shared counters, prune, clear.

Layout of the cache directory (0700, files 0600):
  entries/    diskcache store: key -> JSON text of a CacheEntry; tag = expiry (epoch s) or NULL
  counters/   diskcache store without eviction: hits, misses, tokens_saved, cost_saved_nusd
  *.corrupt-* a damaged store moved aside (deleted by `clear`)
Values are JSON text, never pickle: a tampered cache must not run code. diskcache (and sqlite3)
are imported on first use, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aicli.cache_store import COUNTERS, ENTRIES, MAX_VALUE_BYTES, Stores, clear_store, evict_others
from aicli.types import Message, Usage

if TYPE_CHECKING:
    import diskcache

log = logging.getLogger("aicli")

KEY_VERSION = 1  # bump when the key's inputs change: old entries then simply stop matching
ENTRY_VERSION = 1
DEFAULT_SIZE_LIMIT_MB = 1024
_COUNTER_NAMES = ("hits", "misses", "tokens_saved", "cost_saved_nusd")
_NANO = 1_000_000_000  # dollars are counted as integer nano-dollars so `incr` stays atomic


@dataclass
class CacheEntry:
    """One cached answer, exactly what a hit (or a stale answer) needs to become a Result."""

    content: str
    model_used: str
    provider: str
    tier: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    created: float = field(default_factory=time.time)  # epoch seconds
    expires: float | None = None  # epoch seconds; None: never expires
    template_checksum: str | None = None

    def expired(self, now: float | None = None) -> bool:
        return self.expires is not None and (time.time() if now is None else now) >= self.expires

    def to_dict(self) -> dict[str, Any]:
        return {"version": ENTRY_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Any) -> CacheEntry:
        """Build an entry from `to_dict()` output; anything malformed raises ValueError."""
        if not isinstance(data, dict):
            raise ValueError(f"expected an object, got {type(data).__name__}")
        usage = data.get("usage")
        if not isinstance(usage, dict):
            raise ValueError("field 'usage' is not an object")
        num = (int, float)
        expires = _typed(data, "expires", num, optional=True)
        return cls(
            content=_typed(data, "content", str),
            model_used=_typed(data, "model_used", str),
            provider=_typed(data, "provider", str),
            tier=_typed(data, "tier", str),
            usage=Usage(
                *(
                    _typed(usage, k, int)
                    for k in ("prompt_tokens", "completion_tokens", "total_tokens")
                )
            ),
            cost_usd=float(_typed(data, "cost_usd", num)),
            latency_ms=float(_typed(data, "latency_ms", num)),
            created=float(_typed(data, "created", num)),
            expires=None if expires is None else float(expires),
            template_checksum=_typed(data, "template_checksum", str, optional=True),
        )


def _typed(data: dict[str, Any], name: str, kind: Any, optional: bool = False) -> Any:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):  # a bool is never a count or time
        raise ValueError(f"field {name!r} is missing or has the wrong type")
    return value


def cache_key(
    *,
    base_url: str,
    model: str,
    messages: list[Message],
    max_tokens: int | None,
    temperature: float | None,
    seed: int | None,
    schema: dict[str, Any] | None,
    template_checksum: str | None,
) -> str:
    """SHA-256 hex of everything that changes the answer, and nothing else (never the API key)."""
    payload = {
        "v": KEY_VERSION,
        "base_url": (base_url or "").rstrip("/"),
        "model": model,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "max_tokens": None if max_tokens is None else int(max_tokens),
        "temperature": None if temperature is None else float(temperature),  # 1 and 1.0 agree
        "seed": None if seed is None else int(seed),
        "schema": schema,
        "template_checksum": template_checksum,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def resolve_cache_dir(cfg: Any = None) -> Path:
    """$AICLI_CACHE_DIR > cfg.cache.dir (relative to the config's folder) > the platform default."""
    env = os.environ.get("AICLI_CACHE_DIR", "").strip()
    configured = getattr(getattr(cfg, "cache", None), "dir", None)
    if env:
        path = Path(os.path.expandvars(env)).expanduser()
    elif configured:
        path = Path(os.path.expandvars(configured)).expanduser()
        if not path.is_absolute() and getattr(cfg, "config_dir", None) is not None:
            path = Path(cfg.config_dir) / path
    else:
        import platformdirs  # honours $XDG_CACHE_HOME on Linux

        path = Path(platformdirs.user_cache_dir("aicli", appauthor=False))
    return Path(os.path.abspath(path))


class ResponseCache:
    """A process-safe answer cache in one directory; opened lazily on first use."""

    def __init__(self, directory: Path | str, size_limit_mb: float = DEFAULT_SIZE_LIMIT_MB) -> None:
        self.directory = Path(os.path.abspath(directory))
        self.size_limit_bytes = int(size_limit_mb * 1024 * 1024)
        self._stores = Stores(self.directory, self.size_limit_bytes)

    @classmethod
    def from_config(cls, cfg: Any) -> ResponseCache:
        return cls(resolve_cache_dir(cfg), size_limit_mb=cfg.cache.size_limit_mb)

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- entries -----------------------------------------------------------------------------

    def get(self, key: str) -> CacheEntry | None:
        """The entry for key, expired or not (the caller checks `.expired()`); None on a miss."""
        try:
            raw = self._stores.run(ENTRIES, lambda c: c.get(key))
            if raw is None:
                return None
            if not isinstance(raw, str):
                raise ValueError(f"stored value is {type(raw).__name__}, not JSON text")
            return CacheEntry.from_dict(json.loads(raw))
        except (ValueError, TypeError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            log.warning(
                "cache entry %s is unreadable (%s); deleted it and treated it as a miss",
                key[:12],
                str(exc)[:120],
            )
            self._stores.run(ENTRIES, lambda c: c.delete(key))
            return None

    def set(self, key: str, entry: CacheEntry) -> None:
        """Store entry under key (replacing any older one). An empty answer is never cached."""
        if not entry.content:
            return
        text = json.dumps(entry.to_dict(), ensure_ascii=False, separators=(",", ":"))
        size = len(text.encode("utf-8"))
        if size > min(MAX_VALUE_BYTES, self.size_limit_bytes):  # it could only evict itself
            log.warning(
                "not cached: the answer (%d bytes) is larger than the cache may hold"
                " (cache.size_limit_mb)",
                size,
            )
            return

        def write(c: diskcache.Cache) -> None:
            c.set(key, text, tag=entry.expires)
            evict_others(c, keep=key)

        self._stores.run(ENTRIES, write)

    def prune(self) -> int:
        """Delete expired entries; returns how many."""
        now = time.time()
        # diskcache has no range delete on tags; this is its own Cache.expire() loop, on `tag`
        # (indexed) instead of `expire_time`, in batches of 100 rows per transaction.
        select = (
            "SELECT rowid, filename FROM Cache"
            " WHERE rowid > ? AND tag IS NOT NULL AND tag <= ? ORDER BY rowid LIMIT ?"
        )
        return self._stores.run(ENTRIES, lambda c: int(c._select_delete(select, [0, now, 100])))

    def clear(self) -> int:
        """Delete every entry and reset the counters; returns how many entries were deleted."""
        count = self._stores.run(ENTRIES, clear_store)
        self._stores.run(COUNTERS, clear_store)
        for name in (ENTRIES, COUNTERS):  # give the freed space back (WAL) when no one reads
            with contextlib.suppress(Exception):
                self._stores.run(name, lambda c: c._sql("PRAGMA wal_checkpoint(TRUNCATE)"))
        self._stores.delete_damaged()
        return count

    # ---- counters ----------------------------------------------------------------------------

    def record_hit(self, entry: CacheEntry) -> None:
        tokens = max(0, int(entry.usage.total_tokens))
        nanos = max(0, round(entry.cost_usd * _NANO))
        self._bump(hits=1, tokens_saved=tokens, cost_saved_nusd=nanos)

    def record_miss(self) -> None:
        self._bump(misses=1)

    def _bump(self, **deltas: int) -> None:
        def bump(c: diskcache.Cache) -> None:
            with c.transact():  # all counters of one event move together
                for name, delta in deltas.items():
                    c.incr(name, delta)

        self._stores.run(COUNTERS, bump)

    def stats(self) -> dict[str, Any]:
        """SPEC's `aicli cache stats --json` object."""

        def entry_facts(c: diskcache.Cache) -> tuple[int, Any, Any]:
            # store_time is when diskcache wrote the entry, i.e. its `created`
            row = c._sql("SELECT MIN(store_time), MAX(store_time) FROM Cache").fetchone()
            return len(c), row[0], row[1]

        def counters(c: diskcache.Cache) -> dict[str, int]:
            with c.transact():  # one consistent snapshot
                values = {name: c.get(name, 0) for name in _COUNTER_NAMES}
            return {k: v if isinstance(v, int) and v >= 0 else 0 for k, v in values.items()}

        entries, oldest, newest = self._stores.run(ENTRIES, entry_facts)
        n = self._stores.run(COUNTERS, counters)
        self.close()  # the last connection to close folds the WAL back: a truer size on disk
        lookups = n["hits"] + n["misses"]
        return {
            "directory": str(self.directory),
            "entries": int(entries),
            "size_bytes": _disk_usage(self.directory),
            "hits": n["hits"],
            "misses": n["misses"],
            "hit_rate": round(n["hits"] / lookups, 4) if lookups else 0.0,
            "tokens_saved": n["tokens_saved"],
            "cost_saved_usd": round(n["cost_saved_nusd"] / _NANO, 9),
            "oldest": _iso(oldest),
            "newest": _iso(newest),
        }

    def close(self) -> None:
        self._stores.close()


def _disk_usage(path: Path) -> int:
    """Bytes of every file under path (diskcache's own `volume()` misses the WAL and counters)."""
    total = 0
    stack = [str(path)]
    while stack:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as it:
            for item in it:
                with contextlib.suppress(OSError):  # files come and go under other processes
                    if item.is_dir(follow_symlinks=False):
                        stack.append(item.path)
                    elif item.is_file(follow_symlinks=False):
                        total += item.stat(follow_symlinks=False).st_size
    return total


def _iso(ts: Any) -> str | None:
    if not isinstance(ts, (int, float)):
        return None
    from datetime import datetime, timezone

    moment = datetime.fromtimestamp(ts, tz=timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
