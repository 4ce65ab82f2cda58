"""`aicli test-prompts --record` / `--replay`: runs without a server or key."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_prompts.helpers import PEOPLE, last_line, write
from tests.helpers import TEST_KEY_ENV


def test_record_then_replay_without_server_or_key(
    cli: Any, people: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = cli("test-prompts", "--record", "rec.jsonl", "--no-cache")
    assert rec.exit_code == 0, rec
    assert stat.S_IMODE(Path("rec.jsonl").stat().st_mode) == 0o600
    lines = [json.loads(x) for x in Path("rec.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and {x["tier"] for x in lines} == {"standard"}
    assert all(x["model"] == "standard-model" for x in lines)
    people.reset()
    monkeypatch.delenv(TEST_KEY_ENV)
    replay = cli("test-prompts", "--replay", "rec.jsonl", "-o", "r.json")
    assert replay.exit_code == 0, replay
    assert last_line(replay.stdout) == "2 passed, 0 failed"
    assert people.requests == []  # zero requests during replay
    results = json.loads(Path("r.json").read_text())["results"]
    assert all(r["cost_usd"] == 0 for r in results)


def test_replay_of_a_case_not_recorded_is_api_error(cli: Any, people: Any) -> None:
    assert cli("test-prompts", "--record", "rec.jsonl").exit_code == 0
    people.reset()
    write(
        "prompts/people.test.yaml",
        PEOPLE + '  - {name: grace, vars: {text: "Grace Hopper, 85"}, assert: [is-json]}\n',
    )
    result = cli("test-prompts", "--replay", "rec.jsonl")
    assert result.exit_code == 1
    assert "ERROR people/grace [standard]: api_error" in result.stdout
    assert "not recorded" in result.stdout
    assert last_line(result.stdout) == "2 passed, 1 failed"
    assert people.requests == []
    assert "no request matched" not in result.stderr  # only when nothing matched at all


def test_a_changed_template_is_not_recorded(cli: Any, server: Any, make_config: Any) -> None:
    make_config()
    tpl = "name: t\nversion: 1.0.0\ntemplate: 'Say {{ w }}'\nvariables: {w: {}}\n"
    write("prompts/t.yaml", tpl)
    write("prompts/s.test.yaml", "suite: s\ntemplate: t\ncases: [{name: a, vars: {w: hi}}]\n")
    assert cli("test-prompts", "--record", "rec.jsonl").exit_code == 0
    assert json.loads(Path("rec.jsonl").read_text())["template"]["name"] == "t"
    write("prompts/t.yaml", tpl.replace("Say", "Please say"))
    result = cli("test-prompts", "--replay", "rec.jsonl")
    assert result.exit_code == 1 and "not recorded" in result.stdout
    assert "no request matched an answer in rec.jsonl" in result.stderr


def test_record_and_replay_exclude_each_other(cli: Any, people: Any) -> None:
    Path("x.jsonl").write_text("")
    result = cli("test-prompts", "--record", "a.jsonl", "--replay", "x.jsonl")
    assert result.exit_code == 2 and "exclude each other" in result.stderr
    assert not Path("a.jsonl").exists() and people.requests == []
