"""`aicli test-prompts` reports: every format, a bad --output extension."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from tests.cli.test_prompts.helpers import PEOPLE, last_line, write


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
