"""The cache's diskcache stores: opened owner-only and JSON-only, damaged ones moved aside.

DiskBackend (aicli.cache.disk) says what goes in the stores; this module opens them in the cache
directory, runs one operation at a time on them, and turns SQLite and file-system failures into
CacheError (unsafe) or CacheUnavailable (full, read-only, locked: callers carry on without the
cache), except a damaged database: that is moved aside once, with a warning, and replaced.
diskcache (and sqlite3) are imported on first use, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aicli.errors import CacheError, CacheUnavailable
from aicli.private_files import PrivateDir, check_private_dir, prepare_private_dir, private_umask

if TYPE_CHECKING:
    import diskcache

log = logging.getLogger("aicli")

ENTRIES = "entries"
COUNTERS = "counters"
_TIMEOUT_S = 60
_PAGES_CACHED = 2**11  # SQLite pages of 4 KiB
_SQLITE_CORRUPT, _SQLITE_NOTADB = 11, 26
_DIR = PrivateDir("cache", "$AICLI_CACHE_DIR or cache.dir", "answers", CacheError)
T = TypeVar("T")
# A full, read-only or failing disk: the cache is unusable for now, not unsafe.
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS}
_ROOM_HINT = "free some disk space or check that the disk is writable; --no-cache skips the cache"

# Every value file diskcache writes is `xx/yy/<28 hex>.val` under its store; nothing else is ours.
_VALUE_FILE = re.compile(r"[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{28}\.val")
MAX_VALUE_BYTES = 32 * 1024 * 1024  # a value file larger than this is damage, not an answer
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted as a value file must not block a read
_disk_class: Any = None


def _value_path(directory: str, filename: object) -> Path:
    """The path of a value file named in the database, refused unless it is one diskcache writes:
    inside the store, below two real folders (no symlinks). A tampered database is untrusted."""
    if not isinstance(filename, str) or not _VALUE_FILE.fullmatch(filename):
        raise ValueError(f"its value file {str(filename)[:80]!r} is not inside the cache")
    root = Path(directory)
    for folder in (root / filename[:2], root / filename[:5]):
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISDIR(folder.lstat().st_mode):
                raise ValueError(f"{folder} is not a folder (a symlink?)")
    return root / filename


def _read_value(path: Path) -> bytes:
    """Read a regular, singly-linked value file of bounded size, never through a symlink."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError("its value file is a symlink") from None
        raise  # missing: diskcache reads that as a miss (another process deleted it)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise ValueError("its value file is not a plain file")
        if st.st_size > MAX_VALUE_BYTES:
            raise ValueError(f"its value file is over {MAX_VALUE_BYTES // 2**20} MB")
        return fh.read(MAX_VALUE_BYTES + 1)


def _safe_disk() -> Any:
    """A diskcache Disk that refuses pickle and touches no file outside its store directory."""
    global _disk_class
    if _disk_class is None:
        import diskcache
        from diskcache.core import MODE_BINARY, MODE_PICKLE, MODE_TEXT

        class SafeDisk(diskcache.Disk):  # type: ignore[misc]
            def get(self, key: Any, raw: bool) -> Any:
                if not raw:
                    raise ValueError("refused a pickled key")
                return super().get(key, raw)

            def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
                if mode == MODE_PICKLE:
                    raise ValueError("refused a pickled value")
                if filename is not None:  # even unused here: remove() would get it later
                    _value_path(self._directory, filename)
                if mode not in (MODE_TEXT, MODE_BINARY):
                    return super().fetch(mode, filename, value, read)
                if read:
                    raise ValueError("refused to hand out a value file")
                data = _read_value(_value_path(self._directory, filename))
                return data.decode("utf-8") if mode == MODE_TEXT else data

            def _write(self, full_path: str, iterator: Any, mode: str, encoding: Any = None) -> int:
                # diskcache's own _write makes folders with makedirs, which follows a planted
                # symlink out of the store; create each level here and open with O_EXCL|NOFOLLOW.
                try:
                    path = _value_path(self._directory, os.path.relpath(full_path, self._directory))
                except ValueError as exc:
                    raise OSError(errno.ELOOP, str(exc), full_path) from None
                for folder in (path.parent.parent, path.parent):
                    with contextlib.suppress(FileExistsError):
                        folder.mkdir(mode=0o700)
                    if not stat.S_ISDIR(folder.lstat().st_mode):
                        raise OSError(errno.ELOOP, "a cache folder is not a folder", str(folder))
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
                fd = os.open(path, flags, 0o600)
                size = 0
                with open(fd, "wb" if "b" in mode else "w", encoding=encoding) as writer:
                    for chunk in iterator:
                        size += len(chunk)
                        writer.write(chunk)
                return size

            def remove(self, file_path: Any) -> None:
                try:
                    path = _value_path(self._directory, file_path)
                except ValueError as exc:
                    log.warning("dropped a damaged cache entry: %s; left that file alone", exc)
                    return
                with contextlib.suppress(OSError):
                    path.unlink()  # a symlink itself, never its target
                for folder in (path.parent, path.parent.parent):  # only emptied folders
                    with contextlib.suppress(OSError):
                        folder.rmdir()

        _disk_class = SafeDisk
    return _disk_class


def sweep_orphans(directory: Path, referenced: set[str]) -> int:
    """Delete value files no entry refers to (a writer killed between file and row) and the
    folders left empty; only inside `directory`, never through a symlink. Returns how many."""
    removed = 0
    for top in _subfolders(directory):
        for sub in _subfolders(top):
            with contextlib.suppress(OSError), os.scandir(sub) as it:
                for item in it:
                    name = f"{top.name}/{sub.name}/{item.name}"
                    if name not in referenced and not item.is_dir(follow_symlinks=False):
                        with contextlib.suppress(OSError):
                            os.unlink(item.path)
                            removed += 1
            with contextlib.suppress(OSError):
                sub.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
    return removed


def _subfolders(directory: Path) -> list[Path]:
    """The real (non-symlink) two-hex-digit folders diskcache makes in directory."""
    with contextlib.suppress(OSError), os.scandir(directory) as it:
        return [
            Path(item.path)
            for item in it
            if re.fullmatch(r"[0-9a-f]{2}", item.name) and item.is_dir(follow_symlinks=False)
        ]
    return []


def _links_out(path: Path) -> bool:
    """A store folder or database file that is a symlink would make SQLite work elsewhere."""
    names = ("", "/cache.db", "/cache.db-wal", "/cache.db-shm")
    return any(Path(f"{path}{name}").is_symlink() for name in names)


def evict_others(store: diskcache.Cache, keep: str) -> None:
    """Over the size limit, evict up to 10 least recently used entries, never `keep` (the one
    just written: diskcache's own cull in set() can pick it when little else is there)."""
    if store.volume() <= store.size_limit:
        return
    select = "SELECT rowid, filename FROM Cache WHERE key != ? ORDER BY access_time LIMIT 10"
    with store._transact() as (sql, cleanup):
        rows = sql(select, (keep,)).fetchall()
        if rows:
            sql(f"DELETE FROM Cache WHERE rowid IN ({','.join(str(int(r[0])) for r in rows)})")
            for _, filename in rows:
                cleanup(filename)


def clear_store(store: diskcache.Cache) -> int:
    """Delete every entry, then the value files no entry refers to (left by a killed writer)."""
    count = int(store.clear())
    with store._transact() as (sql, _):  # no writer commits while files are swept
        rows = sql("SELECT filename FROM Cache WHERE filename IS NOT NULL").fetchall()
        sweep_orphans(Path(store.directory), {row[0] for row in rows})
    return count


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
                message = f"cannot use the cache directory {self.directory}: {exc.strerror or exc}"
                if exc.errno in _NO_ROOM:
                    raise CacheUnavailable(message, _ROOM_HINT) from exc
                raise CacheError(
                    message,
                    "check its permissions, or point $AICLI_CACHE_DIR (or cache.dir) elsewhere",
                ) from exc
        raise AssertionError("unreachable")

    def delete_damaged(self) -> None:
        """Delete the damaged databases earlier runs moved aside."""
        for broken in self.directory.glob("*.corrupt-*"):
            if broken.is_symlink():
                broken.unlink()  # the link, never what it points to
            else:
                shutil.rmtree(broken, ignore_errors=True)  # does not follow links inside

    def close(self) -> None:
        for store in self._open.values():
            with contextlib.suppress(Exception):
                store.close()
        self._open.clear()

    def _store(self, name: str) -> diskcache.Cache:
        store = self._open.get(name)
        if store is not None:
            return store

        if not self._checked:
            prepare_private_dir(self.directory, _DIR, _ours)
            self._checked = True
        path = self.directory / name
        if _links_out(path):  # a restored cache may carry links to anywhere: never follow them
            self._inodes[name] = path.lstat().st_ino
            self._quarantine(name, ValueError("it or its database is a symbolic link"))
        path.mkdir(mode=0o700, exist_ok=True)
        check_private_dir(path, _DIR)
        self._inodes[name] = path.stat().st_ino
        if name == ENTRIES:
            settings: dict[str, Any] = {
                "eviction_policy": "least-recently-used",
                "size_limit": self.size_limit_bytes,
                "tag_index": True,  # prune selects on tag (the expiry)
                "cull_limit": 0,  # set() may cull the entry it just wrote: evict_others() instead
            }
        else:  # counters must survive eviction
            settings = {"eviction_policy": "none", "tag_index": False}
        store = _open_store(path, settings)
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
            if path.lstat().st_ino == self._inodes.get(name):
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
        message = f"cannot use the cache in {self.directory}: {text}"
        if any(word in text for word in ("full", "I/O error", "readonly", "read-only")):
            return CacheUnavailable(message, _ROOM_HINT)
        hint = "check the directory's permissions, or point $AICLI_CACHE_DIR elsewhere"
        return CacheError(message, hint)


def _open_store(path: Path, settings: dict[str, Any]) -> diskcache.Cache:
    """Open one diskcache store, waiting while another process is creating the same one."""
    import sqlite3

    import diskcache

    deadline = time.monotonic() + _TIMEOUT_S
    delay = 0.002
    while True:
        try:
            # synchronous=OFF: no fsync on every open/commit/close (tens of ms on a busy disk). An
            # application crash stays safe; an OS crash may damage the db, which is then moved
            # aside. No memory map and a page cache of 8 MB, not diskcache's 64 + 32 MB: a
            # run that reads 50,000 answers would otherwise hold most of the database in memory.
            return diskcache.Cache(
                str(path),
                timeout=_TIMEOUT_S,
                disk=_safe_disk(),
                statistics=False,
                sqlite_synchronous=0,
                sqlite_mmap_size=0,
                sqlite_cache_size=_PAGES_CACHED,
                **settings,
            )
        except sqlite3.OperationalError as exc:
            # diskcache sets a store up with no busy timeout and retries most of its statements,
            # not all (creating or dropping the tag index): processes that open a fresh cache at
            # the same moment then fail on "database is locked", and one of them would go on
            # without the cache, so it would call the provider a second time.
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def _is_corrupt(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    text = str(exc)
    return (
        code in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
        or "file is not a database" in text
        or "malformed" in text
    )
