"""The disk cache backend (diskcache on SQLite): strings, counters and locks in one directory.

Layout of the cache directory (0700, files 0600):
  entries/    diskcache store: key -> JSON text of a CacheEntry; tag = expiry (epoch s) or NULL
  counters/   diskcache store without eviction: counters, the daily spend, single-flight locks
  *.corrupt-* a damaged store moved aside (deleted by `clear`)
Every diskcache call runs on one worker thread of its own: the event loop never blocks on SQLite,
the process umask (set around each call) is never changed by two threads at once, and each
store keeps one connection; the `*_now` methods (a CLI cache hit, before any event loop) wait
for that same thread. diskcache (and sqlite3) are imported on first use.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aicli.cache.backend import EntryFacts, SpendKeys
from aicli.cache.disk_store import (
    COUNTERS,
    ENTRIES,
    MAX_VALUE_BYTES,
    Stores,
    evict_others,
    sweep_orphans,
)
from aicli.safetext import valid_text

if TYPE_CHECKING:
    import diskcache

log = logging.getLogger("aicli")
DEFAULT_SIZE_LIMIT_MB = 1024
T = TypeVar("T")


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


def _key_range(prefix: str) -> tuple[str, str]:
    """[lo, hi) of every string that starts with prefix (our prefixes are ASCII)."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


class DiskBackend:
    """A process-safe store in one directory; nothing touches the disk until first use."""

    name = "disk"

    def __init__(self, directory: Path | str, size_limit_mb: float = DEFAULT_SIZE_LIMIT_MB) -> None:
        self.directory = Path(os.path.abspath(directory))
        self.location = str(self.directory)
        self.size_limit_bytes = int(size_limit_mb * 1024 * 1024)
        self._stores = Stores(self.directory, self.size_limit_bytes)
        self._worker: ThreadPoolExecutor | None = None

    def _thread(self) -> ThreadPoolExecutor:
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="aicli-disk-cache")
        return self._worker

    async def _run(self, name: str, op: Callable[[diskcache.Cache], T]) -> T:
        import asyncio

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread(), self._stores.run, name, op)

    def _run_now(self, name: str, op: Callable[[diskcache.Cache], T]) -> T:
        return self._thread().submit(self._stores.run, name, op).result()

    # ---- CacheBackend ------------------------------------------------------------------------

    async def get(self, key: str) -> str | None:
        return _text(await self._run(ENTRIES, lambda c: c.get(key)))

    async def set(
        self, key: str, value: str, *, ttl_s: float | None, expires: float | None
    ) -> None:
        value = valid_text(value)  # a lone surrogate would fail in SQLite, outside CacheError
        if self._fits(value):
            await self._run(ENTRIES, _write(key, value, ttl_s, expires))

    def _fits(self, value: str) -> bool:
        size = len(value.encode("utf-8"))
        if size > min(MAX_VALUE_BYTES, self.size_limit_bytes):  # it could only evict itself
            log.warning(
                "not cached: the answer (%d bytes) is larger than the cache may hold"
                " (cache.size_limit_mb)",
                size,
            )
            return False
        return True

    async def delete(self, key: str) -> None:
        await self._run(ENTRIES, lambda c: c.delete(key))

    async def incr(self, deltas: Mapping[str, int], *, ttl_s: float | None = None) -> list[int]:
        return await self._run(COUNTERS, _bump(deltas, ttl_s))

    @contextlib.asynccontextmanager
    async def lock(self, key: str, *, ttl_s: float) -> AsyncIterator[bool]:
        token = os.urandom(8).hex()
        # diskcache's `add` treats an expired item as absent: a crashed holder's lock lapses.
        taken = await self._run(COUNTERS, lambda c: bool(c.add(key, token, expire=ttl_s)))
        try:
            yield taken
        finally:
            if taken:
                await self._run(COUNTERS, _release(key, token))

    # ---- single-flight in two trips to the cache's thread, not four (miss latency) ---------

    async def lead(
        self, lock_key: str, ttl_s: float, entry_key: str
    ) -> tuple[str | None, str | None]:
        """Try the lock and read the entry in one trip: (the lock's token when taken, else None;
        the entry's text, or None). The entry is read after the lock is tried, so an answer its
        previous holder stored is found."""
        token = os.urandom(8).hex()

        def take(c: diskcache.Cache) -> bool:
            return bool(c.add(lock_key, token, expire=ttl_s))

        def both() -> tuple[bool, Any]:
            taken = self._stores.run(COUNTERS, take)
            try:
                return taken, self._stores.run(ENTRIES, lambda c: c.get(entry_key))
            except BaseException:
                if taken:
                    self._stores.run(COUNTERS, _release(lock_key, token))
                raise

        taken, raw = await self._hop(both)
        try:
            text = _text(raw)
        except ValueError:
            text = None  # tampered: a miss; the lock holder's write replaces it
        return (token if taken else None), text

    async def finish(
        self,
        lock_key: str,
        token: str,
        entry_key: str | None = None,
        value: str = "",
        *,
        ttl_s: float | None = None,
        expires: float | None = None,
    ) -> None:
        """Store the entry (when given) and then release the lock, in one trip: waiters that
        see the lock gone find the answer."""

        def both() -> None:
            try:
                if entry_key is not None and self._fits(value):
                    self._stores.run(ENTRIES, _write(entry_key, value, ttl_s, expires))
            finally:
                self._stores.run(COUNTERS, _release(lock_key, token))

        await self._hop(both)

    async def _hop(self, op: Callable[[], T]) -> T:
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(self._thread(), op)

    async def aclose(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            import asyncio

            # diskcache connections are per thread: close them on the thread that opened them
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(worker, self._stores.close)
            worker.shutdown(wait=True)

    # ---- SpendBackend (the same contract as the Redis scripts) ------------------------------

    async def spend_reserve(
        self, keys: SpendKeys, nano: int, cap: int, epoch: str, *, ttl_s: float
    ) -> tuple[bool, int, int, str]:
        def reserve(c: diskcache.Cache) -> tuple[bool, int, int, str]:
            with c.transact():  # one SQLite transaction: every process sees all of it or none
                day = _spend_epoch(c, keys, epoch, ttl_s)
                spent, reserved = _count(c.get(keys.spent, 0)), _count(c.get(keys.reserved, 0))
                held = c.get(keys.ticket)
                if held is not None:
                    return held != "done", spent, reserved, day
                if spent + reserved + nano > cap:
                    return False, spent, reserved, day
                c.set(keys.reserved, reserved + nano, expire=ttl_s)
                c.set(keys.ticket, nano, expire=ttl_s)
                return True, spent, reserved + nano, day

        return await self._run(COUNTERS, reserve)

    async def spend_settle(
        self, keys: SpendKeys, nano: int, epoch: str, *, ttl_s: float, done_ttl_s: float
    ) -> tuple[bool, int, int, str]:
        def settle(c: diskcache.Cache) -> tuple[bool, int, int, str]:
            with c.transact():
                day = _spend_epoch(c, keys, epoch, ttl_s)
                spent, reserved = _count(c.get(keys.spent, 0)), _count(c.get(keys.reserved, 0))
                held = c.get(keys.ticket)
                if held == "done":
                    return False, spent, reserved, day
                if held is not None:
                    reserved = max(0, reserved - _count(held))
                    c.set(keys.reserved, reserved, expire=ttl_s)
                spent += nano
                c.set(keys.spent, spent, expire=ttl_s)
                c.set(keys.ticket, "done", expire=done_ttl_s)
                return True, spent, reserved, day

        return await self._run(COUNTERS, settle)

    # ---- NowBackend: the same, without an event loop ---------------------------------------

    def get_now(self, key: str) -> str | None:
        return _text(self._run_now(ENTRIES, lambda c: c.get(key)))

    def delete_now(self, key: str) -> None:
        self._run_now(ENTRIES, lambda c: c.delete(key))

    def incr_now(self, deltas: Mapping[str, int]) -> list[int]:
        return self._run_now(COUNTERS, _bump(deltas, None))

    def close_now(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.submit(self._stores.close).result()
            worker.shutdown(wait=True)

    # ---- CacheAdmin --------------------------------------------------------------------------

    async def read_counters(self, keys: Sequence[str]) -> list[int]:
        def read(c: diskcache.Cache) -> list[Any]:
            with c.transact():  # one consistent snapshot
                return [c.get(name, 0) for name in keys]

        values = await self._run(COUNTERS, read)
        return [
            v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0 for v in values
        ]

    async def facts(self, prefix: str, created: Callable[[str], float | None]) -> EntryFacts:
        lo, hi = _key_range(prefix)
        # store_time is when diskcache wrote the entry, i.e. its `created`
        sql = (
            "SELECT COUNT(*), MIN(store_time), MAX(store_time) FROM Cache"
            " WHERE key >= ? AND key < ?"
        )
        row = await self._run(ENTRIES, lambda c: c._sql(sql, (lo, hi)).fetchone())
        count, oldest, newest = row
        await self.aclose()  # the last connection to close folds the WAL back: a truer size
        return EntryFacts(int(count), _disk_usage(self.directory), _num(oldest), _num(newest))

    async def delete_prefix(self, prefix: str) -> int:
        lo, hi = _key_range(prefix)
        # Keys without a namespace are from aicli before namespaces: only `clear` removes them.
        select = (
            "SELECT rowid, filename FROM Cache WHERE rowid > ?"
            " AND ((key >= ? AND key < ?) OR instr(key, ':') = 0) ORDER BY rowid LIMIT 100"
        )
        checkpoint = "PRAGMA wal_checkpoint(TRUNCATE)"

        def delete(c: diskcache.Cache) -> int:
            count = int(c._select_delete(select, [0, lo, hi]))
            with c._transact() as (sql, _):  # no writer commits while files are swept
                rows = sql("SELECT filename FROM Cache WHERE filename IS NOT NULL").fetchall()
                sweep_orphans(Path(c.directory), {row[0] for row in rows})
            return count

        count = 0
        for name in (ENTRIES, COUNTERS):
            count += await self._run(name, delete)
            with contextlib.suppress(Exception):  # give the freed space back (WAL)
                await self._run(name, lambda c: c._sql(checkpoint).fetchall())
        self._stores.delete_damaged()
        return count

    async def prune(self, prefix: str, expired: Callable[[str], bool]) -> int:
        lo, hi = _key_range(prefix)
        now = time.time()
        # diskcache has no range delete on tags; this is its own Cache.expire() loop, on `tag`
        # (indexed, the entry's own expiry) instead of `expire_time`, 100 rows per transaction.
        select = (
            "SELECT rowid, filename FROM Cache WHERE rowid > ? AND key >= ? AND key < ?"
            " AND tag IS NOT NULL AND tag <= ? ORDER BY rowid LIMIT 100"
        )
        return await self._run(ENTRIES, lambda c: int(c._select_delete(select, [0, lo, hi, now])))


def _text(value: Any) -> str | None:
    """A stored entry: JSON text (anything else is a tampered store: the caller's miss)."""
    if value is not None and not isinstance(value, str):
        raise ValueError(f"stored value is {type(value).__name__}, not JSON text")
    return value


def _write(
    key: str, value: str, ttl_s: float | None, expires: float | None
) -> Callable[[diskcache.Cache], None]:
    def write(c: diskcache.Cache) -> None:
        # The tag is the entry's own expiry, so prune can select on it (indexed).
        c.set(key, value, expire=ttl_s, tag=expires)
        evict_others(c, keep=key)

    return write


def _release(key: str, token: str) -> Callable[[diskcache.Cache], None]:
    """Delete the lock only if it still holds our token (it may have expired and been retaken)."""

    def release(c: diskcache.Cache) -> None:
        with c.transact():
            if c.get(key) == token:
                c.delete(key)

    return release


def _bump(deltas: Mapping[str, int], ttl_s: float | None) -> Callable[[diskcache.Cache], list[int]]:
    """The op adding every delta at once (ttl_s: each counter expires that long after)."""

    def bump(c: diskcache.Cache) -> list[int]:
        with c.transact():  # all counters of one event move together
            if ttl_s is None:
                return [int(c.incr(name, delta)) for name, delta in deltas.items()]
            values = []
            for name, delta in deltas.items():
                old = c.get(name, 0)
                value = (old if isinstance(old, int) else 0) + delta
                c.set(name, value, expire=ttl_s)
                values.append(value)
            return values

    return bump


def _spend_epoch(c: diskcache.Cache, keys: SpendKeys, epoch: str, ttl_s: float) -> str:
    """The day's epoch (set to `epoch` when the store holds none), kept as long as the day."""
    held = c.get(keys.epoch)
    day = held if isinstance(held, str) else epoch
    c.set(keys.epoch, day, expire=ttl_s)
    return day


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


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
