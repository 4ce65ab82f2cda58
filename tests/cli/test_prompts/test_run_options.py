"""`aicli test-prompts` run options: tiers side by side, --model, --repeat, --filter,
--fail-fast, the pass-rate threshold."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from tests.cli.test_prompts.helpers import last_line, many_cases, person_answer, write


def test_several_tiers_side_by_side(cli: Any, people: Any) -> None:
    people.set_answer("premium-model", lambda b: "not json")
    result = cli("test-prompts", "-t", "standard", "-t", "premium", "-o", "r.json")
    assert result.exit_code == 1, result
    out = result.stdout
    assert "Tiers compared" in out
    assert "Cases the tiers disagree on" in out
    assert "people/ada" in out.split("Cases the tiers disagree on", 1)[1]
    assert last_line(out) == "2 passed, 2 failed"
    assert (
        sorted(r["model"] for r in people.requests)
        == ["premium-model"] * 2 + ["standard-model"] * 2
    )
    data = json.loads(Path("r.json").read_text())
    rates = {t["tier"]: t["pass_rate"] for t in data["tiers"]}
    assert rates == {"standard": 1.0, "premium": 0.0}
    assert {d["case_id"] for d in data["summary"]["disagreements"]} == {"people/ada", "people/alan"}


def test_tier_order_without_t(cli: Any, server: Any, make_config: Any) -> None:
    make_config()
    write(
        "prompts/t.yaml",
        "name: t\nversion: 1.0.0\ntier: economy\ntemplate: 'hi {{ x }}'\nvariables: {x: {}}\n",
    )
    write(
        "prompts/s.test.yaml",
        """\
        suite: s
        template: t
        cases:
          - {name: from-template, vars: {x: a}}
          - {name: from-case, vars: {x: b}, tier: premium}
        """,
    )
    write("prompts/i.test.yaml", "suite: i\nprompt: 'yo'\ncases:\n  - {name: default}\n")
    write("prompts/j.test.yaml", "suite: j\nprompt: 'yo!'\ntier: economy\ncases: [{name: s}]\n")
    assert cli("test-prompts").exit_code == 0
    sent = {r["messages"][-1]["content"]: r["model"] for r in server.requests}
    assert sent == {
        "hi a": "economy-model",
        "hi b": "premium-model",
        "yo": "standard-model",
        "yo!": "economy-model",
    }


def test_model_override(cli: Any, people: Any) -> None:
    assert cli("test-prompts", "-m", "custom-model").exit_code == 0
    assert {r["model"] for r in people.requests} == {"custom-model"}


def test_repeat_reports_pass_rate_and_flaky_cases(cli: Any, server: Any, make_config: Any) -> None:
    make_config()
    write(
        "prompts/f.test.yaml",
        """\
        suite: f
        prompt: "Pick a colour"
        cases:
          - {name: colour, assert: [{type: equals, value: blue}]}
        """,
    )
    server.script("standard-model", ["ok:blue", "ok:red", "ok:blue", "ok:red"])
    result = cli("test-prompts", "--repeat", "4", "-j", "1", "-o", "r.json", "-o", "r.xml")
    assert result.exit_code == 1, result
    # the cache did not answer the repeats: four real samples
    assert len(server.requests) == 4
    assert "Pass rate over 4 runs" in result.stdout and "flaky" in result.stdout
    assert "2/4" in result.stdout
    assert last_line(result.stdout) == "2 passed, 2 failed"
    summary = json.loads(Path("r.json").read_text())["summary"]
    assert summary["repeats"] == 4
    (flaky,) = summary["flaky"]
    assert {k: flaky[k] for k in ("id", "tier", "runs", "passed", "pass_rate", "flaky")} == {
        "id": "f/colour", "tier": "standard", "runs": 4, "passed": 2, "pass_rate": 0.5,
        "flaky": True,
    }  # fmt: skip
    names = [tc.get("name") for tc in ET.parse("r.xml").getroot().iter("testcase")]
    assert names == [f"colour [run {i}]" for i in (1, 2, 3, 4)]
    # a second run: each repeat is its own cache entry, so only the new fifth run calls
    server.reset()
    server.set_answer("*", "blue")
    again = cli("test-prompts", "--repeat", "5", "-j", "1")
    assert len(server.requests) == 1, again


def test_filter_glob_and_substring(cli: Any, people: Any) -> None:
    result = cli("test-prompts", "-k", "ALAN")
    assert last_line(result.stdout) == "1 passed, 0 failed"
    assert [r["messages"][-1]["content"] for r in people.requests] == [
        "Extract the person as JSON: Alan Turing, 41"
    ]
    assert last_line(cli("test-prompts", "--filter", "people/a*").stdout) == "2 passed, 0 failed"
    none = cli("test-prompts", "-k", "zzz")
    assert none.exit_code == 2 and "matches no case" in none.stderr


def test_fail_fast(cli: Any, server: Any, make_config: Any) -> None:
    make_config()
    write("prompts/m.test.yaml", many_cases(5))
    server.script("standard-model", ["ok:wrong"])
    result = cli("test-prompts", "--fail-fast", "-j", "1", "-o", "r.jsonl")
    assert result.exit_code == 1, result
    assert last_line(result.stdout) == "0 passed, 1 failed, 4 skipped"
    assert len(server.requests) == 1
    lines = [json.loads(x) for x in Path("r.jsonl").read_text().splitlines()]
    assert [x["status"] for x in lines] == ["failed"] + ["skipped"] * 4
    assert {x["reason"] for x in lines[1:]} == {"fail-fast"}


def test_pass_rate_threshold(cli: Any, people: Any) -> None:
    people.set_answer("*", lambda b: person_answer(b) if "Ada" in str(b) else "nope")
    assert cli("test-prompts").exit_code == 1
    assert cli("test-prompts", "--pass-rate", "50").exit_code == 0
    assert cli("test-prompts", "--pass-rate", "50.1").exit_code == 1
    assert cli("test-prompts", "--pass-rate", "101").exit_code == 2
