"""`aicli test-prompts` end to end: CLI, runner, engine, the openai SDK and the test server."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO_ROOT, TEST_KEY_ENV, child_env

PEOPLE = """\
suite: people
prompt: "Extract the person as JSON: {{ text }}"
cases:
  - name: ada
    vars: {text: "Ada Lovelace, 36"}
    assert:
      - is-json
      - {type: structure, value: {name: string, age: integer}}
      - {type: icontains, value: lovelace}
  - name: alan
    vars: {text: "Alan Turing, 41"}
    assert:
      - is-json
      - {type: structure, value: {name: string, age: integer}}
"""


def write(path: str | Path, text: str) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def last_line(stdout: str) -> str:
    return stdout.rstrip("\n").splitlines()[-1]


def person_answer(body: dict[str, Any]) -> str:
    text = body["messages"][-1]["content"].split(": ", 1)[1]
    name, age = text.rsplit(", ", 1)
    return json.dumps({"name": name, "age": int(age)})


def many_cases(n: int, *, tier: str | None = None, suite: str = "many") -> str:
    head = f"suite: {suite}\nprompt: 'number {{{{ i }}}}'\n" + (f"tier: {tier}\n" if tier else "")
    check = "[{type: contains, value: 'number %d'}]"
    cases = "".join(
        f"  - {{name: c{i:03d}, vars: {{i: {i}}}, assert: {check % i}}}\n" for i in range(n)
    )
    return head + "cases:\n" + cases


@pytest.fixture
def people(server: Any, make_config: Any) -> Any:
    make_config()
    write("prompts/people.test.yaml", PEOPLE)
    server.set_answer("*", person_answer)
    return server


# --- basics -------------------------------------------------------------------------------


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


# --- tiers, model, repeat, filter, fail-fast, pass rate ---------------------------------------


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


# --- cache ------------------------------------------------------------------------------------


def test_cache_reuse_no_cache_and_cache_only(cli: Any, people: Any) -> None:
    assert cli("test-prompts").exit_code == 0
    assert len(people.requests) == 2
    hit = cli("test-prompts", "-o", "hit.json")
    assert hit.exit_code == 0 and len(people.requests) == 2
    assert json.loads(Path("hit.json").read_text())["summary"]["cache_hits"] == 2
    only = cli("test-prompts", "--cache-only")
    assert only.exit_code == 0 and len(people.requests) == 2
    fresh = cli("test-prompts", "--no-cache", "-o", "fresh.json")
    assert fresh.exit_code == 0 and len(people.requests) == 4
    assert json.loads(Path("fresh.json").read_text())["summary"]["cache_hits"] == 0
    write("prompts/new.test.yaml", "suite: new\nprompt: brand new\ncases: [{name: n}]\n")
    miss = cli("test-prompts", "--cache-only", "-k", "new/")
    assert miss.exit_code == 1 and "api_error" in miss.stdout
    assert "not in the cache" in miss.stdout and len(people.requests) == 4
    both = cli("test-prompts", "--no-cache", "--cache-only")
    assert both.exit_code == 2 and "exclude each other" in both.stderr


# --- record and replay ------------------------------------------------------------------------


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


# --- reports ----------------------------------------------------------------------------------


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.external: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.external.append(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_every_report_format(cli: Any, server: Any, make_config: Any) -> None:
    make_config(tiers={"standard": {"fallback": []}, "premium": {"fallback": []}})
    write("prompts/people.test.yaml", PEOPLE)
    # x/down gets a 400 (not retried, no fallback): an error, not a failure
    write("prompts/x.test.yaml", "suite: x\nprompt: boom\ntier: premium\ncases: [{name: down}]\n")
    answers = {"Ada Lovelace, 36": '{"name": "Ada Lovelace", "age": 36}', "Alan Turing, 41": "no"}
    server.set_answer(
        "standard-model", lambda b: answers[b["messages"][-1]["content"].split(": ", 1)[1]]
    )
    server.script("premium-model", ["400"])
    result = cli(
        "test-prompts", "-o", "r.json", "-o", "r.jsonl", "-o", "r.xml", "-o", "r.html"
    )  # fmt: skip
    assert result.exit_code == 1, result
    assert last_line(result.stdout) == "1 passed, 2 failed"

    root = ET.parse("r.xml").getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "1")
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"people [standard]", "x [premium]"}
    assert suites["people [standard]"].get("failures") == "1"
    assert suites["x [premium]"].get("errors") == "1"
    failure = root.find(".//failure")
    assert failure is not None and failure.get("type") == "invalid_json"
    error = root.find(".//error")
    assert error is not None and error.get("type") == "api_error"

    data = json.loads(Path("r.json").read_text())
    assert data["summary"]["total"] == 3 and data["summary"]["errors"] == 1
    by = {r["id"]: r for r in data["results"]}
    assert by["people/ada"]["assertions"][1]["type"] == "structure"
    assert by["people/ada"]["usage"]["total_tokens"] > 0 and by["people/ada"]["cost_usd"] > 0
    assert by["people/alan"]["reason_kind"] == "invalid_json"

    lines = [json.loads(x) for x in Path("r.jsonl").read_text().splitlines()]
    assert sorted(x["id"] for x in lines) == ["people/ada", "people/alan", "x/down"]

    page = Path("r.html").read_text()
    parser = _Assets()
    parser.feed(page)
    assert parser.external == [] and "script" not in parser.tags and "link" not in parser.tags
    text = " ".join(parser.text)
    assert "people/alan" in text and "invalid_json" in text and "x/down" in text


def test_bad_output_extension_is_exit_2_before_any_call(cli: Any, people: Any) -> None:
    result = cli("test-prompts", "-o", "report.pdf")
    assert result.exit_code == 2 and "report.pdf" in result.stderr
    assert people.requests == []


# --- invalid input ----------------------------------------------------------------------------


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


# --- llm-rubric -------------------------------------------------------------------------------


def test_llm_rubric_with_a_grader_tier(cli: Any, server: Any, make_config: Any) -> None:
    make_config(tiers={"grader": {"model": "grader-model", "provider": "fake"}})
    write(
        "prompts/r.test.yaml",
        """\
        suite: r
        prompt: "Tell me about {{ animal }}"
        cases:
          - name: cat
            vars: {animal: cats}
            assert: [{type: llm-rubric, value: Mentions whiskers}]
          - name: dog
            vars: {animal: dogs}
            assert: [{type: llm-rubric, value: Mentions whiskers}]
        """,
    )
    server.set_answer("standard-model", lambda b: f"{b['messages'][-1]['content']}: whiskers"
                      if "cats" in str(b) else "Dogs bark.")  # fmt: skip

    def verdict(body: dict[str, Any]) -> str:
        output = body["messages"][-1]["content"]
        ok = "whiskers" in output.split("</Output>")[0]
        why = "it mentions whiskers" if ok else "no whiskers anywhere"
        return json.dumps({"reason": why, "pass": ok, "score": 1.0 if ok else 0.1})

    server.set_answer("grader-model", verdict)
    result = cli("test-prompts", "-o", "r.json")
    assert result.exit_code == 1, result
    assert "no whiskers anywhere" in result.stdout  # the judge's reason is shown
    assert last_line(result.stdout) == "1 passed, 1 failed"
    graded = server.requests_for("grader-model")
    assert len(graded) == 2 and all(r["body"]["temperature"] == 0 for r in graded)
    data = json.loads(Path("r.json").read_text())
    cat = next(r for r in data["results"] if r["case"] == "cat")
    assert "it mentions whiskers" in cat["assertions"][0]["reason"]

    server.reset()
    server.set_answer("economy-model", lambda b: '{"pass": true, "score": 1, "reason": "fine"}')
    server.set_answer("standard-model", "Dogs bark.")
    forced = cli("test-prompts", "--grader", "economy", "--no-cache")
    assert forced.exit_code == 0, forced
    assert len(server.requests_for("economy-model")) == 2
    assert server.requests_for("grader-model") == []


# --- budget, redaction, verbosity -------------------------------------------------------------


def test_budget_reached_is_exit_4(cli: Any, server: Any, make_config: Any) -> None:
    # each call reserves its worst case (150 tokens out: $0.00009) and spends about $0.00006
    make_config(defaults={"max_tokens": 150}, tiers={"standard": {"fallback": []}})
    write("prompts/m.test.yaml", many_cases(6))
    server.set_answer("*", lambda b: b["messages"][-1]["content"] + " " + "x" * 400)
    result = cli("test-prompts", "--max-cost", "0.0001", "-j", "1", "-o", "r.json")
    assert result.exit_code == 4, result
    data = json.loads(Path("r.json").read_text())
    statuses = [r["status"] for r in data["results"]]
    assert "passed" in statuses and "skipped" in statuses
    assert statuses.count("passed") == len(server.requests) < 6
    skipped = [r["reason"] for r in data["results"] if r["status"] == "skipped"]
    assert all(reason.startswith("budget") for reason in skipped)
    assert data["summary"]["cost_usd"] <= 0.0001
    assert "budget" in result.stderr
    assert last_line(result.stdout).endswith("skipped")


def test_redaction_and_no_redact(cli: Any, server: Any, make_config: Any) -> None:
    make_config()
    write(
        "prompts/e.test.yaml",
        """\
        suite: e
        prompt: "Reply to {{ who }}"
        cases:
          - name: mail
            vars: {who: ada@example.com}
            assert: [{type: contains, value: ada@example.com}]
        """,
    )
    assert cli("test-prompts", "--no-cache").exit_code == 0
    assert server.requests[-1]["messages"][-1]["content"] == "Reply to [EMAIL_1]"
    assert cli("test-prompts", "--no-cache", "--no-redact").exit_code == 0
    assert server.requests[-1]["messages"][-1]["content"] == "Reply to ada@example.com"


def test_passed_rows_of_big_runs_need_verbose(cli: Any, make_config: Any) -> None:
    make_config()
    write("prompts/m.test.yaml", many_cases(51, tier="echo"))
    quiet = cli("test-prompts")
    assert quiet.exit_code == 0, quiet
    assert "(51 passed results not listed; -v lists them)" in quiet.stdout
    assert "c007" not in quiet.stdout
    loud = cli("test-prompts", "-v")
    assert "c007" in loud.stdout and last_line(loud.stdout) == "51 passed, 0 failed"


# --- concurrency, interruption ----------------------------------------------------------------


@pytest.mark.slow
def test_200_cases_really_overlap(cli: Any, server: Any, make_config: Any) -> None:
    make_config()
    write("prompts/m.test.yaml", many_cases(200))
    server.latency = 0.1
    result = cli("test-prompts", "-j", "16", "--no-cache")
    assert result.exit_code == 0, result
    assert last_line(result.stdout) == "200 passed, 0 failed"
    assert len(server.requests) == 200
    assert server.max_in_flight >= 8
    assert server.max_in_flight <= 16


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="needs SIGINT")
def test_ctrl_c_leaves_valid_reports(server: Any, make_config: Any) -> None:
    make_config()
    write("prompts/m.test.yaml", many_cases(40))
    server.latency = 0.4
    proc = subprocess.Popen(
        [sys.executable, "-m", "aicli", "test-prompts", "-j", "2", "--no-cache",
         "-o", "r.json", "-o", "r.xml", "-o", "r.jsonl", "-o", "r.html"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, env=child_env(None),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = Path("r.jsonl").read_text().splitlines() if Path("r.jsonl").exists() else []
            if len(done) >= 3:
                break
            time.sleep(0.05)
        else:
            pytest.fail("no results arrived")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (stdout, stderr)
    assert "interrupted" in stderr and "Traceback" not in stderr
    data = json.loads(Path("r.json").read_text())
    summary = data["summary"]
    assert summary["interrupted"] is True
    assert 3 <= summary["passed"] < 40
    assert summary["passed"] + summary["skipped"] == 40 == len(data["results"])
    root = ET.parse("r.xml").getroot()
    assert root.get("interrupted") == "true" and root.get("tests") == "40"
    assert len(Path("r.jsonl").read_text().splitlines()) == 40
    assert "<html" in Path("r.html").read_text()
    assert (
        last_line(stdout) == f"{summary['passed']} passed, 0 failed, {summary['skipped']} skipped"
    )
    assert len(server.requests) < 40
    # one line says how far it got, not a table row per unstarted case
    assert f"interrupted after {summary['passed']}/40: the reports hold" in stderr
    assert stdout.count("│ skipped") + stdout.count(" skipped ") <= 1


# --- the shipped suites: the README's main job ------------------------------------------------


def test_shipped_suites_replay_green(
    run_aicli: Any, server: Any, isolate: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(REPO_ROOT)
    assert not (REPO_ROOT / "aicli.yaml").exists()
    xml, page = tmp_path / "report.xml", tmp_path / "report.html"
    result = run_aicli(
        "test-prompts", "--replay", "prompts/recordings/shipped.jsonl", "-o", xml, "-o", page
    )
    assert result.exit_code == 0, result
    assert last_line(result.stdout) == "18 passed, 0 failed"
    root = ET.parse(xml).getroot()
    assert (root.get("failures"), root.get("errors")) == ("0", "0")
    suites = {s.get("name", "").split(" ")[0] for s in root.iter("testsuite")}
    assert suites == {"extraction", "summarize", "classify", "commit-message"}
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert server.requests == []
    assert not isolate.cache_dir.exists()  # a replay never touches the cache


@pytest.mark.slow
def test_shipped_recording_matches_the_hand_written_answers() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "make_recording.py"), "--check"],
        capture_output=True, text=True, env=child_env(None), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "up to date" in proc.stdout


def _imports_of(*args: str) -> list[str]:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "aicli", *args],
        capture_output=True, text=True, env=child_env(None), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()]


def test_the_sdk_is_loaded_up_front_only_when_every_case_calls_a_model(
    server: Any, make_config: Any
) -> None:
    make_config()
    write("prompts/many.test.yaml", many_cases(3))
    up_front = _imports_of("test-prompts", "--no-cache")
    assert up_front.index("openai") < up_front.index("aicli.engine")  # before the run starts
    assert len(server.requests) == 3
    lazily = _imports_of("test-prompts")  # cache misses: the first call loads it
    assert lazily.index("aicli.engine") < lazily.index("openai")
    assert len(server.requests) == 6
    assert "openai" not in _imports_of("test-prompts")  # all cache hits: never loaded
    assert "openai" not in _imports_of("test-prompts", "--no-cache", "-t", "echo")
    assert len(server.requests) == 6
