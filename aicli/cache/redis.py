"""The Redis cache backend (redis.asyncio): one Redis shared by every process and machine.

Imported only when the backend is Redis. Every operation is bounded by `timeout_s` with no
retries, so a dead or hung Redis costs one short wait; each failure becomes CacheUnavailable with
a message that never holds the password. Counters move in one MULTI (INCRBY, EXPIRE); the daily
spend in one Lua script per operation; locks are SET NX PX and released only by their holder;
clear and prune walk the prefix with SCAN and UNLINK in batches, never FLUSHDB.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from aicli import install_hint
from aicli.cache.backend import EntryFacts, SpendKeys
from aicli.errors import CacheError, CacheUnavailable
from aicli.scrub import register_secret, url_secrets, without_credentials

if TYPE_CHECKING:
    from aicli.config import Config

DEFAULT_URL = "redis://localhost:6379/0"
_BATCH = 500
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)
# Prune deletes a key only if it still holds the value it judged expired (by SHA-1): another
# process may have written a fresh answer there since the MGET.
_UNLINK_IF_SAME = """
local n = 0
for i, key in ipairs(KEYS) do
  local value = redis.call('get', key)
  if value and redis.sha1hex(value) == ARGV[i] then n = n + redis.call('unlink', key) end
end
return n
"""
# The daily spend (KEYS: spent, reserved, ticket). Counters are integer nano-dollars, checked and
# moved in one script: never read-modify-write from a client.
# (Numbers go to redis.call as the strings they came in as: Lua would print a large one as 1e+15.)
_SPEND_EPOCH = """
local epoch = redis.call('get', KEYS[4])
if not epoch then epoch = ARGV[4] end
redis.call('set', KEYS[4], epoch, 'px', ARGV[3])
"""
_SPEND_RESERVE = (
    _SPEND_EPOCH
    + """
local spent = tonumber(redis.call('get', KEYS[1]) or '0')
local reserved = tonumber(redis.call('get', KEYS[2]) or '0')
local held = redis.call('get', KEYS[3])
if held then return {held ~= 'done' and 1 or 0, spent, reserved, epoch} end
if spent + reserved + tonumber(ARGV[1]) > tonumber(ARGV[2]) then
  return {0, spent, reserved, epoch}
end
reserved = redis.call('incrby', KEYS[2], ARGV[1])
redis.call('pexpire', KEYS[2], ARGV[3])
redis.call('set', KEYS[3], ARGV[1], 'px', ARGV[3])
return {1, spent, reserved, epoch}
"""
)
_SPEND_SETTLE = (
    _SPEND_EPOCH
    + """
local held = redis.call('get', KEYS[3])
local reserved = tonumber(redis.call('get', KEYS[2]) or '0')
if held == 'done' then
  return {0, tonumber(redis.call('get', KEYS[1]) or '0'), reserved, epoch}
end
if held then
  reserved = redis.call('decrby', KEYS[2], held)
  if reserved < 0 then
    redis.call('set', KEYS[2], '0')
    reserved = 0
  end
  redis.call('pexpire', KEYS[2], ARGV[3])
end
local spent = redis.call('incrby', KEYS[1], ARGV[1])
redis.call('pexpire', KEYS[1], ARGV[3])
redis.call('set', KEYS[3], 'done', 'px', ARGV[2])
return {1, spent, reserved, epoch}
"""
)
T = TypeVar("T")


def redis_url(cfg: Config) -> str:
    """The env var cache.url_env names (it may hold a password), else cache.url, else localhost."""
    name = cfg.cache.url_env
    from_env = os.environ.get(name, "").strip() if name else ""
    return from_env or cfg.cache.url or DEFAULT_URL


def hide_password(url: str) -> str:
    """The URL as it may be shown: the password in it and every credential in its query
    (`?password=`, `username=`: redis-py reads both) replaced by ***."""
    return without_credentials(url, keep_user=True)


class RedisBackend:
    """Strings, counters and locks in one Redis; connects on first use."""

    name = "redis"

    def __init__(self, url: str, *, timeout_s: float = 1.0) -> None:
        self.location = hide_password(url)
        self.timeout_s = timeout_s
        self._url = url
        self._secrets = url_secrets(url)  # userinfo and query: never in a message
        for secret in self._secrets:
            register_secret(secret)  # scrub() then hides it from every log line too
        self._client: Any = None

    def _redis(self) -> Any:
        if self._client is None:
            try:
                import redis.asyncio as aioredis
                from redis.asyncio.retry import Retry
                from redis.backoff import NoBackoff
            except ImportError:
                raise CacheError(
                    "cache.backend is redis but the redis client is not installed",
                    f"{install_hint('redis')}, or set cache.backend: disk",
                ) from None
            try:
                self._client = aioredis.Redis.from_url(
                    self._url,
                    socket_timeout=self.timeout_s,
                    socket_connect_timeout=self.timeout_s,
                    retry=Retry(NoBackoff(), 0),  # no retry storm against a dead server
                    retry_on_timeout=False,
                    decode_responses=True,
                    health_check_interval=0,
                )
            except ValueError as exc:
                raise CacheError(
                    f"the Redis URL {self.location} is invalid: {self._scrub(str(exc))}",
                    "use redis://host:port/db, rediss://... or unix:///path",
                ) from None
        return self._client

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    async def _do(self, op: Callable[[Any], Awaitable[T]]) -> T:
        """One bounded operation; any failure becomes CacheUnavailable (password never shown)."""
        from redis.exceptions import RedisError

        client = self._redis()
        try:
            return await asyncio.wait_for(op(client), self.timeout_s)
        except asyncio.TimeoutError:
            raise CacheUnavailable(
                f"Redis did not answer within {self.timeout_s:g} s",
                "check the server, or raise cache.timeout_seconds",
            ) from None
        except (RedisError, OSError) as exc:
            text = self._scrub(str(exc)) or type(exc).__name__
            raise CacheUnavailable(
                f"{type(exc).__name__}: {text[:200]}",
                f"check that Redis at {self.location} is up and the URL is right",
            ) from None

    async def _cmd(self, command: str, *args: Any, **kwargs: Any) -> Any:
        """One Redis command by its client method name, bounded like every operation."""
        return await self._do(lambda r: getattr(r, command)(*args, **kwargs))

    # ---- CacheBackend ------------------------------------------------------------------------

    async def get(self, key: str) -> str | None:
        value = await self._do(lambda r: r.get(key))
        return value if value is None else str(value)

    async def set(
        self, key: str, value: str, *, ttl_s: float | None, expires: float | None
    ) -> None:
        px = None if ttl_s is None else max(1, int(ttl_s * 1000))
        await self._do(lambda r: r.set(key, value, px=px))

    async def delete(self, key: str) -> None:
        await self._do(lambda r: r.unlink(key))

    async def incr(self, deltas: Mapping[str, int], *, ttl_s: float | None = None) -> list[int]:
        async def bump(r: Any) -> list[int]:
            async with r.pipeline(transaction=True) as pipe:  # MULTI ... EXEC
                for name, delta in deltas.items():
                    pipe.incrby(name, delta)
                    if ttl_s is not None:
                        pipe.pexpire(name, max(1, int(ttl_s * 1000)))
                done = await pipe.execute()
            step = 1 if ttl_s is None else 2
            return [int(v) for v in done[::step]]

        return await self._do(bump)

    # ---- SpendBackend ------------------------------------------------------------------------

    async def spend_reserve(
        self, keys: SpendKeys, nano: int, cap: int, epoch: str, *, ttl_s: float
    ) -> tuple[bool, int, int, str]:
        args = (str(nano), str(cap), _ms(ttl_s), epoch)
        return _spend(await self._cmd("eval", _SPEND_RESERVE, 4, *_spend_keys(keys), *args))

    async def spend_settle(
        self, keys: SpendKeys, nano: int, epoch: str, *, ttl_s: float, done_ttl_s: float
    ) -> tuple[bool, int, int, str]:
        args = (str(nano), _ms(done_ttl_s), _ms(ttl_s), epoch)
        return _spend(await self._cmd("eval", _SPEND_SETTLE, 4, *_spend_keys(keys), *args))

    @contextlib.asynccontextmanager
    async def lock(self, key: str, *, ttl_s: float) -> AsyncIterator[bool]:
        token = os.urandom(8).hex()
        px = max(1, int(ttl_s * 1000))
        taken = bool(await self._do(lambda r: r.set(key, token, nx=True, px=px)))
        try:
            yield taken
        finally:
            if taken:  # only the holder's token is deleted; a failed release just expires
                with contextlib.suppress(CacheUnavailable):
                    await self._do(lambda r: r.eval(_RELEASE, 1, key, token))

    async def reset(self) -> None:
        """Drop every pooled connection (after an outage they are dead): the next command
        connects afresh."""
        await self.aclose()

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.aclose(), self.timeout_s)

    # ---- CacheAdmin --------------------------------------------------------------------------

    async def read_counters(self, keys: Sequence[str]) -> list[int]:
        values = await self._do(lambda r: r.mget(list(keys)))
        return [_count(v) for v in values]

    async def _scan(self, prefix: str) -> AsyncIterator[list[str]]:
        """The keys under prefix, a batch at a time (SCAN: never blocks the server)."""
        cursor: Any = 0
        pattern = prefix + "*"  # the namespace is validated: no glob characters in it
        while True:
            cursor, keys = await self._cmd("scan", cursor=cursor, match=pattern, count=_BATCH)
            if keys:
                yield [str(k) for k in keys]
            if int(cursor) == 0:
                return

    async def facts(self, prefix: str, created: Callable[[str], float | None]) -> EntryFacts:
        count, size = 0, 0
        oldest: float | None = None
        newest: float | None = None
        async for keys in self._scan(prefix):
            values = await self._cmd("mget", keys)
            sizes = await self._do(partial(_memory_usage, keys=keys))
            for value, used in zip(values, sizes, strict=True):
                if value is None:
                    continue  # expired between SCAN and MGET
                count += 1
                size += int(used or 0)
                when = created(str(value))
                if when is not None:
                    oldest = when if oldest is None else min(oldest, when)
                    newest = when if newest is None else max(newest, when)
        return EntryFacts(count, size, oldest, newest)

    async def delete_prefix(self, prefix: str) -> int:
        count = 0
        async for keys in self._scan(prefix):
            count += int(await self._cmd("unlink", *keys))
        return count

    async def prune(self, prefix: str, expired: Callable[[str], bool]) -> int:
        count = 0
        async for keys in self._scan(prefix):
            values = await self._cmd("mget", keys)
            pairs = zip(keys, values, strict=True)
            gone = {k: _sha1(str(v)) for k, v in pairs if v is not None and expired(str(v))}
            if gone:
                count += int(
                    await self._cmd("eval", _UNLINK_IF_SAME, len(gone), *gone, *gone.values())
                )
        return count


async def _memory_usage(r: Any, *, keys: list[str]) -> list[Any]:
    async with r.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key)
        return list(await pipe.execute())


def _spend_keys(keys: SpendKeys) -> tuple[str, str, str, str]:
    return keys.spent, keys.reserved, keys.ticket, keys.epoch


def _spend(reply: Any) -> tuple[bool, int, int, str]:
    taken, spent, reserved, epoch = reply
    return bool(taken), int(spent), int(reserved), str(epoch)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _sha1(text: str) -> str:
    import hashlib

    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def _count(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 0
    return max(0, number)
