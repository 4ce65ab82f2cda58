"""`aicli test-prompts` basics: exit codes, the last line, failures explained, paths."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.cli.test_prompts.helpers import PEOPLE, last_line, write


def test_all_pass_exit_0_and_the_last_line(cli: Any, people: Any) -> None:
    result = cli("test-prompts")
    assert result.exit_code == 0, result
    assert last_line(result.stdout) == "2 passed, 0 failed"
    assert "people" in result.stdout and "ada" in result.stdout
    assert result.stderr == ""
    assert {r["model"] for r in people.requests} == {"standard-model"}


def test_failures_are_explained_and_exit_1(cli: Any, server: Any, make_config: Any) -> None:
    make_config()
    write("prompts/people.test.yaml", PEOPLE)
    answers = {"Ada Lovelace, 36": "Sorry, I cannot do that.", "Alan Turing, 41": '{"name": 1}'}
    server.set_answer("*", lambda b: answers[b["messages"][-1]["content"].split(": ", 1)[1]])
    result = cli("test-prompts")
    assert result.exit_code == 1, result
    out = result.stdout
    assert "FAILED people/ada [standard]: invalid_json" in out
    assert "Sorry, I cannot do that." in out  # the excerpt of the answer
    assert "FAILED people/alan [standard]: structure_mismatch" in out
    assert "missing key 'age'" in out and "'name' is integer, expected string" in out
    assert last_line(out) == "0 passed, 2 failed"


def test_api_error_and_render_error(cli: Any, server: Any, make_config: Any) -> None:
    make_config(tiers={"standard": {"fallback": []}})
    write(
        "prompts/t.yaml",
        """\
        name: shout
        version: 1.0.0
        template: "Shout {{ word }}"
        variables:
          word: {type: string, minLength: 3}
        """,
    )
    write(
        "prompts/s.test.yaml",
        """\
        suite: s
        template: shout
        cases:
          - {name: refused, vars: {word: hello}}
          - {name: too-short, vars: {word: hi}}
        """,
    )
    server.script("standard-model", ["400"])
    result = cli("test-prompts", "-o", "r.json")
    assert result.exit_code == 1, result
    assert "ERROR s/refused [standard]: api_error" in result.stdout
    assert "ERROR s/too-short [standard]: render_error" in result.stdout
    assert "'word'" in result.stdout
    assert last_line(result.stdout) == "0 passed, 2 failed"
    data = json.loads(Path("r.json").read_text())
    kinds = {r["case"]: (r["status"], r["reason_kind"]) for r in data["results"]}
    assert kinds == {"refused": ("error", "api_error"), "too-short": ("error", "render_error")}
    assert len(server.requests) == 1


def test_skipped_cases_in_the_last_line(cli: Any, people: Any) -> None:
    write(
        "prompts/later.test.yaml",
        "suite: later\nprompt: hi\ncases:\n  - {name: one, skip: waiting for a model}\n",
    )
    result = cli("test-prompts")
    assert result.exit_code == 0, result
    assert last_line(result.stdout) == "2 passed, 0 failed, 1 skipped"


def test_paths_files_and_folders(cli: Any, people: Any) -> None:
    write("elsewhere/x.test.yaml", PEOPLE.replace("suite: people", "suite: other"))
    assert last_line(cli("test-prompts", "elsewhere").stdout) == "2 passed, 0 failed"
    both = cli("test-prompts", "elsewhere/x.test.yaml", "prompts/people.test.yaml")
    assert last_line(both.stdout) == "4 passed, 0 failed"


def test_a_path_that_is_missing_or_not_a_regular_file(cli: Any, people: Any) -> None:
    missing = cli("test-prompts", "nowhere.test.yaml")
    assert missing.exit_code == 2 and "nowhere.test.yaml: no such file or folder" in missing.stderr
    os.mkfifo("pipe.test.yaml")  # opening it to read would block until a writer came
    fifo = cli("test-prompts", "pipe.test.yaml")
    assert fifo.exit_code == 2 and fifo.stdout == ""
    assert "pipe.test.yaml: not a regular file or folder" in fifo.stderr
