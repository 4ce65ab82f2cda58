"""Shared test fixtures: isolated HOME/XDG/cwd, the fake OpenAI server, configs, CLI runners."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fake_openai import FakeOpenAI

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_KEY = "sk-test-THISISASECRETKEY1234567890abcd"
TEST_KEY_ENV = "AICLI_TEST_KEY"
DELETE = object()  # make_config(**overrides) value that removes a key from the default config

_DROP_ENV = {"OPENAI_API_KEY", "OPENAI_BASE_URL", "AICLI_CONFIG", "AICLI_CACHE_DIR", "NO_COLOR"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than 5 seconds")
    config.addinivalue_line("markers", "buffered: aicli subprocesses run without PYTHONUNBUFFERED")


# ---- isolation ------------------------------------------------------------------------------


@dataclass
class Isolated:
    tmp: Path
    home: Path
    work: Path
    config_home: Path
    cache_home: Path
    data_home: Path
    state_home: Path
    cache_dir: Path  # where aicli's cache lands by default: $XDG_CACHE_HOME/aicli


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


def default_config(base_url: str) -> dict[str, Any]:
    """The config make_config writes when given no text."""
    return {
        "default_tier": "standard",
        "prompts_dir": "prompts",
        "providers": {
            "fake": {"base_url": base_url, "api_key_env": TEST_KEY_ENV},
            "echo": {"type": "echo"},
        },
        "defaults": {
            "timeout_seconds": 2,
            "max_retries": 0,
            "cache_ttl": 3600,
            "rate_limit": 6000,
        },
        "tiers": {
            "premium": {
                "model": "premium-model",
                "provider": "fake",
                "fallback": "standard",
                "price": {"input_per_1m": 2.5, "output_per_1m": 10.0},
            },
            "standard": {
                "model": "standard-model",
                "provider": "fake",
                "fallback": "economy",
                "price": {"input_per_1m": 0.15, "output_per_1m": 0.60},
            },
            "economy": {
                "model": "economy-model",
                "provider": "fake",
                "price": {"input_per_1m": 0.5, "output_per_1m": 1.5},
            },
            "echo": {"model": "echo", "provider": "echo"},
        },
    }


def deep_merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Merge overrides into a copy of base; dicts merge recursively, DELETE removes a key."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is DELETE:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


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


@dataclass
class Completed:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return (
            f"exit code {self.exit_code}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n"
            f"{self.stderr}"
        )


def _child_env(env: Mapping[str, str | None] | None) -> dict[str, str]:
    child = dict(os.environ)
    # aicli may not be pip-installed; the tmp cwd would hide the source tree otherwise
    child["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), child.get("PYTHONPATH", "")) if p
    )
    for key, value in (env or {}).items():
        if value is None:
            child.pop(key, None)
        else:
            child[key] = value
    return child


def run_aicli(
    *args: str,
    input: str | None = None,
    env: Mapping[str, str | None] | None = None,
    timeout: float = 60,
) -> Completed:
    """Run `python -m aicli ARGS` in a subprocess (stdin never a TTY); env values of None unset."""
    proc = subprocess.run(
        [sys.executable, "-m", "aicli", *map(str, args)],
        input=input,
        stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=_child_env(env),
        cwd=os.getcwd(),
        timeout=timeout,
    )
    return Completed(proc.returncode, proc.stdout, proc.stderr)


def spawn_aicli(*args: str) -> subprocess.Popen[str]:
    """Start `python -m aicli ARGS` without waiting (concurrent processes); stdin never a TTY."""
    return subprocess.Popen(
        [sys.executable, "-m", "aicli", *map(str, args)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_child_env(None),
        cwd=os.getcwd(),
    )


def cli(
    *args: str,
    input: str | None = None,
    env: Mapping[str, str | None] | None = None,
) -> Completed:
    """Invoke the Typer app in-process; an unexpected exception fails the test with the output."""
    from typer.testing import CliRunner

    from aicli.cli.app import app

    result = CliRunner().invoke(app, [str(a) for a in args], input=input, env=env)
    done = Completed(result.exit_code, result.stdout, result.stderr)
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        tb = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else repr(exc)
        raise AssertionError(f"aicli {' '.join(map(str, args))} crashed:\n{tb}\n{done}") from exc
    return done


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
