"""`aicli test-prompts` on invalid suites and flags: exit 2 before any request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_prompts.helpers import PEOPLE, write


@pytest.mark.parametrize(
    ("suite", "message"),
    [
        ("suite: s\nprompt: hi\ncases: [{name: a\n", "invalid YAML"),
        ("suite: s\nprompt: hi\ncases: [{name: a, assert: [{type: is-jsn}]}]\n", "is-jsn"),
        ("suite: s\ntemplate: nope\ncases: [{name: a}]\n", "nope"),
        ("suite: s\ntemplate: t\ncases: [{name: a, vars: {w: 1, zz: 2}}]\n", "zz"),
        ("suite: s\nprompt: hi\ntier: gold\ncases: [{name: a}]\n", "unknown tier 'gold'"),
        ("suite: s\nprompt: 'hi {{ who }}'\ncases: [{name: a}]\n", "who"),
    ],
)
def test_invalid_suites_exit_2_before_any_request(
    cli: Any, server: Any, make_config: Any, suite: str, message: str
) -> None:
    make_config()
    write(
        "prompts/t.yaml", "name: t\nversion: 1.0.0\ntemplate: 'Say {{ w }}'\nvariables: {w: {}}\n"
    )
    write("prompts/ok.test.yaml", PEOPLE)
    write("prompts/bad.test.yaml", suite)
    result = cli("test-prompts")
    assert result.exit_code == 2, result
    assert result.stderr.startswith("aicli: error: ")
    assert "bad.test.yaml" in result.stderr and message in result.stderr
    assert "Traceback" not in result.output
    assert server.requests == []


@pytest.mark.parametrize(
    "args",
    [
        ["-t", "gold"],
        ["--grader", "gold"],
        ["-j", "0"],
        ["--repeat", "0"],
        ["--replay", "missing.jsonl"],
        ["--replay", "bad.jsonl"],
        ["nowhere/"],
        ["--max-cost", "-1"],
    ],
)
def test_bad_flags_exit_2_before_any_request(cli: Any, people: Any, args: list[str]) -> None:
    Path("bad.jsonl").write_text("{not json\n")
    result = cli("test-prompts", *args)
    assert result.exit_code == 2, result
    assert result.stderr.startswith("aicli: error: ")
    assert people.requests == []
