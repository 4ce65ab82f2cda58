"""Reports that show their inputs, and CI logs: HTML, JUnit, heartbeat, colour, width, stdout."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_prompts.helpers import last_line, many_cases, write
from tests.helpers import child_env
from tests.test_ci_scale import ECHO_TIERS, echo_suite


class Page(HTMLParser):
    """Every start tag with its attributes, and the text of the page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def ids(self, tag: str) -> set[str]:
        return {a.get("id", "") for t, a in self.tags if t == tag}


def test_html_shows_inputs_filters_and_tiers_side_by_side(cli: Any, make_config: Any) -> None:
    make_config(tiers=ECHO_TIERS)
    write("prompts/s.test.yaml", echo_suite(3, failing=(1,), extra=" <b>asked</b>"))
    write("prompts/t.test.yaml", echo_suite(2, suite="t"))
    res = cli("test-prompts", "-t", "echo", "-t", "echo2", "-o", "r.html")
    assert res.exit_code == 1, res
    html = Path("r.html").read_text(encoding="utf-8")
    page = Page(html)
    # one self-contained file: nothing fetched, nothing run
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "img", "iframe", "object"), tag
        for value in attrs.values():
            assert not re.search(r"(https?:)?//", value), (tag, attrs)
    assert "http://" not in html and "https://" not in html and "@import" not in html
    # the filters: failed / all, every suite, every tier, each with its label
    radios = page.ids("input")
    assert {"f-failed", "f-all", "f-s-all", "f-s0", "f-s1", "f-t-all", "f-t0", "f-t1"} <= radios
    labels = {a.get("for") for t, a in page.tags if t == "label"}
    assert radios <= labels
    text = "".join(page.text)
    for name in ("failed", "all", "s", "t", "echo", "echo2"):
        assert f"{name}" in text
    assert "#f-failed:checked~main .good{display:none}" in html
    # the failing case shows what it was asked, escaped, next to the answer
    assert "Inputs" in text and "bad 1 <b>asked</b>" in text and "<b>asked</b>" not in html
    assert "Tiers side by side" in text
    # the broken assertion is said once per failing card (there are two: echo and echo2)
    assert text.count("expected output containing") == 2 + 2  # cards + side-by-side cells
    assert html.count("icontains &quot;ok&quot;: expected") == 4


def test_junit_failure_bodies_show_inputs_and_errors_carry_their_time(
    cli: Any, server: Any, make_config: Any
) -> None:
    make_config(tiers={"standard": {"fallback": []}})
    write(
        "prompts/p.test.yaml",
        """\
        suite: p
        prompt: "Capital of {{ country }}?"
        cases:
          - {name: fr, vars: {country: France}, assert: [{type: icontains, value: Paris}]}
          - {name: de, vars: {country: Germany}, assert: [{type: icontains, value: Berlin}]}
        """,
    )
    server.set_answer("*", "Lyon")
    server.latency = 0.2
    server.script("standard-model", ["ok", "500"])
    res = cli("test-prompts", "-j", "1", "--no-cache", "-o", "r.xml")
    assert res.exit_code == 1, res
    cases = {c.get("name"): c for c in ET.parse("r.xml").getroot().iter("testcase")}
    failure = cases["fr"].find("failure")
    assert failure is not None
    body = failure.text or ""
    assert "inputs:\n  country: France" in body and "Lyon" in body
    first = body.splitlines()[0]
    assert "Paris" in first and body.count(first) == 1  # not repeated
    assert cases["fr"].find("system-out") is None
    error = cases["de"].find("error")
    assert error is not None and "inputs:\n  country: Germany" in (error.text or "")
    assert float(cases["de"].get("time") or 0) >= 0.15  # the failed try's real time


def test_heartbeat_lines_in_a_ci_log(run_aicli: Any, server: Any, make_config: Any) -> None:
    make_config()
    write("prompts/m.test.yaml", many_cases(8))
    server.latency = 0.35
    res = run_aicli("test-prompts", "-j", "1", "--no-cache", env={"AICLI_PROGRESS_SECONDS": "1"})
    assert res.exit_code == 0, res
    beats = [
        ln
        for ln in res.stderr.splitlines()
        if re.fullmatch(r"\d+/8 done, 0 failed, \$\d+\.\d\d", ln)
    ]
    assert len(beats) >= 2, res.stderr
    done = [int(b.split("/")[0]) for b in beats]
    assert done == sorted(done) and done[-1] < 8
    assert last_line(res.stdout) == "8 passed, 0 failed"  # stdout untouched


def test_colour_in_ci_logs_on_request(run_aicli: Any, make_config: Any) -> None:
    make_config(tiers=ECHO_TIERS)
    write("prompts/s.test.yaml", echo_suite(2, failing=(1,)))
    plain = run_aicli("test-prompts")
    assert plain.exit_code == 1 and "\x1b[" not in plain.stdout
    for env in ({"FORCE_COLOR": "1"}, {"CLICOLOR_FORCE": "1"}):
        res = run_aicli("test-prompts", env=env)
        assert res.exit_code == 1 and "\x1b[" in res.stdout, env
        assert last_line(res.stdout) == "1 passed, 1 failed"
    res = run_aicli("test-prompts", env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "\x1b[" not in res.stdout


def test_80_columns_wrap_at_word_boundaries(run_aicli: Any, make_config: Any) -> None:
    make_config(tiers=ECHO_TIERS)
    names = ["breaking-change-flag-removed", "commit-message-plain-style", "x"]
    cases = "".join(f"  - {{name: {n}, vars: {{text: 'bad {n}'}}}}\n" for n in names)
    write(
        "prompts/commit-message.test.yaml",
        "suite: commit-message\nprompt: '{{ text }}'\ntier: echo\n"
        "defaults:\n  assert: [{type: icontains, value: ok}]\ncases:\n" + cases,
    )
    res = run_aicli("test-prompts", "-t", "echo", "-t", "echo2", env={"COLUMNS": "80"})
    assert res.exit_code == 1, res
    lines = res.stdout.splitlines()
    assert max(len(ln) for ln in lines if not ln.startswith("templates:")) <= 80
    for n in names:
        assert f"commit-message/{n}" in res.stdout  # whole, never commi/t-mes/sage
    for word in ("assertion_failed", "standard", "passed", "failed"):
        assert not any(ln.rstrip().endswith(word[:4]) and word not in ln for ln in lines)


def test_json_report_on_stdout(cli: Any, make_config: Any) -> None:
    make_config(tiers=ECHO_TIERS)
    write("prompts/s.test.yaml", echo_suite(3, failing=(2,)))
    for args in (["-o", "-"], ["--json"], ["--json", "-o", "deep/er/r.xml"]):
        res = cli("test-prompts", *args)
        assert res.exit_code == 1, res
        data = json.loads(res.stdout)  # stdout is the JSON report and nothing else
        assert data["format_version"] == 1 and data["summary"]["failed"] == 1
        assert len(data["results"]) == 3
        assert last_line(res.stderr) == "2 passed, 1 failed"
    assert Path("deep/er/r.xml").is_file()  # -o made the missing folders
    merged = cli("report", "merge", "--json", *_one_report(cli))
    assert json.loads(merged.stdout)["summary"]["total"] == 3


def _one_report(cli: Any) -> list[str]:
    assert cli("test-prompts", "-o", "one.json").exit_code == 1
    return ["one.json"]


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="needs SIGINT")
def test_ctrl_c_without_reports_says_how_far_it_got(server: Any, make_config: Any) -> None:
    make_config()
    write("prompts/m.test.yaml", many_cases(30))
    server.latency = 0.3
    proc = subprocess.Popen(
        [sys.executable, "-m", "aicli", "test-prompts", "-j", "2", "--no-cache"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, env=child_env(None),
    )  # fmt: skip
    try:
        server.wait_for_requests(5, timeout=20)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (stdout, stderr)
    lines = [ln for ln in stderr.splitlines() if "interrupted" in ln]
    assert len(lines) == 1 and re.fullmatch(r"aicli: error: interrupted after \d+/30", lines[0])
    assert "report" not in stderr  # no -o: nothing to point at
    assert re.fullmatch(r"\d+ passed, 0 failed, \d+ skipped", last_line(stdout))
    assert " skipped " not in stdout.replace(last_line(stdout), "").split("results ·")[0]
