"""Every YAML aicli reads is bounded: alias bombs, deep nesting, huge and device files -> exit 2."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from aicli import yamlsafe


def bomb(key: str = "lol", levels: int = 9) -> str:
    """A "billion laughs" mapping: a few hundred bytes that expand to 9**levels values."""
    lines = [f'l0: &l0 ["{key}", "{key}", "{key}", "{key}", "{key}", "{key}", "{key}", "{key}"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def nested(levels: int) -> str:
    """Block-style nesting `levels` deep (libyaml only caps flow style, at 1000)."""
    return "k:\n  " + "- " * levels + "x\n"


def expect_2(result: Any, *needles: str) -> None:
    assert result.exit_code == 2, result
    assert result.stderr.startswith("aicli: error: "), result
    assert "Traceback" not in result.output and "this is a bug" not in result.output, result
    for needle in needles:
        assert needle in result.stderr, result


def test_the_loader_counts_alias_expansions_not_bytes() -> None:
    with pytest.raises(yamlsafe.YamlProblem, match="aliases expand to more than"):
        yamlsafe.load(bomb())
    with pytest.raises(yamlsafe.YamlProblem, match="nested deeper than 100"):
        yamlsafe.load(nested(150))
    with pytest.raises(yamlsafe.YamlProblem, match="refers to a value containing it"):
        yamlsafe.load("a: &a [1, *a]\n")
    # within the limits, aliases and merge keys still work, and dates stay text
    assert yamlsafe.load(bomb(levels=3))["l2"][8][0] == ["lol"] * 8
    assert yamlsafe.load("b: &b {x: 1}\nc: {<<: *b, y: 2}\nd: 2024-01-31\n") == {
        "b": {"x": 1},
        "c": {"x": 1, "y": 2},
        "d": "2024-01-31",
    }
    assert yamlsafe.load(nested(90))["k"][0][0] is not None


def test_config_bomb_and_depth_are_exit_2(cli: Any, make_config: Any) -> None:
    make_config(bomb())
    expect_2(cli("generate", "hi"), "aicli.yaml", "aliases expand to more than 250000 values")
    make_config(nested(5000))
    expect_2(cli("generate", "hi"), "aicli.yaml", "nested deeper than 100 levels")


def test_suite_case_vars_bomb_is_exit_2_before_any_call(
    cli: Any, server: Any, make_config: Any
) -> None:
    make_config()
    suite = (
        "suite: s\nprompt: 'hi {{ v }}'\n" + bomb() + "cases:\n  - name: a\n    vars: {v: *l8}\n"
    )
    Path("prompts").mkdir()
    Path("prompts/b.test.yaml").write_text(suite)
    expect_2(cli("test-prompts"), "b.test.yaml:", "aliases expand")
    assert server.requests == []


def test_vars_file_and_schema_bombs_are_exit_2(cli: Any, server: Any, make_config: Any) -> None:
    make_config()
    Path("prompts").mkdir()
    Path("prompts/t.yaml").write_text(
        "name: t\nversion: 1.0.0\ntemplate: 'hi {{ l8 }}'\nvariables: {l8: {}}\n"
    )
    Path("v.yaml").write_text(bomb())
    expect_2(cli("generate", "-T", "t", "--vars-file", "v.yaml"), "--vars-file v.yaml", "aliases")
    expect_2(cli("render", "t", "--vars-file", "v.yaml"), "--vars-file v.yaml", "aliases")
    Path("s.yaml").write_text(bomb())
    expect_2(cli("generate", "hi", "--schema", "s.yaml"), "--schema s.yaml", "aliases expand")
    assert server.requests == []


def test_template_bomb_and_lock_file_bomb(cli: Any, isolate: Any) -> None:
    Path("aicli.yaml").write_text("prompts_dir: prompts\n")
    Path("prompts").mkdir()
    Path("prompts/t.yaml").write_text("name: t\nversion: 1.0.0\ntemplate: hi\n" + bomb())
    expect_2(cli("render", "t"), "t.yaml", "aliases expand")
    Path("prompts/t.yaml").write_text("name: t\nversion: 1.0.0\ntemplate: hi\n")
    Path("prompts/prompts.lock").write_text(bomb())
    expect_2(cli("render", "t"), "prompts.lock", "aliases expand")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_device_files_are_refused_not_read_forever(cli: Any, make_config: Any) -> None:
    make_config()
    Path("prompts").mkdir()
    Path("prompts/t.yaml").write_text(
        "name: t\nversion: 1.0.0\ntemplate: 'hi {{ a }}'\nvariables: {a: {}}\n"
    )
    expect_2(cli("render", "t", "--vars-file", "/dev/zero"), "not a regular file")
    expect_2(cli("generate", "hi", "--schema", "/dev/urandom"), "not a regular file")
    expect_2(cli("--config", "/dev/zero", "generate", "hi"), "/dev/zero")
    Path("big.yaml").write_bytes(b"a: " + b"x" * (yamlsafe.MAX_BYTES + 10))
    expect_2(cli("render", "t", "--vars-file", "big.yaml"), "larger than the 10 MB")
    Path("bin.yaml").write_bytes(b"a: \xff\xfe\n")
    expect_2(cli("render", "t", "--vars-file", "bin.yaml"), "not UTF-8 text")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifos_without_a_writer_do_not_hang(run_aicli: Any, make_config: Any) -> None:
    make_config()
    Path("prompts").mkdir()
    Path("prompts/t.yaml").write_text(
        "name: t\nversion: 1.0.0\ntemplate: 'hi {{ a }}'\nvariables: {a: {type: string}}\n"
    )
    os.mkfifo("v.yaml")
    expect_2(run_aicli("render", "t", "--vars-file", "v.yaml", timeout=30), "'a'")
    os.mkfifo("s.test.yaml")
    expect_2(run_aicli("test-prompts", "s.test.yaml", timeout=30), "s.test.yaml")
