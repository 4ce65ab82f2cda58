"""The Redis backend and single-flight through the real CLI: a real redis-server, the fake
OpenAI server counting requests, and aicli in subprocesses (as on many CI runners)."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_prompts.helpers import many_cases, write
from tests.helpers import spawn_aicli
from tests.redis_server import RedisServer
from tests.test_cache_e2e import gen

PASSWORD = "pw-Zq81-never-shown"


@pytest.fixture
def use_redis(redis_server: Any, redis_ns: str, make_config: Any, monkeypatch: Any) -> Any:
    """aicli configured for the session's Redis, in a namespace of this test's own."""

    def configure(url: str | None = None, *, defaults: Any = None, **cache: Any) -> None:
        more = {"defaults": defaults} if defaults else {}
        make_config(cache={"backend": "redis", "namespace": redis_ns, **cache}, **more)
        monkeypatch.setenv("AICLI_REDIS_URL", url or redis_server.url)

    configure()
    return configure


# ---- the shared cache ------------------------------------------------------------------------


def test_hit_across_processes_json_values_and_namespaces_apart(
    run_aicli: Any, server: Any, use_redis: Any, redis_server: Any, redis_ns: str
) -> None:
    first = gen(run_aicli, "shared question")
    second = gen(run_aicli, "shared question")
    assert (first["cached"], second["cached"]) == (False, True)
    assert second["content"] == first["content"] and len(server.requests) == 1
    client = redis_server.client()
    (key,) = client.keys(f"{redis_ns}:v1:entry:*")
    assert json.loads(client.get(key))["content"] == "shared question"  # JSON, never pickle
    assert 3600 < client.ttl(key) <= 3600 + 604800  # cache_ttl + stale_for
    counters = client.mget([f"{redis_ns}:v1:counter:{n}" for n in ("hits", "misses")])
    assert counters == ["1", "1"]
    use_redis(namespace=redis_ns + "-other")  # another project on the same Redis
    assert gen(run_aicli, "shared question")["cached"] is False
    assert len(server.requests) == 2
    client.close()


def test_clear_and_prune_leave_foreign_keys_alone(
    run_aicli: Any, server: Any, use_redis: Any, redis_server: Any, redis_ns: str
) -> None:
    gen(run_aicli, "one")
    gen(run_aicli, "two")
    client = redis_server.client()
    foreign = {"someone:else": "1", f"{redis_ns}x:v1:entry:a": "2", f"{redis_ns}:v2:x": "3"}
    client.mset(foreign)
    done = run_aicli("cache", "prune", "--json")
    assert done.exit_code == 0 and json.loads(done.stdout)["pruned"] == 0, done
    done = run_aicli("cache", "clear", "--json")
    assert done.exit_code == 0, done
    assert json.loads(done.stdout)["cleared"] == 2
    assert client.mget(list(foreign)) == list(foreign.values())
    assert client.keys(f"{redis_ns}:v1:*") == []
    client.close()


def test_stale_answer_after_ttl_when_the_provider_is_down(
    run_aicli: Any, server: Any, use_redis: Any
) -> None:
    use_redis(defaults={"cache_ttl": 1})
    assert gen(run_aicli, "soon stale")["cached"] is False
    time.sleep(1.2)
    server.script("*", ["500", "500", "500"])  # every tier of the chain fails
    done = run_aicli("generate", "--json", "soon stale")
    assert done.exit_code == 0, done
    data = json.loads(done.stdout)
    assert (data["cached"], data["stale"], data["content"]) == (True, True, "soon stale")
    assert "stale" in done.stderr


# ---- credentials -----------------------------------------------------------------------------


@pytest.fixture
def locked_redis(tmp_path: Path) -> Any:
    server = RedisServer(tmp_path / "locked", password=PASSWORD).start()
    yield server
    server.stop()


def test_password_only_from_the_env_and_never_shown(
    run_aicli: Any, server: Any, use_redis: Any, locked_redis: Any, make_config: Any
) -> None:
    make_config(cache={"backend": "redis", "url": locked_redis.url})
    done = run_aicli("generate", "hi")
    assert done.exit_code == 2, done
    assert "cache.url" in done.stderr and "url_env" in done.stderr
    assert PASSWORD not in done.output and server.requests == []

    use_redis(url=locked_redis.url)
    outputs = [run_aicli("generate", "--json", "-v", "hi") for _ in range(2)]
    assert [json.loads(o.stdout)["cached"] for o in outputs] == [False, True]
    done = run_aicli("cache", "stats", "--json")
    assert done.exit_code == 0, done
    stats = json.loads(done.stdout)
    assert stats["location"] == f"redis://:***@127.0.0.1:{locked_redis.port}/0"
    assert stats["directory"] is None and stats["backend"] == "redis"

    use_redis(url=locked_redis.url.replace(PASSWORD, PASSWORD + "-wrong"))
    wrong = run_aicli("generate", "hi")
    assert wrong.exit_code == 0 and wrong.stdout == "hi\n", wrong
    assert wrong.stderr.count("aicli: warning:") == 1
    assert "127.0.0.1" in wrong.stderr and "carrying on without the cache" in wrong.stderr
    stats_failed = run_aicli("cache", "stats")
    assert stats_failed.exit_code == 3, stats_failed
    for o in [*outputs, done, wrong, stats_failed]:
        assert PASSWORD not in o.output


# ---- faults never fail a job -----------------------------------------------------------------


def test_unreachable_redis_one_warning_and_the_answers(
    run_aicli: Any, server: Any, use_redis: Any
) -> None:
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    use_redis(url=dead)
    write("prompts/many.test.yaml", many_cases(6))
    done = run_aicli("test-prompts", "prompts/many.test.yaml")
    assert done.exit_code == 0, done
    assert done.stdout.splitlines()[-1] == "6 passed, 0 failed"
    assert done.stderr.count("aicli: warning:") == 1, done.stderr
    assert "redis cache at redis://127.0.0.1:1/0" in done.stderr
    for args in (("stats",), ("clear", "--yes"), ("prune",)):
        failed = run_aicli("cache", *args)
        assert failed.exit_code == 3, failed
        lines = failed.stderr.splitlines()
        assert lines[0].startswith("aicli: error: the redis cache at redis://127.0.0.1:1/0")
        assert "Traceback" not in failed.stderr and failed.stdout == ""


@pytest.fixture
def own_redis(tmp_path: Path) -> Any:
    """A Redis of this test's own, to kill or hang."""
    server = RedisServer(tmp_path / "own", extra=("--enable-debug-command", "yes")).start()
    yield server
    server.stop()


def test_redis_killed_mid_suite(
    run_aicli: Any, server: Any, use_redis: Any, own_redis: Any
) -> None:
    use_redis(url=own_redis.url)
    server.latency = 0.15
    write("prompts/many.test.yaml", many_cases(12))
    proc = spawn_aicli("test-prompts", "-j", "2", "prompts/many.test.yaml")
    server.wait_for_requests(3, timeout=30)
    own_redis.stop()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.splitlines()[-1] == "12 passed, 0 failed"
    assert err.count("aicli: warning:") == 1, err
    assert own_redis.url in err and "Traceback" not in err


def test_hung_redis_is_bounded_by_the_timeout(
    run_aicli: Any, server: Any, use_redis: Any, own_redis: Any
) -> None:
    use_redis(url=own_redis.url, timeout_seconds=0.3)
    client = own_redis.client(socket_timeout=15)  # outlives the 8 s hang it causes
    client.ping()
    sleeper = threading.Thread(target=lambda: client.execute_command("DEBUG", "SLEEP", 8))
    sleeper.start()
    time.sleep(0.2)
    try:
        started = time.monotonic()
        done = run_aicli("generate", "while redis sleeps")
        took = time.monotonic() - started
    finally:
        sleeper.join(15)
        client.close()
    assert done.exit_code == 0 and done.stdout == "while redis sleeps\n", done
    assert done.stderr.count("aicli: warning:") == 1
    assert "did not answer within 0.3 s" in done.stderr
    assert took < 7, took  # the hang lasts 8 s: a bound, not a speed measurement


# ---- single-flight ---------------------------------------------------------------------------

SAME = """\
suite: same
prompt: "the same question"
cases:
""" + "".join(f"  - {{name: c{i}, assert: [{{type: contains, value: same}}]}}\n" for i in range(5))


@pytest.mark.parametrize("backend", ["disk", "redis"])
def test_a_suite_of_identical_prompts_makes_one_call(
    run_aicli: Any, server: Any, make_config: Any, backend: str, request: Any
) -> None:
    slow = {"timeout_seconds": 20}  # waiters wait up to the tier's timeout
    if backend == "redis":
        request.getfixturevalue("use_redis")(defaults=slow)
    else:
        make_config(defaults=slow)
    server.latency = 0.3
    write("prompts/same.test.yaml", SAME)
    done = run_aicli("test-prompts", "-j", "5", "prompts/same.test.yaml")
    assert done.exit_code == 0, done
    assert done.stdout.splitlines()[-1] == "5 passed, 0 failed"
    assert len(server.requests) == 1
    assert "aicli: warning" not in done.stderr


@pytest.mark.parametrize("backend", ["disk", "redis"])
def test_concurrent_processes_with_the_same_prompt_make_one_call(
    server: Any, make_config: Any, backend: str, request: Any
) -> None:
    slow = {"timeout_seconds": 20}  # waiters wait up to the tier's timeout
    if backend == "redis":
        request.getfixturevalue("use_redis")(defaults=slow)
    else:
        make_config(defaults=slow)
    server.latency = 1.5  # a slow model: every process starts while the first call runs
    procs = [spawn_aicli("generate", "--json", "one slow answer") for _ in range(6)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    assert len(server.requests) == 1
    assert {r["content"] for r in results} == {"one slow answer"}
    assert sorted(r["cached"] for r in results) == [False] + [True] * 5


def test_refresh_and_no_cache_are_exempt(run_aicli: Any, server: Any, use_redis: Any) -> None:
    server.latency = 1.0
    procs = [spawn_aicli("generate", "--refresh", "exempt") for _ in range(2)]
    procs += [spawn_aicli("generate", "--no-cache", "exempt")]
    for p in procs:
        assert p.wait(60) == 0
    assert len(server.requests) == 3


@pytest.mark.parametrize("backend", ["disk", "redis"])
def test_a_killed_lock_holder_does_not_block_others(
    server: Any, make_config: Any, backend: str, request: Any
) -> None:
    if backend == "redis":
        request.getfixturevalue("use_redis")
    else:
        make_config()
    server.latency = 1.0  # under the tier's 2 s timeout, which is also the lock's lifetime
    holder = spawn_aicli("generate", "held then dropped")
    server.wait_for_requests(1, timeout=30)
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    server.latency = 0.0
    started = time.monotonic()
    waiter = spawn_aicli("generate", "--json", "held then dropped")
    out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, err
    result = json.loads(out)
    assert result["content"] == "held then dropped" and result["cached"] is False
    assert len(server.requests) == 2
    assert time.monotonic() - started < 30  # the lock (the tier's 2 s timeout) expired
