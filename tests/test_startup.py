"""Start-up: what `--help` and `render NAME` import; option values are still checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aicli.templates.variables import _plainly_valid
from tests.helpers import REPO_ROOT, child_env


def imported_by(*args: str, ok: tuple[int, ...] = (0,)) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "aicli", *args],
        capture_output=True, text=True, env=child_env(None), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode in ok, proc.stderr
    return {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}


@pytest.mark.parametrize("args", [["--help"], ["render", "--help"], ["test-prompts", "--help"]])
def test_help_parses_options_without_pydantic(args: list[str]) -> None:
    modules = imported_by(*args)
    assert "pydantic" not in modules
    assert "asyncio" not in modules


def test_render_validates_plain_variables_without_jsonschema() -> None:
    example = str(REPO_ROOT / "config.example.yaml")
    modules = imported_by("render", "summarize", "--config", example, "--var", "input=hi")
    assert "jsonschema" not in modules and "asyncio" not in modules


def test_option_values_are_still_checked(cli, make_config) -> None:
    make_config()
    for args, expected in [
        (["-j", "0"], "-j"),
        (["-j", "many"], "-j"),
        (["--pass-rate", "101"], "--pass-rate"),
    ]:
        result = cli("test-prompts", *args)
        assert result.exit_code == 2, result
        assert expected in result.stderr and "aicli: error:" in result.stderr


def test_paths_and_lists_arrive_typed(cli, make_config, tmp_path: Path) -> None:
    make_config()
    missing = tmp_path / "nowhere" / "x.test.yaml"
    result = cli("test-prompts", str(missing), "-t", "standard", "-t", "premium")
    assert result.exit_code == 2, result
    assert "nowhere" in result.stderr  # the path made it through as a path


@pytest.mark.parametrize(
    ("value", "schema", "plain"),
    [
        ("text", {"type": "string", "minLength": 1, "description": "d"}, True),
        ("", {"type": "string", "minLength": 1}, False),
        (3, {"type": "integer", "minimum": 1, "maximum": 10, "default": 3}, True),
        (True, {"type": "integer"}, False),  # a bool is no integer here: jsonschema decides
        (11, {"type": "integer", "maximum": 10}, False),
        (["a", "b"], {"type": "array", "items": {"type": "string"}}, True),
        ("b", {"enum": ["a", "b"]}, True),
        ("x", {"type": "strnig"}, False),  # an invalid schema: jsonschema reports it
        ("x", {"type": "string", "pattern": "^x$"}, False),  # not handled here
        ("x", {"type": "string", "minLength": "1"}, False),
    ],
)
def test_the_plain_schema_check_never_passes_what_it_does_not_know(
    value: object, schema: dict[str, object], plain: bool
) -> None:
    assert _plainly_valid(value, schema) is plain


COMMAND_MODULES = {
    f"aicli.cli.{m}"
    for m in ("generate", "render", "test_prompts", "tiers", "doctor", "serve", "cache", "config")
}


def test_one_command_is_built_alone_and_root_options_still_work(run_aicli) -> None:
    example = str(REPO_ROOT / "config.example.yaml")
    assert not imported_by("--help") & COMMAND_MODULES  # listed from the table, none built
    modules = imported_by("-c", example, "--log-format", "json", "tiers")
    assert modules & COMMAND_MODULES == {"aicli.cli.tiers"}
    for args in (["-c", example, "tiers"], ["--log-format", "json", "tiers", "--config", example]):
        result = run_aicli(*args)
        assert result.exit_code == 0, result
        assert "gpt-4o-mini" in result.stdout and "none" in result.stdout  # no rate_limit
    typo = run_aicli("rendr")
    assert typo.exit_code == 2 and "did you mean: aicli render" in typo.stderr


def test_a_choice_option_is_parsed_without_pydantic(tmp_path: Path) -> None:
    suite = tmp_path / "s.test.yaml"
    suite.write_text("suite: s\nprompt: 'hi {{ w }}'\ncases:\n  - {name: a, vars: {w: x}}\n")
    replay = tmp_path / "none.jsonl"
    replay.write_text("")
    args = ["test-prompts", "-t", "echo", "--fail-on", "any", "--replay", str(replay), str(suite)]
    modules = imported_by(*args, ok=(0, 1))
    assert "typer._adapters" not in modules  # the enum value was taken as is


def test_the_entry_leaves_the_collector_on() -> None:
    code = "import gc, aicli.__main__ as m; print(gc.isenabled(), callable(m.main))"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=child_env(None)
    )
    assert proc.stdout.split() == ["True", "True"], proc.stderr


def test_only_the_cli_process_freezes_what_it_imports() -> None:
    code = (
        "import gc\n"
        "from aicli.cli import startup\n"
        "with startup.long_lived():\n"
        "    import json.tool\n"
        "print(gc.get_freeze_count(), gc.isenabled())\n"  # a library user: untouched
        "startup.enable()\n"
        "with startup.long_lived():\n"
        "    assert not gc.isenabled()\n"
        "    import http.client\n"
        "print(gc.get_freeze_count() > 0, gc.isenabled())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=child_env(None)
    )
    assert proc.stdout.split() == ["0", "True", "True", "True"], proc.stderr


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=4096))
def test_the_builtin_sha256_gives_hashlibs_digests(data: bytes) -> None:
    import hashlib

    from aicli.digest import sha256_hex

    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()
