"""Every summary says the same thing: errors counted as failed everywhere, the recorded cost of a
replay, the grader that judged, the baseline's path as given, and a replay miss's real cause."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO_ROOT

SHIPPED = REPO_ROOT / "prompts" / "recordings" / "shipped.jsonl"


def write(path: str, text: str) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def last_line(text: str) -> str:
    return text.rstrip("\n").splitlines()[-1]


# ---- errors are failures, and every summary says how many were errors --------------------------


def test_an_errored_case_is_counted_the_same_in_every_summary(cli: Any, make_config: Any) -> None:
    make_config(default_tier="echo")
    write(
        "prompts/s.test.yaml",
        "suite: s\nprompt: '{{ x }}'\ncases:\n  - name: one\n    vars: {x: hi}\n"
        "    assert: [{type: contains, value: hi}]\n",
    )
    write("empty.jsonl", "")  # every request misses: the case errors (no answer to judge)
    result = cli("test-prompts", "--replay", "empty.jsonl", "-o", "r.md", "-o", "r.html")
    assert result.exit_code == 1, result
    assert last_line(result.stdout) == "0 passed, 1 failed"
    said = "0 passed · 1 failed (incl. 1 error) · 0 skipped"
    assert f"1 result · {said} · pass rate 0.0%" in result.stdout
    assert f"· {said} ·" in Path("r.md").read_text(encoding="utf-8")
    page = Path("r.html").read_text(encoding="utf-8")
    assert f"<td>{said}</td>" in page and "<title>aicli test-prompts: 0 passed, 1 failed" in page


def test_tier_tables_count_errors_among_the_failed(cli: Any, make_config: Any) -> None:
    make_config(tiers={"echo2": {"model": "echo-two", "provider": "echo"}})
    write(
        "prompts/s.test.yaml",
        "suite: s\nprompt: '{{ x }}'\ncases:\n  - name: one\n    vars: {x: hi}\n"
        "    assert: [{type: contains, value: bye}]\n",
    )
    cli("test-prompts", "-t", "echo", "--record", "rec.jsonl")  # echo answered, echo2 not
    result = cli("test-prompts", "-t", "echo", "-t", "echo2", "--replay", "rec.jsonl", "-o", "r.md")
    assert last_line(result.stdout) == "0 passed, 2 failed"
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in Path("r.md").read_text(encoding="utf-8").splitlines()
        if re.match(r"\| echo2? \|", line)
    }
    # pass rate, passed, failed (errors included), incl. errors, skipped
    # pass rate, (95% CI,) passed, failed, incl. errors, skipped
    assert [rows["echo"][0], *rows["echo"][2:6]] == ["0.0%", "0", "1", "0", "0"]
    assert [rows["echo2"][0], *rows["echo2"][2:6]] == ["0.0%", "0", "1", "1", "0"]


# ---- a replay shows what the recorded answers cost -------------------------------------------


@pytest.fixture
def shipped_prompts() -> Path:
    """The shipped prompts, with a config of their own, in this test's folder."""
    shutil.copytree(REPO_ROOT / "prompts", "prompts")
    write("aicli.yaml", "prompts_dir: prompts\n")
    return Path("prompts")


def test_a_replay_shows_the_recorded_cost(cli: Any, shipped_prompts: Path) -> None:
    recorded = sum(json.loads(line)["cost_usd"] for line in SHIPPED.read_text().splitlines())
    result = cli(
        "test-prompts", "--replay", str(SHIPPED), "-o", "r.json", "-o", "r.md", "-o", "r.html"
    )
    assert result.exit_code == 0, result
    data = json.loads(Path("r.json").read_text(encoding="utf-8"))
    assert data["summary"]["cost_usd"] == 0  # nothing was spent
    assert data["summary"]["recorded_cost_usd"] == pytest.approx(recorded, abs=1e-8)
    by_tier = {t["tier"]: t["recorded_cost_usd"] for t in data["tiers"]}
    assert set(by_tier) == {"economy", "standard"} and all(v > 0 for v in by_tier.values())
    assert sum(by_tier.values()) == pytest.approx(recorded, abs=1e-8)
    assert all(r["recorded_cost_usd"] >= 0 for r in data["results"])
    assert f"cost $0.000000 (recorded cost ${recorded:.6f})" in result.stdout
    assert "recorded cost" in result.stdout.split("By tier")[1]  # a column of the tier table
    assert f"(recorded cost ${recorded:.4f})" in Path("r.md").read_text(encoding="utf-8")
    page = Path("r.html").read_text(encoding="utf-8")
    assert f"<tr><td>recorded cost</td><td>${recorded:.6f}</td></tr>" in page
    assert "<th>recorded cost</th>" in page  # a column of the tier table
    # merged again from the JSON, the recorded cost survives
    merged = cli("report", "merge", "r.json", "-o", "m.json")
    again = json.loads(Path("m.json").read_text(encoding="utf-8"))
    assert merged.exit_code == 0
    assert again["summary"]["recorded_cost_usd"] == data["summary"]["recorded_cost_usd"]


def test_a_live_run_has_no_recorded_cost(cli: Any, make_config: Any) -> None:
    make_config(default_tier="echo")
    write("prompts/s.test.yaml", "suite: s\nprompt: hi\ncases: [{name: one}]\n")
    result = cli("test-prompts", "-o", "r.json")
    assert "recorded cost" not in result.stdout
    assert "recorded_cost_usd" not in Path("r.json").read_text(encoding="utf-8")


# ---- the grader that judged, named also when it is the default ---------------------------------


@pytest.mark.parametrize(("extra_tiers", "judge"), [({}, "standard"), ({"grader": {}}, "grader")])
def test_the_grader_is_named_when_the_default_one_judges(
    cli: Any, server: Any, make_config: Any, extra_tiers: dict[str, Any], judge: str
) -> None:
    tiers = {n: {"model": "grader-model", "provider": "fake"} for n in extra_tiers}
    make_config(tiers=tiers)
    write(
        "prompts/r.test.yaml",
        "suite: r\nprompt: hi\ntier: economy\ncases:\n  - name: one\n"
        "    assert: [{type: llm-rubric, value: is polite}]\n",
    )
    verdict = '{"pass": true, "score": 1, "reason": "polite"}'
    for model in ("standard-model", "grader-model"):
        server.set_answer(model, verdict)
    server.set_answer("economy-model", "Hello there.")
    result = cli("test-prompts", "-o", "r.json")
    assert result.exit_code == 0, result
    (case,) = json.loads(Path("r.json").read_text(encoding="utf-8"))["results"]
    assert case["assertions"][0]["grader"] == judge


# ---- the baseline's path, as given, in the Markdown too ---------------------------------------


def test_markdown_names_the_baseline_as_the_terminal_does(cli: Any, make_config: Any) -> None:
    make_config(default_tier="echo")
    write("prompts/s.test.yaml", "suite: s\nprompt: hi\ncases: [{name: one}]\n")
    cli("test-prompts", "-o", "merged/report.json")
    result = cli("test-prompts", "--baseline", "merged/report.json", "-o", "r.md")
    assert "Compared with merged/report.json" in result.stdout
    assert "### Compared with merged/report.json\n" in Path("r.md").read_text(encoding="utf-8")


# ---- a replay miss names what changed ---------------------------------------------------------


def _classify_only(result: Any) -> list[str]:
    return [ln for ln in result.stdout.splitlines() if "not recorded" in ln]


def test_a_changed_suite_variable_is_named_as_a_changed_prompt(
    cli: Any, shipped_prompts: Path
) -> None:
    suite = shipped_prompts / "classify" / "classify.test.yaml"
    before = "labels: [bug, feature, question]"  # the suite's variable, for every case
    suite.write_text(suite.read_text().replace(before, before[:-1] + ", praise]"), "utf-8")
    result = cli("test-prompts", str(suite), "--replay", str(SHIPPED), "-k", "crash-report")
    assert result.exit_code == 1, result
    assert "the prompt changed" in result.stdout
    warning = [ln for ln in result.stderr.splitlines() if "no request matched" in ln]
    assert warning and "the prompt changed" in warning[0], result.stderr
    assert "OPENAI_BASE_URL" not in result.stderr


def test_a_changed_template_is_named(cli: Any, shipped_prompts: Path) -> None:
    tpl = shipped_prompts / "classify" / "1.0.0.yaml"
    tpl.write_text(tpl.read_text().replace("precise", "careful"), encoding="utf-8")
    (shipped_prompts / "prompts.lock").unlink()  # the lock would refuse the edit first
    result = cli("test-prompts", "prompts/classify", "--replay", str(SHIPPED))
    assert "template classify@1.0.0 changed since the recording" in result.output, result


def test_another_endpoint_is_named(cli: Any, shipped_prompts: Path) -> None:
    result = cli(
        "test-prompts", "prompts/classify", "--replay", str(SHIPPED),
        env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"},
    )  # fmt: skip
    assert "now sends to another endpoint than the recording's" in result.output, result


def test_a_tier_that_was_never_recorded_is_named(cli: Any, shipped_prompts: Path) -> None:
    write("aicli.yaml", "prompts_dir: prompts\ndefault_tier: solo\ntiers: {solo: {model: m}}\n")
    result = cli("test-prompts", "prompts/classify", "-t", "solo", "--replay", str(SHIPPED))
    assert "the recording has no answer from tier 'solo'" in result.output, result
