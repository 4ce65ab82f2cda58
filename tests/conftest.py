"""Shared test fixtures: isolated HOME/XDG/cwd, the fake OpenAI server, configs, CLI runners,
Redis. The helpers tests import (run_aicli, cli, TEST_KEY, default_config ...) are in helpers.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import settings

from tests.fake_openai import FakeOpenAI
from tests.helpers import (
    TEST_KEY,
    TEST_KEY_ENV,
    Isolated,
    cli,
    deep_merge,
    default_config,
    run_aicli,
)

# No property test is a timed test: Hypothesis's per-example deadline (200 ms) fails examples
# on a loaded 2-core machine, not because of the code (speed is checked by scripts/bench_*).
settings.register_profile("aicli", deadline=None)
settings.load_profile("aicli")

_DROP_ENV = {"OPENAI_API_KEY", "OPENAI_BASE_URL", "AICLI_CONFIG", "AICLI_CACHE_DIR", "NO_COLOR"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than 5 seconds")
    config.addinivalue_line("markers", "buffered: aicli subprocesses run without PYTHONUNBUFFERED")


# ---- isolation ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Isolated:
    home = tmp_path / "home"
    dirs = {
        "XDG_CONFIG_HOME": home / ".config",
        "XDG_CACHE_HOME": home / ".cache",
        "XDG_DATA_HOME": home / ".local" / "share",
        "XDG_STATE_HOME": home / ".local" / "state",
    }
    for path in (home, *dirs.values()):
        path.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    for name, path in dirs.items():
        monkeypatch.setenv(name, str(path))
    for name in list(os.environ):
        if name in _DROP_ENV or "API_KEY" in name or name.startswith(("OPENAI_", "AICLI_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return Isolated(
        tmp=tmp_path,
        home=home,
        work=work,
        config_home=dirs["XDG_CONFIG_HOME"],
        cache_home=dirs["XDG_CACHE_HOME"],
        data_home=dirs["XDG_DATA_HOME"],
        state_home=dirs["XDG_STATE_HOME"],
        cache_dir=dirs["XDG_CACHE_HOME"] / "aicli",
    )


# ---- fake server ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(fake_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    fake_server.reset()
    yield fake_server
    fake_server.reset()  # release anything a test left hanging


# ---- config ---------------------------------------------------------------------------------


@pytest.fixture
def make_config(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Factory: make_config(text=None, *, path=None, **overrides) -> Path of the written file."""
    monkeypatch.setenv(TEST_KEY_ENV, TEST_KEY)

    def _make(text: str | None = None, *, path: str | Path | None = None, **overrides: Any) -> Path:
        target = Path(path) if path is not None else Path("aicli.yaml")
        target = target if target.is_absolute() else Path.cwd() / target
        target.parent.mkdir(parents=True, exist_ok=True)
        if text is None:
            data = deep_merge(default_config(server.base_url), overrides)
            text = yaml.safe_dump(data, sort_keys=False)
        elif overrides:
            raise TypeError("make_config: pass either text or overrides, not both")
        target.write_text(text, encoding="utf-8")
        return target

    return _make


# ---- running the CLI ------------------------------------------------------------------------


@pytest.fixture(name="run_aicli")
def _run_aicli_fixture() -> Any:
    return run_aicli


@pytest.fixture(name="cli")
def _cli_fixture() -> Any:
    return cli


# ---- Redis ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One redis-server for the session; tests keep apart by namespace (see `redis_ns`)."""
    from tests.redis_server import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_ns(redis_server: Any, request: pytest.FixtureRequest) -> str:
    """A namespace of this test's own on the session's Redis."""
    import re
    import uuid

    name = re.sub(r"[^A-Za-z0-9_.-]", "-", request.node.name)[:40]
    return f"t-{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=["disk", "redis"])
def any_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a cache test on the disk cache, then on the session's Redis (default namespace,
    emptied first), chosen the way a user would: $AICLI_CACHE_BACKEND and $AICLI_REDIS_URL."""
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        client = server.client()
        stale = client.keys("aicli:*")
        if stale:
            client.unlink(*stale)
        client.close()
        monkeypatch.setenv("AICLI_CACHE_BACKEND", "redis")
        monkeypatch.setenv("AICLI_REDIS_URL", server.url)
    return str(request.param)


# ---- stdout block-buffered, as in a clean environment (issue 21) ----------------------------
# The usual shell here sets PYTHONUNBUFFERED, which hid write failures that only show when
# stdout is block-buffered (`aicli --version > /dev/full`). Tests marked `buffered` run their
# aicli subprocesses without it; AICLI_TEST_BUFFERED=1 does so for every test (CI runs the CLI
# tests once that way).


@pytest.fixture(autouse=True)
def _buffered_stdout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("buffered") or os.environ.get("AICLI_TEST_BUFFERED"):
        monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
