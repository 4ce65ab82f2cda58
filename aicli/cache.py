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
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aicli.errors import CacheError
from aicli.types import Message, Usage

if TYPE_CHECKING:
    import diskcache

log = logging.getLogger("aicli")

KEY_VERSION = 1  # bump when the key's inputs change: old entries then simply stop matching
ENTRY_VERSION = 1
DEFAULT_SIZE_LIMIT_MB = 1024
_ENTRIES = "entries"
_COUNTERS = "counters"
_COUNTER_NAMES = ("hits", "misses", "tokens_saved", "cost_saved_nusd")
_NANO = 1_000_000_000  # dollars are counted as integer nano-dollars so `incr` stays atomic
_TIMEOUT_S = 60
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26
T = TypeVar("T")


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


@contextlib.contextmanager
def _owner_only() -> Iterator[None]:
    """Files and folders diskcache/SQLite create meanwhile are 0600/0700 (umask is per process)."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


_disk_class: Any = None


def _json_only_disk() -> Any:
    """A diskcache Disk that refuses to unpickle anything found in the database or its files."""
    global _disk_class
    if _disk_class is None:
        import diskcache
        from diskcache.core import MODE_PICKLE

        class JsonOnlyDisk(diskcache.Disk):  # type: ignore[misc]
            def get(self, key: Any, raw: bool) -> Any:
                if not raw:
                    raise ValueError("refused a pickled key")
                return super().get(key, raw)

            def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
                if mode == MODE_PICKLE:
                    raise ValueError("refused a pickled value")
                return super().fetch(mode, filename, value, read)

        _disk_class = JsonOnlyDisk
    return _disk_class


class ResponseCache:
    """A process-safe answer cache in one directory; opened lazily on first use."""

    def __init__(self, directory: Path | str, size_limit_mb: float = DEFAULT_SIZE_LIMIT_MB) -> None:
        self.directory = Path(os.path.abspath(directory))
        self.size_limit_bytes = int(size_limit_mb * 1024 * 1024)
        self._stores: dict[str, diskcache.Cache] = {}
        self._inodes: dict[str, int] = {}
        self._checked = False

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
            raw = self._run(_ENTRIES, lambda c: c.get(key))
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
            self._run(_ENTRIES, lambda c: c.delete(key))
            return None

    def set(self, key: str, entry: CacheEntry) -> None:
        """Store entry under key (replacing any older one). An empty answer is never cached."""
        if not entry.content:
            return
        text = json.dumps(entry.to_dict(), ensure_ascii=False, separators=(",", ":"))
        self._run(_ENTRIES, lambda c: c.set(key, text, tag=entry.expires))

    def prune(self) -> int:
        """Delete expired entries; returns how many."""
        now = time.time()
        # diskcache has no range delete on tags; this is its own Cache.expire() loop, on `tag`
        # (indexed) instead of `expire_time`, in batches of 100 rows per transaction.
        select = (
            "SELECT rowid, filename FROM Cache"
            " WHERE rowid > ? AND tag IS NOT NULL AND tag <= ? ORDER BY rowid LIMIT ?"
        )
        return self._run(_ENTRIES, lambda c: int(c._select_delete(select, [0, now, 100])))

    def clear(self) -> int:
        """Delete every entry and reset the counters; returns how many entries were deleted."""
        count = self._run(_ENTRIES, lambda c: int(c.clear()))
        self._run(_COUNTERS, lambda c: c.clear())
        for name in (_ENTRIES, _COUNTERS):  # give the freed space back (WAL) when no one reads
            with contextlib.suppress(Exception):
                self._run(name, lambda c: c._sql("PRAGMA wal_checkpoint(TRUNCATE)"))
        for broken in self.directory.glob("*.corrupt-*"):
            shutil.rmtree(broken, ignore_errors=True)
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

        self._run(_COUNTERS, bump)

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

        entries, oldest, newest = self._run(_ENTRIES, entry_facts)
        n = self._run(_COUNTERS, counters)
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
        for store in self._stores.values():
            with contextlib.suppress(Exception):
                store.close()
        self._stores.clear()

    # ---- opening, safety and recovery ----------------------------------------------------------

    def _run(self, name: str, op: Callable[[diskcache.Cache], T]) -> T:
        """Run op on a store; a damaged database is moved aside once and op retried on a new one."""
        import sqlite3

        import diskcache

        for attempt in (1, 2):
            try:
                with _owner_only():
                    return op(self._store(name))
            except sqlite3.DatabaseError as exc:
                if attempt == 1 and _is_corrupt(exc):
                    self._quarantine(name, exc)
                    continue
                raise self._error(exc) from exc
            except diskcache.Timeout as exc:
                raise self._error(exc) from exc
            except OSError as exc:
                raise CacheError(
                    f"cannot use the cache directory {self.directory}: {exc.strerror or exc}",
                    "check its permissions, or point $AICLI_CACHE_DIR (or cache.dir) elsewhere",
                ) from exc
        raise AssertionError("unreachable")

    def _store(self, name: str) -> diskcache.Cache:
        store = self._stores.get(name)
        if store is not None:
            return store
        import diskcache

        if not self._checked:
            _prepare_dir(self.directory)
            self._checked = True
        path = self.directory / name
        path.mkdir(mode=0o700, exist_ok=True)
        _check_safe(path)
        self._inodes[name] = path.stat().st_ino
        if name == _ENTRIES:
            settings: dict[str, Any] = {
                "eviction_policy": "least-recently-used",
                "size_limit": self.size_limit_bytes,
                "tag_index": True,  # prune selects on tag (the expiry)
            }
        else:  # counters must survive eviction
            settings = {"eviction_policy": "none", "tag_index": False}
        # synchronous=OFF: no fsync on every open/commit/close (tens of ms on a busy disk). An
        # application crash stays safe; an OS crash may damage the db, which is then moved aside.
        store = diskcache.Cache(
            str(path),
            timeout=_TIMEOUT_S,
            disk=_json_only_disk(),
            statistics=False,
            sqlite_synchronous=0,
            **settings,
        )
        for suffix in ("", "-wal", "-shm"):
            db = path / f"cache.db{suffix}"
            with contextlib.suppress(OSError):
                if db.stat().st_mode & 0o077:
                    db.chmod(0o600)
        self._stores[name] = store
        return store

    def _quarantine(self, name: str, exc: Exception) -> None:
        store = self._stores.pop(name, None)
        if store is not None:
            with contextlib.suppress(Exception):
                store.close()
        path = self.directory / name
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.directory / f"{name}.corrupt-{stamp}-{os.urandom(3).hex()}"
        try:
            # Another process may already have moved it and started a fresh store: leave that.
            if path.stat().st_ino == self._inodes.get(name):
                path.rename(target)
        except FileNotFoundError:
            return
        except OSError as err:
            raise CacheError(
                f"the cache database in {path} is damaged ({exc}) and could not be moved aside: "
                f"{err.strerror or err}",
                f"delete the directory {self.directory} (it is only a cache)",
            ) from err
        lost = "its answers are gone" if name == _ENTRIES else "the hit/miss counters restart at 0"
        log.warning(
            "the cache database %s was damaged (%s): moved it to %s and started a fresh one (%s);"
            " `aicli cache clear` deletes the damaged copy",
            path,
            exc,
            target,
            lost,
        )

    def _error(self, exc: BaseException) -> CacheError:
        text = str(exc) or type(exc).__name__
        if type(exc).__name__ == "Timeout" or "locked" in text:
            return CacheError(
                f"the cache in {self.directory} stayed locked by another process for"
                f" over {_TIMEOUT_S} s",
                "retry, or pass --no-cache",
            )
        if _is_corrupt(exc):
            return CacheError(
                f"the cache database in {self.directory} is damaged ({text})",
                f"run 'aicli cache clear --yes', or delete {self.directory} (it is only a cache)",
            )
        if "full" in text:
            hint = "free some disk space or lower cache.size_limit_mb"
        else:
            hint = "check the directory's permissions, or point $AICLI_CACHE_DIR elsewhere"
        return CacheError(f"cannot use the cache in {self.directory}: {text}", hint)


def _is_corrupt(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    text = str(exc)
    return (
        code in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
        or "file is not a database" in text
        or "malformed" in text
    )


def _prepare_dir(path: Path) -> None:
    """Create the cache directory owner-only, or check that an existing one is safe to use."""
    existed = path.is_dir()
    try:
        with _owner_only():
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise CacheError(
            f"the cache path {path} exists but is not a directory",
            "set $AICLI_CACHE_DIR or cache.dir to a directory",
        ) from None
    except OSError as exc:
        raise CacheError(
            f"cannot create the cache directory {path}: {exc.strerror or exc}",
            "set $AICLI_CACHE_DIR or cache.dir to a directory you can write",
        ) from exc
    _check_safe(path)
    mode = path.stat().st_mode
    # Tighten an existing directory only when it is clearly ours (empty, or already a cache).
    if existed and mode & 0o077 and hasattr(os, "getuid"):
        names = {p.name for p in path.iterdir()}
        if not names or names & {_ENTRIES, _COUNTERS}:
            path.chmod(0o700)


def _check_safe(path: Path) -> None:
    """Refuse a directory another user owns or anyone can write: they could plant answers."""
    st = path.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise CacheError(
            f"the cache path {path} is not a directory",
            "set $AICLI_CACHE_DIR or cache.dir to a directory",
        )
    if not hasattr(os, "getuid"):  # Windows: ACLs, not modes
        return
    if st.st_uid != os.getuid():
        raise CacheError(
            f"refusing to use the cache directory {path}: it is owned by another user"
            f" (uid {st.st_uid}), who could read or plant answers",
            "use a directory you own: set $AICLI_CACHE_DIR or cache.dir",
        )
    if st.st_mode & stat.S_IWOTH:
        raise CacheError(
            f"refusing to use the cache directory {path}: every user can write to it",
            f"run 'chmod 700 {path}', or set $AICLI_CACHE_DIR or cache.dir to another directory",
        )


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
