"""Helpers the tests import: the test key, the default config, running the CLI (in-process and
as a subprocess), the environment a child aicli gets. Fixtures live in conftest.py."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_KEY = "sk-test-THISISASECRETKEY1234567890abcd"
TEST_KEY_ENV = "AICLI_TEST_KEY"
DELETE = object()  # make_config(**overrides) value that removes a key from the default config


# ---- isolation (the `isolate` fixture's value) ----------------------------------------------


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


def child_env(env: Mapping[str, str | None] | None) -> dict[str, str]:
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
        env=child_env(env),
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
        env=child_env(None),
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
