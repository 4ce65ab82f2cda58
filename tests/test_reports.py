"""Reports: summary maths, JUnit/JSON/JSONL/HTML writers, atomic writes, the terminal table."""

from __future__ import annotations

import io
import json
import os
import stat
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from aicli.errors import UsageError
from aicli.reports import close_writers, open_writers
from aicli.reports.atomic import atomic_write
from aicli.reports.json import JsonWriter
from aicli.reports.results import CaseResult
from aicli.reports.summary import final_line, percentile, summarize
from aicli.reports.terminal import render_terminal
from aicli.suites.assertions import Observation, check_one
from aicli.suites.model import Assertion
from aicli.types import TemplateRef, Usage

TPL = TemplateRef("extraction", "1.2.0", "abcdef123456")
EVIL = "<script>alert('x')</script> & [bold]not markup[/bold] \x07bell \x00nul"


def result(
    case: str = "apple",
    tier: str = "economy",
    status: str = "passed",
    *,
    suite: str = "extraction",
    output: str = '{"company": "Apple"}',
    latency: float = 100.0,
    repeat: int = 0,
    kind: str | None = None,
    reason: str = "",
    cached: bool = False,
) -> CaseResult:
    asserts = []
    if status == "failed":
        a = Assertion("icontains", "cupertino", index=0)
        asserts = [check_one(a, Observation(output)).record()]
        kind = kind or asserts[0].kind
        reason = reason or asserts[0].reason
    elif status == "passed":
        asserts = [check_one(Assertion("is-json"), Observation(output)).record()]
    return CaseResult(
        suite=suite,
        case=case,
        tier=tier,
        repeat_index=repeat,
        status=status,
        reason_kind=kind,
        reason=reason,
        output=output if status != "error" else "",
        assertions=asserts,
        score=1.0 if status == "passed" else 0.0,
        latency_ms=latency,
        usage=Usage(10, 5, 15),
        cost_usd=0.001,
        cached=cached,
        model_used="gpt-4o-mini",
        template=TPL,
        vars={"text": "Apple"},
        file="prompts/extraction.test.yaml",
    )


def mixed() -> list[CaseResult]:
    return [
        result("apple", "economy", "passed", latency=100, cached=True),
        result("apple", "premium", "failed", latency=300, output=EVIL),
        result("pear", "economy", "error", kind="api_error", reason="no recorded answer"),
        result("pear", "premium", "passed", latency=200),
        result("fig", "economy", "skipped", reason="skipped in the suite file"),
        result("kiwi", "economy", "error", kind="render_error", reason="bad var"),
    ]


# ---- summary -------------------------------------------------------------------------------


def test_summary_totals_tiers_and_disagreements() -> None:
    s = summarize(mixed(), duration_s=1.5)
    assert (s.total, s.passed, s.failed, s.errors, s.skipped) == (6, 2, 1, 2, 1)
    assert s.cache_hits == 1 and s.usage.total_tokens == 90
    assert s.cost_usd == pytest.approx(0.006)
    assert s.pass_rate == pytest.approx(2 / 5)
    eco, pre = s.tiers
    assert (eco.tier, eco.passed, eco.errors, eco.skipped, eco.pass_rate) == (
        "economy",
        1,
        2,
        1,
        1 / 3,
    )
    assert (pre.tier, pre.passed, pre.failed, pre.pass_rate) == ("premium", 1, 1, 0.5)
    assert (pre.mean_latency_ms, pre.p95_latency_ms) == (250.0, 300.0)
    assert eco.mean_latency_ms == 100.0  # errors and skips have no latency to speak of
    by_case = {d.case_id: (d.passed_on, d.failed_on) for d in s.disagreements}
    # pear errored on economy: an error is no verdict, so the tiers do not disagree on it
    assert by_case == {"extraction/apple": (["economy"], ["premium"])}
    assert final_line(s) == "2 passed, 3 failed, 1 skipped"
    assert final_line(summarize([result()])) == "1 passed, 0 failed"


def test_repeats_give_pass_rate_per_case_and_flaky_cases() -> None:
    runs = [result("a", status=st, repeat=i) for i, st in enumerate(["passed", "failed", "passed"])]
    runs += [result("b", repeat=i) for i in range(3)]
    s = summarize(runs)
    assert s.repeats == 3
    stats = {c.case_id: (c.runs, c.passed, c.flaky) for c in s.case_stats}
    assert stats == {"extraction/a": (3, 2, True), "extraction/b": (3, 3, False)}
    assert [c.case_id for c in s.flaky] == ["extraction/a"]
    assert s.to_dict()["flaky"][0]["pass_rate"] == pytest.approx(0.6667)


def test_percentile_nearest_rank() -> None:
    assert percentile([], 95) is None
    assert percentile([5.0], 95) == 5.0
    assert percentile([float(i) for i in range(1, 21)], 95) == 19.0
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0


# ---- writers -------------------------------------------------------------------------------


@pytest.fixture
def out(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path


def write_all(tmp: Path, results: list[CaseResult], **summary_kw: Any) -> dict[str, Path]:
    paths = {ext: tmp / f"report{ext}" for ext in (".json", ".jsonl", ".xml", ".html")}
    writers = open_writers(list(paths.values()))
    for r in results:
        for w in writers:
            w.add(r)
    close_writers(writers, summarize(results, **summary_kw))
    return paths


def test_junit_keeps_failures_and_errors_apart(out: Path) -> None:
    paths = write_all(out, mixed())
    root = ET.parse(paths[".xml"]).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == (
        "6",
        "1",
        "2",
        "1",
    )
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"extraction [economy]", "extraction [premium]"}
    eco = suites["extraction [economy]"]
    assert (eco.get("tests"), eco.get("failures"), eco.get("errors"), eco.get("skipped")) == (
        "4",
        "0",
        "2",
        "1",
    )
    cases = {c.get("name"): c for c in eco.iter("testcase")}
    assert cases["apple"].get("classname") == "extraction.economy"
    assert cases["apple"].get("time") == "0.100"
    assert cases["pear"].find("error").get("type") == "api_error"  # type: ignore[union-attr]
    assert cases["kiwi"].find("error").get("type") == "render_error"  # type: ignore[union-attr]
    assert cases["fig"].find("skipped") is not None
    prem = {c.get("name"): c for c in suites["extraction [premium]"].iter("testcase")}
    failure = prem["apple"].find("failure")
    assert failure is not None and failure.get("type") == "assertion_failed"
    assert "cupertino" in (failure.get("message") or "")
    body = failure.text or ""
    assert "<script>" in body and "\\x07bell" in body  # the answer, in the failure body
    assert "inputs:\n  text: Apple" in body
    # the broken assertion once: as the message, and once in the body (not twice there)
    assert body.count("expected output containing") == 1
    assert prem["apple"].find("system-out") is None  # the answer is not repeated
    found = eco.find("properties")
    assert found is not None
    props = {p.get("name"): p.get("value") for p in found.iter("property")}
    assert props["tier"] == "economy" and props["template"] == "extraction@1.2.0 (abcdef123456)"
    assert props["tier_runs"] == "3"  # k of n over the tier's runs (the skipped one is none)


def test_junit_names_repeated_runs(out: Path) -> None:
    paths = write_all(out, [result("a", repeat=i) for i in range(2)])
    names = [c.get("name") for c in ET.parse(paths[".xml"]).getroot().iter("testcase")]
    assert names == ["a [run 1]", "a [run 2]"]


def test_json_report_has_everything(out: Path) -> None:
    paths = write_all(out, mixed(), duration_s=2.0)
    data = json.loads(paths[".json"].read_text(encoding="utf-8"))
    assert list(data) == ["format_version", "summary", "tiers", "baseline", "results"]
    assert data["format_version"] == 1 and data["baseline"] is None
    assert data["summary"]["failed"] == 1 and data["summary"]["errors"] == 2
    assert data["summary"]["interrupted"] is False and data["summary"]["duration_s"] == 2.0
    assert [t["tier"] for t in data["tiers"]] == ["economy", "premium"]
    assert data["tiers"][1]["pass_rate"] == 0.5
    assert len(data["results"]) == 6
    failed = data["results"][1]
    assert failed["status"] == "failed" and failed["reason_kind"] == "assertion_failed"
    assert failed["output"] == EVIL
    assert failed["template"] == {
        "name": "extraction",
        "version": "1.2.0",
        "checksum": "abcdef123456",
    }
    assert failed["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert failed["assertions"][0]["type"] == "icontains"
    assert failed["assertions"][0]["passed"] is False and failed["cost_usd"] == 0.001


def test_json_report_with_no_results(out: Path) -> None:
    paths = write_all(out, [], interrupted=True)
    data = json.loads(paths[".json"].read_text(encoding="utf-8"))
    assert data["results"] == [] and data["summary"]["interrupted"] is True
    assert ET.parse(paths[".xml"]).getroot().get("tests") == "0"
    assert paths[".jsonl"].read_text() == ""


def test_jsonl_streams_lines_before_close(out: Path) -> None:
    path = out / "live.jsonl"
    [writer] = open_writers([path])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    writer.add(result("a"))
    writer.add(result("b", status="failed"))
    lines = path.read_text(encoding="utf-8").splitlines()  # before close
    assert [json.loads(line)["case"] for line in lines] == ["a", "b"]
    writer.add(result("c"))
    writer.close(summarize([]))
    assert len(path.read_text(encoding="utf-8").splitlines()) == 3


def test_jsonl_tightens_an_existing_file(out: Path) -> None:
    path = out / "old.jsonl"
    path.write_text("stale\n")
    path.chmod(0o644)
    [writer] = open_writers([path])
    writer.close(summarize([]))
    assert path.read_text() == "" and stat.S_IMODE(path.stat().st_mode) == 0o600


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[tuple[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "srcset", "action", "data") and value:
                self.links.append((tag, value))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_self_contained_and_escaped(out: Path) -> None:
    paths = write_all(out, mixed(), interrupted=True)
    html = paths[".html"].read_text(encoding="utf-8")
    page = _Page()
    page.feed(html)
    page.close()
    assert page.links == []
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert "url(" not in html and "@import" not in html
    assert "&lt;script&gt;alert(" in html  # the answer is shown, escaped
    assert "\x00" not in html and "\x07" not in html
    text = "".join(page.text)
    assert "Tiers" in text and "economy" in text and "premium" in text
    assert "Cases the tiers disagree on" in text and "interrupted" in text
    assert "Failures (3)" in text
    assert page.tags.count("details") == 3  # passed and skipped cases are collapsed
    assert "no recorded answer" in text


def test_report_files_are_owner_only(out: Path) -> None:
    for path in write_all(out, mixed()).values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert sorted(p.name for p in out.iterdir()) == [
        "report.html",
        "report.json",
        "report.jsonl",
        "report.xml",
    ]


def test_open_writers_checks_paths_first(out: Path) -> None:
    with pytest.raises(UsageError, match=r"unknown report format '\.txt'") as info:
        open_writers([out / "r.json", out / "r.txt"])
    assert ".jsonl" in (info.value.hint or "")
    assert not (out / "r.json").exists()
    (out / "file").write_text("x")
    with pytest.raises(UsageError, match="is not a folder"):
        open_writers([out / "file" / "r.xml"])
    # a missing folder is created (CI jobs write to reports/...)
    for w in open_writers([out / "new" / "deep" / "r.xml"]):
        w.abort()
    assert (out / "new" / "deep").is_dir()
    with pytest.raises(UsageError, match="given twice"):
        open_writers([out / "r.xml", out / "r.xml"])


def test_atomic_write_leaves_nothing_partial(out: Path) -> None:
    target = out / "report.xml"

    def explode(f: Any) -> None:
        f.write(b"<testsuites>half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, explode)
    assert list(out.iterdir()) == []
    target.write_text("previous report")
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, explode)
    assert target.read_text() == "previous report"
    assert list(out.iterdir()) == [target]


def test_json_writer_failure_mid_close_keeps_old_report(
    out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = out / "r.json"
    path.write_text('{"old": true}')
    writer = JsonWriter(path)
    writer.add(result())

    def boom(*args: Any, **kw: Any) -> None:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr("aicli.reports.json.shutil.copyfileobj", boom)
    with pytest.raises(UsageError, match="No space left"):
        close_writers([writer], summarize([]))
    assert json.loads(path.read_text()) == {"old": True}
    assert [p.name for p in out.iterdir()] == ["r.json"]


def test_interrupted_run_still_writes_valid_reports(out: Path) -> None:
    done = mixed()[:2]  # the rest never ran
    paths = write_all(out, done, interrupted=True)
    assert json.loads(paths[".json"].read_text())["summary"]["interrupted"] is True
    root = ET.parse(paths[".xml"]).getroot()
    assert root.get("interrupted") == "true" and root.get("tests") == "2"
    assert len(paths[".jsonl"].read_text().splitlines()) == 2


# ---- terminal --------------------------------------------------------------------------------


def render(results: list[CaseResult], **kw: Any) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=200, no_color=True, highlight=False)
    render_terminal(summarize(results, duration_s=1.0), results, console, **kw)
    return buf.getvalue()


def test_terminal_table_failures_and_tier_comparison() -> None:
    text = render(mixed())
    for col in ("suite", "case", "tier", "status", "reason", "latency", "tokens", "cost", "cached"):
        assert col in text
    assert "FAILED extraction/apple [premium]: assertion_failed" in text
    assert 'icontains "cupertino": expected output containing "cupertino"' in text
    assert "answer: <script>" in text
    assert "[bold]not markup[/bold]" in text  # user text is never read as rich markup
    assert "ERROR extraction/pear [economy]: api_error" in text and "no recorded answer" in text
    assert "Tiers compared" in text and "Cases the tiers disagree on" in text
    assert "6 results · 2 passed · 3 failed (incl. 2 errors) · 1 skipped" in text
    assert "passed, 3 failed" not in text  # the final line is the caller's


def test_terminal_single_tier_has_no_comparison_and_shows_flaky() -> None:
    runs = [result("a", status=st, repeat=i) for i, st in enumerate(["passed", "failed"])]
    text = render(runs, show_passed=False)
    assert "Tiers compared" not in text
    assert "Pass rate over 2 runs" in text and "flaky" in text
    assert "a #2" in text and "a #1" not in text


def test_excerpt() -> None:
    r = result(output="line one\n\n  line two " + "x" * 300)
    assert r.excerpt(20) == "line one line two x…" and len(r.excerpt()) == 200
    assert os.linesep not in r.excerpt()
    assert result(output="a\x1b[2Jb\x07").excerpt() == "a\\x1b[2Jb\\x07"


def test_only_the_report_formats_asked_for_are_imported(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; from aicli.reports import open_writers\n"
        "for w in open_writers([Path(p) for p in sys.argv[1:]]): w.abort()\n"
        "print(' '.join(m for m in sys.modules if m.startswith('aicli.reports.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "r.jsonl"), str(tmp_path / "r.xml")],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert {"aicli.reports.jsonl", "aicli.reports.junit"} <= set(out)
    assert "aicli.reports.html" not in out and "aicli.reports.markdown" not in out
