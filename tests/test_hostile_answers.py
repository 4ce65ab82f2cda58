"""Hostile suites and steered answers: time-bounded regexes, deep JSON, schemas checked first."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import child_env, run_aicli

EVIL = "^(a|aa)+$"  # backtracks 2**n ways on "aaa...ab"; the stdlib `re` never returns
DEEP = "[" * 100_000 + "]" * 100_000


def write(path: str, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8")


def suite(*cases: str, prompt: str = "say {{ w }}") -> str:
    return f"suite: s\nprompt: '{prompt}'\ncases:\n" + "".join(cases)


def case(name: str, asserts: str) -> str:
    return f"  - name: {name}\n    vars: {{w: {name}}}\n    assert: {asserts}\n"


def by_word(answers: dict[str, str]) -> Any:
    return lambda body: answers[body["messages"][-1]["content"].removeprefix("say ")]


def results(path: str = "r.json") -> dict[str, Any]:
    data = json.loads(Path(path).read_text())
    return {r["id"]: r for r in data["results"]}


# --- item 4: regex assertions are time-bounded and run off the event loop ---------------------


def test_a_catastrophic_regex_is_a_failed_assertion_not_a_hang(
    cli: Any, server: Any, make_config: Any
) -> None:
    make_config()
    server.set_answer("*", by_word({"slow": "a" * 60 + "b", "fine": "aaaa"}))
    write(
        "prompts/r.test.yaml",
        suite(
            case(
                "slow", f"[{{type: regex, value: '{EVIL}'}}, {{type: not-regex, value: '{EVIL}'}}]"
            ),
            case("fine", f"[{{type: regex, value: '{EVIL}'}}]"),
        ),
    )
    result = cli("test-prompts", "-o", "r.json")
    assert result.exit_code == 1, result
    got = results()
    assert got["s/fine"]["status"] == "passed"
    slow = got["s/slow"]["assertions"]
    assert [a["passed"] for a in slow] == [False, False]  # a timeout fails `not-regex` too
    assert all("took longer than 1 s" in a["reason"] for a in slow), slow


def test_an_invalid_regex_is_exit_2_before_any_call(
    cli: Any, server: Any, make_config: Any
) -> None:
    make_config()
    write("prompts/r.test.yaml", suite(case("a", "[{type: regex, value: '(unclosed'}]")))
    result = cli("test-prompts")
    assert result.exit_code == 2, result
    assert "invalid regular expression" in result.stderr and server.requests == []


@pytest.mark.skipif(os.name != "posix", reason="needs SIGINT")
def test_ctrl_c_works_while_regexes_run(server: Any, make_config: Any) -> None:
    make_config()
    server.set_answer("*", "a" * 60 + "b")
    cases = [case(f"c{i}", f"[{{type: regex, value: '{EVIL}'}}]") for i in range(20)]
    write("prompts/r.test.yaml", suite(*cases))
    proc = subprocess.Popen(
        [sys.executable, "-m", "aicli", "test-prompts", "-j", "2", "--no-cache", "-o", "r.json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, env=child_env(None),
    )  # fmt: skip
    try:
        server.wait_for_requests(2, timeout=30)
        time.sleep(0.3)  # the first answers are in their regexes now
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert json.loads(Path("r.json").read_text())["summary"]["interrupted"] is True


# --- item 7: deep JSON answers fail one case; schemas are checked before any call -------------


def test_a_100000_deep_answer_fails_only_its_case(cli: Any, server: Any, make_config: Any) -> None:
    make_config()
    server.set_answer("*", by_word({"deep": DEEP, "ok": '{"a": 1}'}))
    write(
        "prompts/d.test.yaml",
        suite(
            case(
                "deep",
                "[is-json, {type: equals, value: [1]}, {type: structure, value: {a: integer}}]",
            ),
            case("ok", "[is-json, {type: json-schema, value: {type: object}}]"),
        ),
    )
    result = cli("test-prompts", "-o", "r.json")
    assert result.exit_code == 1, result
    got = results()
    assert got["s/ok"]["status"] == "passed"
    assert got["s/deep"]["reason_kind"] == "invalid_json"
    assert "nested deeper than 200 levels" in got["s/deep"]["assertions"][0]["reason"]


def test_generate_schema_with_a_deep_answer_is_exit_3(
    cli: Any, server: Any, make_config: Any
) -> None:
    make_config(**{"tiers": {"standard": {"fallback": []}}})
    write("s.json", '{"type": "array"}')
    server.set_answer("*", DEEP)
    result = cli("generate", "--schema", "s.json", "hi")
    assert result.exit_code == 3, result
    assert "not JSON (nested deeper than 200 levels)" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}},
        {"$ref": "http://127.0.0.1:9/remote.json"},  # never fetched: refused
        {"allOf": [{"$ref": "other.json#/x"}]},
    ],
)
def test_unresolvable_refs_are_exit_2_before_any_call(
    cli: Any, server: Any, make_config: Any, schema: dict[str, Any]
) -> None:
    make_config()
    write("s.json", json.dumps(schema))
    result = cli("generate", "--schema", "s.json", "hi")
    assert result.exit_code == 2, result
    assert "does not resolve inside the schema" in result.stderr, result
    value = json.dumps(schema)
    write("prompts/x.test.yaml", suite(case("a", f"[{{type: is-json, value: {value}}}]")))
    result = cli("test-prompts")
    assert result.exit_code == 2, result
    assert "x.test.yaml" in result.stderr and "does not resolve" in result.stderr
    assert server.requests == []


@pytest.mark.parametrize("draft", ["x", "http://127.0.0.1:9/s", ["a"]])
def test_an_unknown_dollar_schema_is_exit_2_before_any_call(
    cli: Any, server: Any, make_config: Any, draft: Any
) -> None:
    make_config()
    write("s.json", json.dumps({"$schema": draft, "type": "object"}))
    result = cli("generate", "--schema", "s.json", "hi")
    assert result.exit_code == 2, result
    assert "is not a JSON Schema draft aicli knows" in result.stderr, result
    assert server.requests == []


def test_a_known_dollar_schema_is_used(cli: Any, server: Any, make_config: Any) -> None:
    make_config()
    server.set_answer("*", json.dumps({"n": "x"}))
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}
    write("s.json", json.dumps({**draft7, "properties": {"n": {"type": "integer"}}}))
    result = cli("generate", "--schema", "s.json", "hi")
    assert result.exit_code == 3, result
    assert "is not of type 'integer'" in result.stderr, result


def test_schema_patterns_are_time_bounded(cli: Any, server: Any, make_config: Any) -> None:
    make_config()
    server.set_answer("*", json.dumps({"v": "a" * 60 + "b"}))
    schema = {"type": "object", "properties": {"v": {"type": "string", "pattern": EVIL}}}
    check = f"[{{type: json-schema, value: {json.dumps(schema)}}}]"
    write("prompts/p.test.yaml", suite(case("a", check)))
    result = cli("test-prompts", "-o", "r.json")
    assert result.exit_code == 1, result
    assert "took longer than" in results()["s/a"]["assertions"][0]["reason"]


# jsonschema runs `re.search` itself for `unevaluatedProperties` (through `patternProperties`):
# the stdlib `re` cannot be interrupted, so these run in a subprocess whose timeout turns a
# lost bound into a failure instead of a hung test run.
UNEVALUATED = {"type": "object", "patternProperties": {EVIL: {}}, "unevaluatedProperties": False}


def test_unevaluated_properties_over_a_catastrophic_pattern_is_bounded(
    server: Any, make_config: Any
) -> None:
    make_config()
    server.set_answer("*", json.dumps({"a" * 60 + "b": 1}))
    check = f"[{{type: json-schema, value: {json.dumps(UNEVALUATED)}}}]"
    write("prompts/p.test.yaml", suite(case("a", check)))
    result = run_aicli("test-prompts", "--no-cache", "-o", "r.json", timeout=60)
    assert result.exit_code == 1, result
    assert "Traceback" not in result.stderr
    assert "took longer than" in results()["s/a"]["assertions"][0]["reason"]


def test_a_template_variable_schema_with_a_catastrophic_pattern_is_bounded() -> None:
    write(
        "prompts/t/1.0.0.yaml",
        "name: t\nversion: 1.0.0\ntemplate: '{{ o }}'\n"
        f"variables:\n  o: {json.dumps(UNEVALUATED)}\n",
    )
    result = run_aicli("render", "t", "--var", "o=" + json.dumps({"a" * 60 + "b": 1}), timeout=60)
    assert result.exit_code == 2, result
    assert result.stderr.startswith("aicli: error:") and "took longer than" in result.stderr
    assert "Traceback" not in result.stderr
