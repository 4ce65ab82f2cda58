"""ResponseCache and cache_key against a real diskcache in temporary directories."""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from aicli.cache import CacheEntry, ResponseCache, cache_key, resolve_cache_dir
from aicli.errors import CacheError
from aicli.types import Usage
from tests.test_cache_cli import STATS_FIELDS

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
    return cache_key(**{**BASE, **changes})


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


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def cache(cache_dir: Path) -> Any:
    with ResponseCache(cache_dir) as c:
        yield c


# ---- keys ------------------------------------------------------------------------------------


CHANGES: dict[str, Any] = {
    "base_url": "https://other.example.com/v1",
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "Say hi"}],  # system message dropped
    "max_tokens": 101,
    "temperature": 0.4,
    "seed": 8,
    "schema": {"type": "object"},
    "template_checksum": "ba9876543210",
}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_every_field_changes_the_key(field: str) -> None:
    assert key(**{field: CHANGES[field]}) != key()


@pytest.mark.parametrize(
    "field", ["max_tokens", "temperature", "seed", "schema", "template_checksum"]
)
def test_none_differs_from_a_value(field: str) -> None:
    assert key(**{field: None}) != key()


def test_message_details_change_the_key() -> None:
    msgs = BASE["messages"]
    variants = [
        [msgs[0], {"role": "user", "content": "Say hi!"}],  # content
        [msgs[0], {"role": "assistant", "content": "Say hi"}],  # role
        [{"role": "system", "content": "You are verbose."}, msgs[1]],  # system text
        [msgs[1], msgs[0]],  # order
        [*msgs, {"role": "user", "content": ""}],  # one more message
    ]
    keys = {key(messages=v) for v in variants} | {key()}
    assert len(keys) == len(variants) + 1


def test_key_ignores_dict_order_trailing_slash_and_int_floats() -> None:
    reordered_msgs = [{"content": m["content"], "role": m["role"]} for m in BASE["messages"]]
    reordered_schema = {"properties": {"a": {"type": "string"}}, "type": "object"}
    same = [
        key(messages=reordered_msgs, schema=reordered_schema),
        key(base_url=BASE["base_url"] + "/"),
        key(),
    ]
    assert len(set(same)) == 1
    assert key(temperature=1) == key(temperature=1.0)


def test_key_is_stable_hex_sha256_and_ignores_extra_message_fields() -> None:
    k = key()
    assert re.fullmatch(r"[0-9a-f]{64}", k)
    # the request id (or anything else riding along on a message) is not part of the key
    noisy = [{**m, "request_id": "abc", "name": "x"} for m in BASE["messages"]]
    assert key(messages=noisy) == k
    # a golden value: changing the serialisation silently would orphan every shared CI cache
    assert k == cache_key(**BASE)
    assert k == "7510acf80f15893572753a186a003d157030de04adc8dd27da99e46102862440"


def test_unicode_is_hashed_as_utf8() -> None:
    assert key(messages=[{"role": "user", "content": "héllo ✓"}]) != key(
        messages=[{"role": "user", "content": "hello ✓"}]
    )


# ---- entries ---------------------------------------------------------------------------------


def test_round_trip_and_miss(cache: ResponseCache) -> None:
    k = key()
    assert cache.get(k) is None
    e = entry("réponse ✓ " * 3)
    cache.set(k, e)
    assert cache.get(k) == e
    # another instance (as another process would) sees the same entry
    with ResponseCache(cache.directory) as other:
        assert other.get(k) == e


def test_large_entry_stored_in_a_file_round_trips(cache: ResponseCache) -> None:
    e = entry("x" * 100_000)
    cache.set("big", e)
    files = list((cache.directory / "entries").rglob("*.val"))
    assert len(files) == 1
    assert cache.get("big") == e


def test_set_replaces_and_never_caches_empty_answers(cache: ResponseCache) -> None:
    cache.set("k", entry("first"))
    cache.set("k", entry("second"))
    got = cache.get("k")
    assert got is not None and got.content == "second"
    cache.set("empty", entry(""))
    assert cache.get("empty") is None
    assert cache.stats()["entries"] == 1


def test_to_dict_from_dict_round_trip_and_validation() -> None:
    e = entry(ttl=None)
    data = e.to_dict()
    assert data["version"] == 1 and data["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
    }
    assert CacheEntry.from_dict(data) == e
    assert CacheEntry.from_dict({**data, "cost_usd": 0, "future_field": 1}).cost_usd == 0.0
    for bad in (
        [],
        {**data, "content": None},
        {**data, "usage": "15"},
        {**data, "usage": {**data["usage"], "total_tokens": "15"}},
        {**data, "cost_usd": True},
        {**data, "expires": "tomorrow"},
        {k: v for k, v in data.items() if k != "created"},
    ):
        with pytest.raises(ValueError):
            CacheEntry.from_dict(bad)


def test_expired_entries_are_still_returned(cache: ResponseCache) -> None:
    cache.set("old", entry("old", ttl=-1))
    cache.set("forever", entry("forever", ttl=None))
    old = cache.get("old")
    assert old is not None and old.expired()
    assert not old.expired(now=old.expires - 1)  # type: ignore[operator]
    forever = cache.get("forever")
    assert forever is not None and not forever.expired(now=time.time() + 10**9)


def test_prune_drops_only_expired(cache: ResponseCache) -> None:
    for i in range(5):
        cache.set(f"old{i}", entry(f"old{i}", ttl=-10))
    cache.set("big-old", entry("y" * 50_000, ttl=-10))  # its value file goes too
    cache.set("fresh", entry("fresh", ttl=3600))
    cache.set("forever", entry("forever", ttl=None))
    assert cache.prune() == 6
    assert cache.prune() == 0
    assert cache.get("old0") is None and cache.get("big-old") is None
    assert cache.get("fresh") is not None and cache.get("forever") is not None
    assert not list((cache.directory / "entries").rglob("*.val"))
    assert cache.stats()["entries"] == 2


# ---- counters and stats ----------------------------------------------------------------------


def test_stats_fields_and_counters(cache: ResponseCache) -> None:
    s = cache.stats()
    assert list(s) == STATS_FIELDS
    assert s["directory"] == str(cache.directory)
    assert (s["entries"], s["hits"], s["misses"], s["hit_rate"]) == (0, 0, 0, 0.0)
    assert (s["tokens_saved"], s["cost_saved_usd"]) == (0, 0.0)
    assert (s["oldest"], s["newest"]) == (None, None)

    cache.set("a", entry("a"))
    time.sleep(1.1)
    cache.set("b", entry("b"))
    e = entry(usage=Usage(100, 50, 150), cost_usd=0.0000015)
    for _ in range(3):
        cache.record_hit(e)
    cache.record_miss()
    s = cache.stats()
    assert (s["entries"], s["hits"], s["misses"], s["hit_rate"]) == (2, 3, 1, 0.75)
    assert s["tokens_saved"] == 450
    assert s["cost_saved_usd"] == pytest.approx(0.0000045, abs=1e-12)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s["oldest"])
    assert s["oldest"] < s["newest"]
    on_disk = sum(p.stat().st_size for p in cache.directory.rglob("*") if p.is_file())
    assert s["size_bytes"] == on_disk > 0


def test_clear_empties_entries_and_resets_counters(cache: ResponseCache) -> None:
    for i in range(3):
        cache.set(f"k{i}", entry(f"v{i}"))
    cache.set("big", entry("z" * 50_000))
    cache.record_hit(entry())
    cache.record_miss()
    assert cache.clear() == 4
    s = cache.stats()
    assert (s["entries"], s["hits"], s["misses"], s["tokens_saved"]) == (0, 0, 0, 0)
    assert cache.get("k0") is None
    assert not list((cache.directory / "entries").rglob("*.val"))


def _hammer(directory: str, worker: int, rounds: int) -> None:
    with ResponseCache(directory) as c:
        hit = entry(usage=Usage(2, 1, 3), cost_usd=0.000001)
        for i in range(rounds):
            c.record_hit(hit)
            c.record_miss()
            if i % 5 == 0:
                c.set(f"w{worker}-{i}", entry(f"answer {worker} {i}"))
                assert c.get(f"w{worker}-{i}") is not None


def test_counters_add_up_across_concurrent_processes(cache_dir: Path) -> None:
    workers, rounds = 8, 50
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(str(cache_dir), w, rounds)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * workers
    with ResponseCache(cache_dir) as c:
        s = c.stats()
    total = workers * rounds
    assert (s["hits"], s["misses"], s["hit_rate"]) == (total, total, 0.5)
    assert s["tokens_saved"] == 3 * total
    assert s["cost_saved_usd"] == pytest.approx(0.000001 * total, abs=1e-12)
    assert s["entries"] == workers * rounds // 5


# ---- size limit ------------------------------------------------------------------------------


def test_size_limit_evicts_least_recently_used(cache_dir: Path) -> None:
    chunk = 50 * 1024  # each value lands in its own ~50 KiB file
    with ResponseCache(cache_dir, size_limit_mb=1) as c:
        for i in range(40):
            c.set(f"k{i}", entry(f"{i}:" + "x" * chunk))
            assert c.get("k0") is not None  # k0 stays the most recently used
        assert c.get("k1") is None  # the least recently used went first
        assert c.get("k39") is not None
        s = c.stats()
    assert s["entries"] < 40
    assert s["size_bytes"] < 1.5 * 1024 * 1024


# ---- safety ----------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b" / "cache"
    old = os.umask(0)
    try:
        c = ResponseCache(directory)
        assert not directory.exists()  # nothing touches the disk until first use
        c.set("big", entry("q" * 50_000))
        c.set("small", entry("small"))
        c.record_hit(entry())
        assert os.umask(0) == 0  # our umask was put back
    finally:
        os.umask(old)
    for folder in (tmp_path / "a", tmp_path / "a" / "b", directory):
        assert _mode(folder) == 0o700, folder
    for path in directory.rglob("*"):
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), path
    assert any(p.suffix == ".val" for p in directory.rglob("*"))
    c.close()


def test_existing_loose_cache_directory_is_tightened(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o755)
    empty.chmod(0o755)
    ResponseCache(empty).stats()
    assert _mode(empty) == 0o700
    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    unrelated.chmod(0o755)
    (unrelated / "notes.txt").write_text("mine")
    ResponseCache(unrelated).stats()
    assert _mode(unrelated) == 0o755  # not obviously ours: left alone


def test_world_writable_directory_is_refused(cache_dir: Path) -> None:
    cache_dir.mkdir()
    cache_dir.chmod(0o777)
    with pytest.raises(CacheError) as info:
        ResponseCache(cache_dir).get("k")
    assert info.value.exit_code == 2
    assert "every user can write" in info.value.message
    assert "chmod 700" in (info.value.hint or "")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
@pytest.mark.parametrize("which", ["top", "entries"])
def test_directory_owned_by_another_user_is_refused(cache_dir: Path, which: str) -> None:
    cache_dir.mkdir(mode=0o700)
    target = cache_dir if which == "top" else cache_dir / "entries"
    target.mkdir(mode=0o700, exist_ok=True)
    os.chown(target, 12345, 12345)
    with pytest.raises(CacheError) as info:
        ResponseCache(cache_dir).set("k", entry())
    assert "owned by another user (uid 12345)" in info.value.message
    assert "AICLI_CACHE_DIR" in (info.value.hint or "")


def test_a_file_as_cache_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(CacheError, match="not a directory"):
        ResponseCache(path).stats()


# ---- corruption ------------------------------------------------------------------------------


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


def test_garbage_in_a_value_file_is_a_miss_with_a_warning(
    cache: ResponseCache, caplog: pytest.LogCaptureFixture
) -> None:
    cache.set("big", entry("b" * 60_000))
    cache.set("other", entry("other"))
    (val,) = (cache.directory / "entries").rglob("*.val")
    val.write_bytes(b"\xff\xfe\x00garbage")
    with caplog.at_level(logging.WARNING, logger="aicli"):
        assert cache.get("big") is None
    assert "unreadable" in caplog.text and "miss" in caplog.text
    assert cache.stats()["entries"] == 1  # the bad entry was deleted ...
    assert cache.get("other") is not None  # ... and the rest stays readable


def test_truncated_value_file_is_a_miss(cache: ResponseCache) -> None:
    cache.set("big", entry("b" * 60_000))
    (val,) = (cache.directory / "entries").rglob("*.val")
    val.write_bytes(val.read_bytes()[:1000])
    assert cache.get("big") is None
    assert cache.get("big") is None


@pytest.mark.parametrize("value", ["{not json", "[1, 2]", '{"content": 3}', b"bytes", 42])
def test_malformed_inline_values_are_misses(
    cache: ResponseCache, caplog: pytest.LogCaptureFixture, value: Any
) -> None:
    cache.set("good", entry())
    raw = _raw_store(cache.directory)
    raw.set("bad", value)
    raw.close()
    with caplog.at_level(logging.WARNING, logger="aicli"):
        assert cache.get("bad") is None
    assert "cache entry bad" in caplog.text
    assert cache.get("good") is not None


def test_pickled_values_are_never_unpickled(
    cache: ResponseCache, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "pwned"
    cache.stats()  # creates the store
    raw = _raw_store(cache.directory)
    raw.set("evil", _Evil(str(marker)))
    raw.set("evil-big", [_Evil(str(marker)), "p" * 60_000])
    raw.close()
    with caplog.at_level(logging.WARNING, logger="aicli"):
        assert cache.get("evil") is None
        assert cache.get("evil-big") is None
    assert not marker.exists()
    assert "refused a pickled value" in caplog.text


def _fill(directory: Path, n: int = 300) -> None:
    with ResponseCache(directory) as c:
        for i in range(n):
            c.set(f"k{i}", entry(f"value {i} " + "v" * 300))
        c.record_hit(entry())


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_database_is_moved_aside_and_replaced(
    cache_dir: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    _fill(cache_dir)
    db = cache_dir / "entries" / "cache.db"
    if damage == "truncate":
        with db.open("r+b") as f:
            f.truncate(db.stat().st_size // 3)
    else:
        db.write_bytes(b"this is not sqlite at all\n" * 200)
    with caplog.at_level(logging.WARNING, logger="aicli"), ResponseCache(cache_dir) as c:
        for i in (1, 150, 299):
            c.get(f"k{i}")  # never raises
        assert "was damaged" in caplog.text and "started a fresh one" in caplog.text
        c.set("new", entry("new"))
        assert c.get("new") is not None
        s = c.stats()
        assert s["entries"] == 1 and s["hits"] == 1  # counters live apart and survived
        (aside,) = cache_dir.glob("entries.corrupt-*")
        assert (aside / "cache.db").exists()
        c.clear()
        assert not list(cache_dir.glob("entries.corrupt-*"))


def test_damaged_counters_restart_at_zero(
    cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _fill(cache_dir, 3)
    (cache_dir / "counters" / "cache.db").write_bytes(b"\x00garbage" * 500)
    with caplog.at_level(logging.WARNING, logger="aicli"), ResponseCache(cache_dir) as c:
        s = c.stats()
    assert (s["entries"], s["hits"]) == (3, 0)
    assert "counters restart at 0" in caplog.text


# ---- location and import cost ----------------------------------------------------------------


def test_resolve_cache_dir_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("AICLI_CACHE_DIR", raising=False)
    cfg = SimpleNamespace(cache=SimpleNamespace(dir=None), config_dir=tmp_path / "conf")
    assert resolve_cache_dir(cfg) == tmp_path / "xdg" / "aicli"
    assert resolve_cache_dir(None) == tmp_path / "xdg" / "aicli"
    cfg.cache.dir = "rel/cache"
    assert resolve_cache_dir(cfg) == tmp_path / "conf" / "rel" / "cache"
    cfg.cache.dir = "~/c"
    assert resolve_cache_dir(cfg) == Path.home() / "c"
    monkeypatch.setenv("AICLI_CACHE_DIR", str(tmp_path / "env"))
    assert resolve_cache_dir(cfg) == tmp_path / "env"


def test_from_config_uses_size_limit(tmp_path: Path) -> None:
    cfg = SimpleNamespace(cache=SimpleNamespace(dir=str(tmp_path / "c"), size_limit_mb=3))
    c = ResponseCache.from_config(cfg)
    assert c.directory == tmp_path / "c" and c.size_limit_bytes == 3 * 1024 * 1024


def test_import_is_light() -> None:
    code = (
        "import sys, aicli.cache\n"
        "heavy = {'diskcache', 'sqlite3', 'openai', 'httpx', 'httpx2', 'jsonschema',"
        " 'platformdirs'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    assert done.stdout.strip() == "[]"
