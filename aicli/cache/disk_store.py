"""The cache's diskcache stores: opened owner-only and JSON-only, damaged ones moved aside.

DiskBackend (aicli.cache.disk) says what goes in the stores; this module opens them in the cache
directory, runs one operation at a time on them, and turns SQLite and file-system failures into
CacheError (an unsafe directory) or CacheUnavailable (locked, full: callers carry on without the
cache), except a damaged database: that is moved aside once, with a warning, and replaced.
diskcache (and sqlite3) are imported on first use, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aicli.errors import CacheError, CacheUnavailable
from aicli.security import PrivateDir, check_private_dir, prepare_private_dir, private_umask

if TYPE_CHECKING:
    import diskcache

log = logging.getLogger("aicli")

ENTRIES = "entries"
COUNTERS = "counters"
_TIMEOUT_S = 60
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26
_DIR = PrivateDir("cache", "$AICLI_CACHE_DIR or cache.dir", "answers", CacheError)
T = TypeVar("T")

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


def _ours(names: set[str]) -> bool:
    """An existing directory is clearly the cache's when it is empty or holds one of its stores."""
    return not names or bool(names & {ENTRIES, COUNTERS})


class Stores:
    """The ENTRIES and COUNTERS stores of one cache directory, each opened on first use."""

    def __init__(self, directory: Path, size_limit_bytes: int) -> None:
        self.directory = directory
        self.size_limit_bytes = size_limit_bytes
        self._open: dict[str, diskcache.Cache] = {}
        self._inodes: dict[str, int] = {}
        self._checked = False

    def run(self, name: str, op: Callable[[diskcache.Cache], T]) -> T:
        """Run op on a store; a damaged database is moved aside once and op retried on a new one."""
        import sqlite3

        import diskcache

        for attempt in (1, 2):
            try:
                # Files and folders diskcache/SQLite create meanwhile are 0600/0700.
                with private_umask():
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

    def delete_damaged(self) -> None:
        """Delete the damaged databases earlier runs moved aside."""
        for broken in self.directory.glob("*.corrupt-*"):
            shutil.rmtree(broken, ignore_errors=True)

    def close(self) -> None:
        for store in self._open.values():
            with contextlib.suppress(Exception):
                store.close()
        self._open.clear()

    def _store(self, name: str) -> diskcache.Cache:
        store = self._open.get(name)
        if store is not None:
            return store
        import diskcache

        if not self._checked:
            prepare_private_dir(self.directory, _DIR, _ours)
            self._checked = True
        path = self.directory / name
        path.mkdir(mode=0o700, exist_ok=True)
        check_private_dir(path, _DIR)
        self._inodes[name] = path.stat().st_ino
        if name == ENTRIES:
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
        self._open[name] = store
        return store

    def _quarantine(self, name: str, exc: Exception) -> None:
        store = self._open.pop(name, None)
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
        lost = "its answers are gone" if name == ENTRIES else "the hit/miss counters restart at 0"
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
            return CacheUnavailable(
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
            return CacheUnavailable(
                f"cannot use the cache in {self.directory}: {text}",
                "free some disk space or lower cache.size_limit_mb",
            )
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
