"""`aicli cache stats | clear | prune` through the CLI, in-process and as real subprocesses.

Tests taking `store` run on the disk cache and on a real Redis.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aicli.cache import CacheEntry, ResponseCache
from aicli.types import Usage

STATS_FIELDS = [
    "directory",
    "backend",
    "location",
    "entries",
    "size_bytes",
    "hits",
    "misses",
    "hit_rate",
    "tokens_saved",
    "cost_saved_usd",
    "oldest",
    "newest",
]


def entry(content: str = "answer", ttl: float | None = 3600) -> CacheEntry:
    now = time.time()
    return CacheEntry(
        content=content,
        model_used="gpt-4o-mini",
        provider="openai",
        tier="standard",
        usage=Usage(100, 20, 120),
        cost_usd=0.0000270,
        latency_ms=812.0,
        created=now,
        expires=None if ttl is None else now + ttl,
        template_checksum=None,
    )


@dataclass
class Store:
    """The cache the CLI under test uses: where it is, and how to fill it from the test."""

    backend: str
    location: str
    directory: Path | None
    namespace: str = "aicli"

    def open(self) -> ResponseCache:
        if self.directory is not None:
            from aicli.cache.disk import DiskBackend

            return ResponseCache(DiskBackend(self.directory))
        from aicli.cache.redis import RedisBackend

        return ResponseCache(RedisBackend(self.location), namespace=self.namespace, stale_for=60)

    def fill(self, fresh: int = 2, expired: int = 0, hits: int = 0, misses: int = 0) -> None:
        async def go() -> None:
            c = self.open()
            try:
                for i in range(fresh):
                    await c.set(f"fresh{i}", entry(f"fresh {i}"))
                for i in range(expired):
                    await c.set(f"old{i}", entry(f"old {i}", ttl=-5))
                for _ in range(hits):
                    await c.record_hit(entry())
                for _ in range(misses):
                    await c.record_miss()
            finally:
                await c.aclose()

        asyncio.run(go())


@pytest.fixture(params=["disk", "redis"])
def store(
    request: pytest.FixtureRequest, isolate: Any, make_config: Any, monkeypatch: pytest.MonkeyPatch
) -> Store:
    if request.param == "disk":
        return Store("disk", str(isolate.cache_dir), isolate.cache_dir)
    server = request.getfixturevalue("redis_server")
    namespace = request.getfixturevalue("redis_ns")
    make_config(cache={"namespace": namespace})
    monkeypatch.setenv("AICLI_CACHE_BACKEND", "redis")
    monkeypatch.setenv("AICLI_REDIS_URL", server.url)
    return Store("redis", server.url, None, namespace)


def fill(directory: Path, fresh: int = 2, expired: int = 0, hits: int = 0, misses: int = 0) -> None:
    Store("disk", str(directory), directory).fill(fresh, expired, hits, misses)


def stats_json(cli: Any, *args: str) -> dict[str, Any]:
    done = cli("cache", "stats", "--json", *args)
    assert done.exit_code == 0, done
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def test_stats_on_an_empty_cache(cli: Any, store: Store) -> None:
    data = stats_json(cli)
    # and the service's daily spend, which is not a cache counter (tests/test_spend_*.py)
    assert list(data) == [*STATS_FIELDS, "spend_today_usd"]
    assert data["directory"] == (None if store.directory is None else str(store.directory))
    assert (data["backend"], data["location"]) == (store.backend, store.location)
    assert {k: data[k] for k in STATS_FIELDS[3:] if k != "size_bytes"} == {
        "entries": 0,
        "hits": 0,
        "misses": 0,
        "hit_rate": 0.0,
        "tokens_saved": 0,
        "cost_saved_usd": 0.0,
        "oldest": None,
        "newest": None,
    }
    assert data["spend_today_usd"] == 0.0
    assert isinstance(data["size_bytes"], int)

    done = cli("cache", "stats")
    assert done.exit_code == 0, done
    assert done.stderr == ""
    lines = dict(line.split("  ", 1) for line in done.stdout.splitlines())
    assert [k.strip() for k in lines] == [
        "backend",
        "location",
        "entries",
        "size on disk" if store.backend == "disk" else "memory used",
        "hits",
        "misses",
        "hit rate",
        "tokens saved",
        "cost saved",
        "oldest entry",
        "newest entry",
        "spent today",
    ]
    values = {k.strip(): v.strip() for k, v in lines.items()}
    assert values["location"] == store.location
    assert values["entries"] == "0" and values["hit rate"] == "-"
    assert values["oldest entry"] == "-"


def test_stats_after_entries_and_lookups(cli: Any, store: Store) -> None:
    store.fill(fresh=3, expired=1, hits=3, misses=1)
    data = stats_json(cli)
    assert (data["entries"], data["hits"], data["misses"], data["hit_rate"]) == (4, 3, 1, 0.75)
    assert data["tokens_saved"] == 360
    assert data["cost_saved_usd"] == pytest.approx(0.000081, abs=1e-12)
    assert data["oldest"].endswith("Z") and data["newest"].endswith("Z")
    assert data["size_bytes"] > 0

    text = cli("cache", "stats").stdout
    assert "75.0% (3 of 4 lookups)" in text
    assert "$0.000081" in text and "360" in text
    assert "KiB" in text or store.backend == "redis"


def test_stats_as_a_table_on_a_terminal(
    cli: Any, isolate: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(isolate.cache_dir, hits=1)
    monkeypatch.setattr("aicli.cli.cache.is_tty", lambda stream=None: True)
    done = cli("cache", "stats")
    assert done.exit_code == 0, done
    assert "aicli cache" in done.stdout and "hit rate" in done.stdout
    assert "100.0%" in done.stdout


def test_counters_persist_across_processes(run_aicli: Any, store: Store) -> None:
    store.fill(fresh=1, hits=2, misses=2)
    done = run_aicli("cache", "stats", "--json")
    assert done.exit_code == 0, done
    data = json.loads(done.stdout)
    assert (data["entries"], data["hits"], data["misses"]) == (1, 2, 2)


def test_clear_with_yes(cli: Any, store: Store) -> None:
    store.fill(fresh=2, hits=1)
    done = cli("cache", "clear", "--yes")
    assert done.exit_code == 0, done
    assert done.stdout == f"cleared 2 entries from {store.location}; counters reset\n"
    data = stats_json(cli)
    assert (data["entries"], data["hits"]) == (0, 0)
    store.fill(fresh=1)
    done = cli("cache", "clear", "-y", "--json")
    directory = None if store.directory is None else str(store.directory)
    assert json.loads(done.stdout) == {
        "cleared": 1,
        "directory": directory,
        "location": store.location,
    }


def test_clear_from_a_script_does_not_ask(run_aicli: Any, store: Store) -> None:
    store.fill(fresh=2)
    done = run_aicli("cache", "clear")  # stdin is not a terminal: nobody could answer
    assert done.exit_code == 0, done
    assert done.stdout == f"cleared 2 entries from {store.location}; counters reset\n"
    assert done.stderr == ""
    assert stats_json_sub(run_aicli)["entries"] == 0


def stats_json_sub(run_aicli: Any) -> dict[str, Any]:
    done = run_aicli("cache", "stats", "--json")
    assert done.exit_code == 0, done
    data: dict[str, Any] = json.loads(done.stdout)
    return data


@pytest.mark.parametrize(("answer", "code", "left"), [("n\n", 0, 2), ("y\n", 0, 0)])
def test_clear_asks_on_a_terminal(
    cli: Any, store: Store, monkeypatch: pytest.MonkeyPatch, answer: str, code: int, left: int
) -> None:
    store.fill(fresh=2)
    monkeypatch.setattr("aicli.cli.cache.is_tty", lambda stream=None: True)
    done = cli("cache", "clear", input=answer)
    assert done.exit_code == code, done
    assert "Delete 2 cached answers" in done.stderr
    assert stats_json(cli)["entries"] == left


def test_prune_counts_expired_entries(cli: Any, store: Store) -> None:
    store.fill(fresh=2, expired=3)
    done = cli("cache", "prune")
    assert done.exit_code == 0, done
    assert done.stdout == "pruned 3 expired entries\n"
    assert stats_json(cli)["entries"] == 2
    assert cli("cache", "prune").stdout == "pruned 0 expired entries\n"
    store.fill(fresh=0, expired=1)
    assert cli("cache", "prune").stdout == "pruned 1 expired entry\n"
    store.fill(fresh=0, expired=2)
    assert json.loads(cli("cache", "prune", "--json").stdout)["pruned"] == 2


def test_damaged_database_warns_once_and_carries_on(run_aicli: Any, isolate: Any) -> None:
    fill(isolate.cache_dir, fresh=5)
    (isolate.cache_dir / "entries" / "cache.db").write_bytes(b"garbage, not sqlite\n" * 100)
    done = run_aicli("cache", "stats", "--json")
    assert done.exit_code == 0, done
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("aicli: warning: ")
    assert "damaged" in done.stderr and "Traceback" not in done.stderr
    assert json.loads(done.stdout)["entries"] == 0


def test_unusable_cache_directory_is_one_error_line(run_aicli: Any, isolate: Any) -> None:
    isolate.cache_dir.mkdir(parents=True)
    isolate.cache_dir.chmod(0o777)
    for args in (("cache", "stats"), ("cache", "prune"), ("cache", "clear", "--yes")):
        done = run_aicli(*args)
        assert done.exit_code == 2, done
        lines = done.stderr.splitlines()
        assert lines[0].startswith("aicli: error: refusing to use the cache directory")
        assert lines[1].startswith("  hint: ") and len(lines) == 2
        assert done.stdout == ""


def test_cache_path_that_is_a_file(run_aicli: Any, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    done = run_aicli("cache", "stats", env={"AICLI_CACHE_DIR": str(blocker / "sub")})
    assert done.exit_code == 2, done
    assert done.stderr.startswith("aicli: error: ")
    assert "Traceback" not in done.stderr


def test_directory_from_config_and_env(
    cli: Any, make_config: Any, isolate: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_config(cache={"dir": "my-cache", "size_limit_mb": 5})
    assert stats_json(cli)["directory"] == str(isolate.work / "my-cache")
    assert stats_json(cli, "--config", str(cfg))["directory"] == str(isolate.work / "my-cache")
    monkeypatch.setenv("AICLI_CACHE_DIR", str(isolate.tmp / "from-env"))
    assert stats_json(cli)["directory"] == str(isolate.tmp / "from-env")


def test_bad_config_is_an_error_not_a_traceback(cli: Any, make_config: Any) -> None:
    make_config(cache={"size_limit_mb": "lots"})
    done = cli("cache", "stats")
    assert done.exit_code == 2, done
    assert "cache.size_limit_mb" in done.stderr


WITHOUT_REDIS = (
    "import sys; sys.modules['redis'] = None; sys.argv = ['aicli', *sys.argv[1:]];"
    " from aicli.cli.app import main; main()"
)


@pytest.mark.parametrize(
    "args",
    [
        ["generate", "-t", "echo", "hi"],
        ["cache", "stats"],
        ["serve", "--port", "1"],
    ],
)
def test_the_redis_backend_without_its_extra_is_exit_2_naming_it(
    make_config: Any, args: list[str]
) -> None:
    """A missing package never fixes itself: exit 2 with the install command, no traceback."""
    import subprocess
    import sys

    from tests.helpers import child_env

    make_config(cache={"backend": "redis", "url": "redis://127.0.0.1:9/0"})
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_REDIS, *args],
        capture_output=True, text=True, env=child_env(None), stdin=subprocess.DEVNULL,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("aicli: error: the redis cache backend"), proc.stderr
    assert "pip install 'aicli-prod[redis]'" in proc.stderr and "Traceback" not in proc.stderr


def test_doctor_reports_the_missing_redis_extra_as_a_config_failure(make_config: Any) -> None:
    import subprocess
    import sys

    from tests.helpers import child_env

    make_config(cache={"backend": "redis", "url": "redis://127.0.0.1:9/0"})
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_REDIS, "doctor", "--offline", "--json"],
        capture_output=True, text=True, env=child_env(None), stdin=subprocess.DEVNULL,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    (cache,) = [c for c in json.loads(proc.stdout)["checks"] if c["name"] == "cache"]
    assert cache["status"] == "fail" and "aicli-prod[redis]" in cache["hint"]
