"""The cache through `aicli generate` in real subprocesses against the test server.

Tests taking `any_backend` run on the disk cache and on a real Redis.
"""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import TEST_KEY, spawn_aicli


def gen(runner: Any, *args: str, code: int = 0) -> dict[str, Any]:
    """`generate --json` through runner (run_aicli: a subprocess, cli: in-process)."""
    done = runner("generate", "--json", *args)
    assert done.exit_code == code, done
    return json.loads(done.stdout) if code == 0 else {"stderr": done.stderr}


def stats(runner: Any) -> dict[str, Any]:
    done = runner("cache", "stats", "--json")
    assert done.exit_code == 0, done
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def test_hit_across_processes(
    run_aicli: Any, server: Any, make_config: Any, any_backend: str
) -> None:
    make_config()
    first = gen(run_aicli, "what is the capital of France?")
    second = gen(run_aicli, "what is the capital of France?")
    assert len(server.requests) == 1
    assert first["cached"] is False and first["attempts"] == 1 and first["cost_usd"] > 0
    assert second["cached"] is True and second["stale"] is False
    assert second["attempts"] == 0 and second["cost_usd"] == 0
    assert second["content"] == first["content"]
    assert second["latency_ms"] == first["latency_ms"]  # the original latency, kept
    assert second["usage"] == first["usage"] and second["model_used"] == first["model_used"]
    assert second["request_id"] != first["request_id"]  # not part of the key
    s = stats(run_aicli)
    assert (s["entries"], s["hits"], s["misses"]) == (1, 1, 1)
    assert s["tokens_saved"] == first["usage"]["total_tokens"]
    assert s["cost_saved_usd"] == pytest.approx(first["cost_usd"], rel=1e-6)


def test_each_request_field_changes_the_key(
    cli: Any, server: Any, make_config: Any, tmp_path: Path, any_backend: str
) -> None:
    make_config()
    server.set_answer("*", '"valid JSON for the schema"')
    schema = tmp_path / "schema.json"
    schema.write_text('{"type": "string"}')
    variants: list[tuple[str, ...]] = [
        (),
        ("-s", "Be brief."),
        ("--temperature", "0.9"),
        ("--seed", "3"),
        ("--max-tokens", "77"),
        ("-m", "other-model"),
        ("-t", "premium"),
        ("--schema", str(schema)),
    ]
    for extra in variants:
        gen(cli, *extra, "same prompt")
    assert len(server.requests) == len(variants)
    for extra in variants:  # and each one now hits
        assert gen(cli, *extra, "same prompt")["cached"] is True
    gen(cli, "same prompt ")  # the prompt itself, of course
    assert len(server.requests) == len(variants) + 1
    assert stats(cli)["entries"] == len(variants) + 1


def test_config_key_order_does_not_matter(
    run_aicli: Any, server: Any, make_config: Any, any_backend: str
) -> None:
    path = make_config()
    gen(run_aicli, "order")
    data = yaml.safe_load(path.read_text())
    reordered = {k: data[k] for k in reversed(list(data))}
    path.write_text(yaml.safe_dump(reordered, sort_keys=True))
    assert gen(run_aicli, "order")["cached"] is True
    assert len(server.requests) == 1


def test_no_cache_neither_reads_nor_writes(
    cli: Any, server: Any, make_config: Any, any_backend: str
) -> None:
    make_config()
    gen(cli, "--no-cache", "one")
    gen(cli, "--no-cache", "one")
    assert len(server.requests) == 2
    assert stats(cli)["entries"] == 0
    gen(cli, "one")
    assert gen(cli, "--no-cache", "one")["cached"] is False
    assert len(server.requests) == 4


def test_refresh_skips_the_read_and_writes(
    cli: Any, server: Any, make_config: Any, any_backend: str
) -> None:
    make_config()
    server.script("standard-model", ["ok:first answer"])
    assert gen(cli, "q")["content"] == "first answer"
    server.script("standard-model", ["ok:second answer"])
    refreshed = gen(cli, "--refresh", "q")
    assert refreshed["content"] == "second answer" and refreshed["cached"] is False
    hit = gen(cli, "q")
    assert hit["cached"] is True and hit["content"] == "second answer"
    assert len(server.requests) == 2


def test_cache_only(run_aicli: Any, server: Any, make_config: Any, any_backend: str) -> None:
    make_config()
    miss = gen(run_aicli, "--cache-only", "never asked", code=3)
    assert "not in the cache" in miss["stderr"] and "Traceback" not in miss["stderr"]
    assert server.requests == []
    gen(run_aicli, "asked")
    hit = gen(run_aicli, "--cache-only", "asked")
    assert hit["cached"] is True and len(server.requests) == 1


def test_ttl_expiry_then_stale_answer_when_the_server_fails(
    run_aicli: Any, server: Any, make_config: Any, any_backend: str
) -> None:
    make_config(defaults={"cache_ttl": 1})
    server.script("standard-model", ["ok:remembered"])
    assert gen(run_aicli, "ttl")["content"] == "remembered"
    time.sleep(1.2)
    # expired: asked again
    server.script("standard-model", ["ok:renewed"])
    assert gen(run_aicli, "ttl")["content"] == "renewed"
    assert len(server.requests) == 2
    time.sleep(1.2)
    # expired and every tier of the chain fails: the expired answer is served, marked stale
    for model in ("standard-model", "economy-model"):
        server.script(model, ["503"] * 5)
    done = run_aicli("generate", "--json", "ttl")
    assert done.exit_code == 0, done
    data = json.loads(done.stdout)
    assert data["stale"] is True and data["cached"] is True and data["content"] == "renewed"
    assert "aicli: warning:" in done.stderr and "stale" in done.stderr
    # three lookups: two misses (first call, expired), one hit (the stale answer served)
    counters = json.loads(run_aicli("cache", "stats", "--json").stdout)
    assert (counters["hits"], counters["misses"]) == (1, 2)
    # no cached answer at all: exit 3
    for model in ("standard-model", "economy-model"):
        server.script(model, ["503"] * 5)
    assert run_aicli("generate", "never cached").exit_code == 3


def test_failed_or_empty_answers_are_not_cached(
    run_aicli: Any, server: Any, make_config: Any, any_backend: str
) -> None:
    make_config()
    for model in ("standard-model", "economy-model"):
        server.script(model, ["500", "500"])
    assert run_aicli("generate", "fails").exit_code == 3
    assert stats(run_aicli)["entries"] == 0


def test_files_owner_only_and_no_key_inside(
    run_aicli: Any, server: Any, make_config: Any, isolate: Any
) -> None:
    make_config()
    gen(run_aicli, "secret-free " + "z" * 40_000)  # large enough for a value file
    files = [p for p in isolate.cache_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".val" for p in files)
    assert stat.S_IMODE(isolate.cache_dir.stat().st_mode) == 0o700
    for p in isolate.cache_dir.rglob("*"):
        assert stat.S_IMODE(p.stat().st_mode) == (0o700 if p.is_dir() else 0o600), p
        if p.is_file():
            assert TEST_KEY.encode() not in p.read_bytes()


def test_unsafe_cache_directory_stops_generate(
    run_aicli: Any, server: Any, make_config: Any, isolate: Any
) -> None:
    make_config()
    isolate.cache_dir.mkdir(parents=True)
    isolate.cache_dir.chmod(0o777)
    done = run_aicli("generate", "hello")
    assert done.exit_code == 2, done
    assert done.stderr.startswith("aicli: error: refusing to use the cache directory")
    assert server.requests == []
    assert run_aicli("generate", "--no-cache", "hello").exit_code == 0  # never opened


def test_damaged_cache_does_not_stop_generate(
    run_aicli: Any, server: Any, make_config: Any, isolate: Any
) -> None:
    make_config()
    gen(run_aicli, "before")
    (isolate.cache_dir / "entries" / "cache.db").write_bytes(b"not a database\n" * 100)
    done = run_aicli("generate", "before")
    assert done.exit_code == 0, done
    assert done.stdout == "before\n"
    assert done.stderr.count("aicli: warning:") == 1 and "Traceback" not in done.stderr
    assert gen(run_aicli, "before")["cached"] is True


@pytest.mark.slow
def test_eight_concurrent_generate_processes(
    run_aicli: Any, server: Any, make_config: Any, any_backend: str
) -> None:
    # Each Redis operation is bounded by cache.timeout_seconds (1 s by default), the first one
    # of a process including its connection; past it the process carries on WITHOUT the cache
    # (one warning, exit 0), so neither its miss nor its entry is counted: (8, 8, 8). With 17
    # processes starting at once on a loaded machine, whether every connection is made within
    # 1 s was a race with the scheduler. This test counts across processes, it does not time
    # Redis (test_cache_redis.py does): give it a bound load cannot reach, and say so if a
    # process still ran without the cache instead of failing on the counts.
    make_config(cache={"timeout_seconds": 60})
    gen(run_aicli, "shared prompt")  # one miss, one entry
    procs = [spawn_aicli("generate", "--json", "shared prompt") for _ in range(8)]
    procs += [spawn_aicli("generate", "--json", f"own prompt {i}") for i in range(8)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "Traceback" not in err
        assert "warning" not in err, err  # e.g. "carrying on without the cache"
        results.append(json.loads(out))
    assert all(r["cached"] for r in results[:8])
    assert not any(r["cached"] for r in results[8:])
    assert len(server.requests) == 1 + 8
    s = stats(run_aicli)
    assert (s["entries"], s["hits"], s["misses"]) == (9, 8, 9)
