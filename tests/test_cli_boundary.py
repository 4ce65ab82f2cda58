"""The CLI's one error boundary (cli/app.py `_Group.main`): whatever a command raises becomes
one `aicli: error:` line on stderr (none for a broken pipe) and its documented exit code; the
shared cache flags become one cache mode by one rule in every command."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from aicli.cli import options
from aicli.cli.output import Terminated
from aicli.errors import UsageError


def _invoke_failing(monkeypatch: pytest.MonkeyPatch, exc: BaseException, *args: str) -> Any:
    """`aicli tiers ARGS` in-process, with loading the config raising `exc`."""

    def boom(*_: Any, **__: Any) -> Any:
        raise exc

    monkeypatch.setattr("aicli.config.load_config", boom)
    from aicli.cli.app import app

    return CliRunner().invoke(app, ["tiers", *args])


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (KeyboardInterrupt(), 130, "aicli: error: interrupted"),
        (Terminated(), 143, "aicli: error: terminated (SIGTERM)"),
        (
            FileNotFoundError(2, "No such file or directory", "gone.yaml"),
            2,
            "aicli: error: cannot use gone.yaml: No such file or directory",
        ),
        (RuntimeError("boom"), 1, "aicli: error: unexpected RuntimeError: boom"),
        (EOFError(), 1, "aicli: error: unexpected EOFError"),
        (UsageError("bad thing", "fix it"), 2, "aicli: error: bad thing"),
    ],
)
def test_every_failure_is_one_error_line_and_its_exit_code(
    monkeypatch: pytest.MonkeyPatch, exc: BaseException, code: int, line: str
) -> None:
    result = _invoke_failing(monkeypatch, exc)
    assert result.exit_code == code, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines()[0].startswith(line), result.stderr
    assert "Traceback" not in result.stderr


def test_a_crash_asks_for_a_bug_report_and_debug_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain = _invoke_failing(monkeypatch, RuntimeError("boom"))
    assert "this is a bug in aicli; rerun with --debug" in plain.stderr
    assert "Traceback" not in plain.stderr
    debug = _invoke_failing(monkeypatch, RuntimeError("boom"), "--debug")
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr and "RuntimeError: boom" in debug.stderr
    # a later run without --debug is not affected by the earlier one (no state carried over)
    again = _invoke_failing(monkeypatch, RuntimeError("boom"))
    assert "Traceback" not in again.stderr


def test_a_broken_pipe_is_exit_0_without_a_message() -> None:
    # A subprocess: the boundary points the process's real stdout at devnull, which in-process
    # would be pytest's. The reader has gone before aicli writes: the write fails with EPIPE
    # inside the command and is carried past Typer (which would make it exit 1) to the boundary.
    import subprocess
    import sys

    from tests.helpers import child_env as _child_env

    proc = subprocess.Popen(
        [sys.executable, "-m", "aicli", "tiers", "--json"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_child_env(None),
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert err == ""


def test_the_boundary_follows_log_format_json(monkeypatch: pytest.MonkeyPatch) -> None:
    result = _invoke_failing(monkeypatch, KeyboardInterrupt(), "--log-format", "json")
    assert result.exit_code == 130
    (line,) = [json.loads(x) for x in result.stderr.splitlines()]
    assert line["level"] == "error" and line["message"] == "interrupted"


@pytest.mark.parametrize(
    ("flags", "mode"),
    [
        ((False, False, False), "use"),
        ((True, False, False), "off"),
        ((False, True, False), "refresh"),
        ((False, False, True), "only"),
    ],
)
def test_cache_mode_one_rule(flags: tuple[bool, bool, bool], mode: str) -> None:
    assert options.cache_mode(*flags) == mode


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        ((True, True, False), "--no-cache and --refresh"),
        ((True, False, True), "--no-cache and --cache-only"),
        ((False, True, True), "--refresh and --cache-only"),
        ((True, True, True), "--no-cache and --refresh and --cache-only"),
    ],
)
def test_cache_flags_exclude_each_other(flags: tuple[bool, bool, bool], named: str) -> None:
    with pytest.raises(UsageError) as caught:
        options.cache_mode(*flags)
    assert caught.value.message == f"{named} exclude each other"
    assert caught.value.exit_code == 2
