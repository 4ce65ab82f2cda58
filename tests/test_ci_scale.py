"""CI at scale through the CLI: --shard, report merge, --baseline, --fail-on, Markdown, tiers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from tests.cli.test_prompts.helpers import last_line, write

ECHO_TIERS = {"echo2": {"model": "echo2", "provider": "echo"}}


def echo_suite(n: int, *, suite: str = "s", failing: tuple[int, ...] = (), extra: str = "") -> str:
    """Cases c000.. on the offline echo tier: the answer is the prompt, so `ok` in it passes."""
    cases = "".join(
        f"  - {{name: c{i:03d}, vars: {{text: '{'bad' if i in failing else 'ok'} {i}{extra}'}}}}\n"
        for i in range(n)
    )
    return (
        f"suite: {suite}\nprompt: '{{{{ text }}}}'\ntier: echo\n"
        "defaults:\n  assert: [{type: icontains, value: ok}]\ncases:\n" + cases
    )


def shard_of(case_id: str, n: int) -> int:
    """SPEC's formula, written out independently of aicli."""
    return int(hashlib.sha256(case_id.encode()).hexdigest(), 16) % n + 1


def ids(report: Path) -> list[tuple[str, str, int]]:
    data = json.loads(report.read_text(encoding="utf-8"))
    return [(r["id"], r["tier"], r["repeat"]) for r in data["results"]]


def result_dict(
    case: str, status: str, *, suite: str = "s", tier: str = "echo", **kw: Any
) -> dict[str, Any]:
    return {"suite": suite, "case": case, "tier": tier, "repeat": 0, "status": status,
            "reason_kind": "assertion_failed" if status == "failed" else None,
            "reason": "assertion_failed: expected ok" if status == "failed" else "",
            "output": kw.pop("output", "an answer"), "latency_ms": kw.pop("latency_ms", 10.0),
            "cost_usd": kw.pop("cost_usd", 0.0), **kw}  # fmt: skip


def report_file(path: str | Path, results: list[dict[str, Any]], **top: Any) -> Path:
    p = Path(path)
    doc = {"format_version": 1, "summary": {}, "tiers": [], "results": results, **top}
    p.write_text(json.dumps(doc), encoding="utf-8")
    return p


@pytest.fixture
def echo_config(make_config: Any) -> Any:
    return make_config(tiers=ECHO_TIERS)


# --- shards -------------------------------------------------------------------------------


def test_shards_partition_exactly_and_stay_stable(cli: Any, echo_config: Any) -> None:
    write("prompts/s.test.yaml", echo_suite(30))
    everything = set()
    owner: dict[str, int] = {}
    for k in (1, 2, 3):
        res = cli("test-prompts", "--shard", f"{k}/3", "-t", "echo", "-t", "echo2",
                  "--repeat", "2", "-o", f"shard{k}.json")  # fmt: skip
        assert res.exit_code == 0, res
        lines = res.stdout.rstrip("\n").splitlines()
        assert lines[-2] == f"shard {k}/3" and last_line(res.stdout).endswith(" passed, 0 failed")
        got = ids(Path(f"shard{k}.json"))
        cases = {cid for cid, _, _ in got}
        # every tier and every repeat of a case stay in its shard
        assert sorted(got) == sorted(
            (c, t, i) for c in cases for t in ("echo", "echo2") for i in (0, 1)
        )
        assert not cases & everything
        everything |= cases
        for c in cases:
            assert shard_of(c, 3) == k
            owner[c] = k
    assert everything == {f"s/c{i:03d}" for i in range(30)}
    assert all(owner.values()) and len(set(owner.values())) == 3

    write("prompts/s.test.yaml", echo_suite(40))  # adding cases moves no old one
    for k in (1, 2, 3):
        assert cli("test-prompts", "--shard", f"{k}/3", "-o", f"again{k}.json").exit_code == 0
        for cid, _, _ in ids(Path(f"again{k}.json")):
            assert owner.get(cid, k) == k


@pytest.mark.parametrize("bad", ["0/3", "4/3", "3", "a/b", "1/0", "-1/2"])
def test_bad_shard_is_a_usage_error(cli: Any, echo_config: Any, bad: str) -> None:
    write("prompts/s.test.yaml", echo_suite(2))
    res = cli("test-prompts", "--shard", bad)
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.startswith("aicli: error: --shard")


# --- merge --------------------------------------------------------------------------------


def test_merged_shards_equal_the_unsharded_run(cli: Any, echo_config: Any) -> None:
    write("prompts/s.test.yaml", echo_suite(24, failing=(3, 7, 19)))
    whole = cli("test-prompts", "-o", "whole.json")
    assert whole.exit_code == 1
    for k in (1, 2, 3):
        assert cli("test-prompts", "--shard", f"{k}/3", "-o", f"p{k}.json").exit_code in (0, 1)
    merged = cli("report", "merge", "p1.json", "p2.json", "p3.json", "-o", "out/m.json",
                 "-o", "out/m.md")  # fmt: skip
    assert merged.exit_code == whole.exit_code == 1, merged
    assert last_line(merged.stdout) == last_line(whole.stdout) == "21 passed, 3 failed"
    a = json.loads(Path("whole.json").read_text())["summary"]
    b = json.loads(Path("out/m.json").read_text())["summary"]
    for key in ("total", "passed", "failed", "errors", "skipped", "pass_rate"):
        assert a[key] == b[key], key
    assert sorted(ids(Path("whole.json"))) == sorted(ids(Path("out/m.json")))
    # a merged report is a report: merging it again changes nothing, a green run exits 0
    again = cli("report", "merge", "out/m.json")
    assert again.exit_code == 1 and last_line(again.stdout) == "21 passed, 3 failed"
    report_file("green.json", [result_dict("a", "passed")])
    assert cli("report", "merge", "green.json").exit_code == 0


def test_merge_refuses_bad_inputs_with_exit_2(cli: Any, echo_config: Any) -> None:
    one = report_file("one.json", [result_dict("a", "passed"), result_dict("b", "failed")])
    two = report_file("two.json", [result_dict("b", "passed")])
    Path("garbage.json").write_text("{not json", encoding="utf-8")
    report_file("v2.json", [], format_version=2)
    Path("old.json").write_text(json.dumps({"summary": {}, "results": []}), encoding="utf-8")
    Path("list.json").write_text("[1, 2]", encoding="utf-8")
    report_file("badresult.json", [{"suite": "s", "case": "x", "tier": "t", "status": "weird"}])
    cases = {
        ("one.json", "two.json"): ["one.json and two.json", "s/b [echo]"],
        ("one.json", "one.json"): [
            "one.json (report 1) and one.json (report 2) are the same file: both hold s/a [echo]"
        ],
        ("one.json", "garbage.json"): ["garbage.json: not JSON"],
        ("v2.json",): ["v2.json: unknown format_version 2"],
        ("old.json",): ["old.json: unknown format_version missing"],
        ("list.json",): ["list.json: not an aicli JSON report"],
        ("badresult.json",): ["badresult.json: result #1: unknown status 'weird'"],
        ("missing.json",): ["missing.json: cannot read it"],
    }
    for args, expected in cases.items():
        res = cli("report", "merge", *args, "-o", "never.json")
        assert res.exit_code == 2, (args, res)
        assert res.stdout == "" and res.stderr.startswith("aicli: error: "), (args, res)
        assert len(res.stderr.splitlines()) == 2 and "Traceback" not in res.stderr
        for text in expected:
            assert text in res.stderr, (args, res.stderr)
        assert not Path("never.json").exists()
    assert one.exists() and two.exists()


# --- baseline -----------------------------------------------------------------------------


def test_baseline_statuses_and_fail_on(cli: Any, echo_config: Any) -> None:
    # now: c000 fails (was passing), c001 passes (was failing), c002 passes (as before),
    # c003 is new and fails, c004 is new and passes; `gone` is only in the baseline.
    write("prompts/s.test.yaml", echo_suite(5, failing=(0, 3)))
    report_file("base.json", [
        result_dict("c000", "passed"), result_dict("c001", "failed"),
        result_dict("c002", "passed", cost_usd=0.5, latency_ms=900.0),
        result_dict("gone", "passed"),
    ])  # fmt: skip
    outs = ["-o", "r.json", "-o", "r.md", "-o", "r.html", "-o", "r.xml", "-o", "r.jsonl"]
    res = cli("test-prompts", "--baseline", "base.json", *outs)
    assert res.exit_code == 1, res
    data = json.loads(Path("r.json").read_text())
    diff = data["baseline"]
    assert diff["source"] == "base.json"
    assert diff["counts"] == {"regressed": 1, "fixed": 1, "new": 2, "removed": 1, "unchanged": 1}
    changes = {c["case_id"]: c["change"] for c in diff["cases"]}
    assert changes == {"s/c000": "regressed", "s/c001": "fixed", "s/c003": "new",
                       "s/c004": "new", "s/gone": "removed"}  # fmt: skip
    (tier,) = diff["tiers"]
    assert tier["tier"] == "echo" and tier["pass_rate_before"] == 0.75
    assert tier["pass_rate_after"] == 0.6 and tier["pass_rate_change"] == pytest.approx(-0.15)
    assert tier["cost_usd_before"] == 0.5 and tier["cost_usd_change"] == -0.5
    assert tier["p95_latency_ms_before"] == 900.0
    assert "Compared with base.json: 1 regressed · 1 fixed · 2 new · 1 removed" in res.stdout
    md = Path("r.md").read_text()
    assert md.index("### Regressions (1)") < md.index("### Failures (1)")
    listed = md[md.index("### Regressions") :]  # the significance tables come first
    assert listed.count("| c000 |") == 1 and listed.count("| c003 |") == 1  # listed once each
    assert "regressed" in Path("r.html").read_text() and "baseline" in Path("r.xml").read_text()
    last = json.loads(Path("r.jsonl").read_text().splitlines()[-1])
    assert last["baseline"]["counts"]["regressed"] == 1

    # --fail-on regressions: the regression and the new failure fail it ...
    assert cli("test-prompts", "--baseline", "base.json", "--fail-on", "regressions").exit_code == 1
    # ... but failures that were already there do not
    report_file("base2.json", [result_dict("c000", "failed"), result_dict("c003", "failed")])
    ok = cli("test-prompts", "--baseline", "base2.json", "--fail-on", "regressions")
    assert ok.exit_code == 0, ok
    assert last_line(ok.stdout) == "3 passed, 2 failed"
    assert cli("test-prompts", "--baseline", "base2.json").exit_code == 1  # --fail-on any
    merged = cli(
        "report", "merge", "r.json", "--baseline", "base2.json", "--fail-on", "regressions"
    )
    assert merged.exit_code == 0, merged
    # regressions need a baseline; a bad baseline is refused like a bad merge input
    res = cli("test-prompts", "--fail-on", "regressions")
    assert res.exit_code == 2 and "--baseline" in res.stderr
    report_file("v9.json", [], format_version=9)
    res = cli("test-prompts", "--baseline", "v9.json")
    assert res.exit_code == 2 and "v9.json: unknown format_version 9" in res.stderr


def test_a_shard_compares_only_its_own_baseline_cases(cli: Any, echo_config: Any) -> None:
    write("prompts/s.test.yaml", echo_suite(12))
    assert cli("test-prompts", "-o", "base.json").exit_code == 0
    res = cli("test-prompts", "--shard", "2/3", "--baseline", "base.json", "-o", "r.json")
    assert res.exit_code == 0, res
    counts = json.loads(Path("r.json").read_text())["baseline"]["counts"]
    mine = sum(shard_of(f"s/c{i:03d}", 3) == 2 for i in range(12))
    assert counts == {"regressed": 0, "fixed": 0, "new": 0, "removed": 0, "unchanged": mine}


# --- Markdown -----------------------------------------------------------------------------


def test_markdown_has_the_table_and_escapes_answers(cli: Any, echo_config: Any) -> None:
    evil = "<script>alert(1)</script> **bold** [link](http://x) | pipe"
    write("prompts/s.test.yaml", echo_suite(3, failing=(1,), extra=" " + evil.replace("'", "")))
    res = cli("test-prompts", "-o", "r.md")
    assert res.exit_code == 1
    text = Path("r.md").read_text(encoding="utf-8")
    assert text.startswith("<!-- aicli-report -->\n## ❌ aicli test-prompts: 2 passed, 1 failed")
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "<table>" in html and ">pass rate</th>" in html
    assert "<script>" not in html and "<strong>bold" not in html and "<a href" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<td>c001</td>" in html and "<td>c000</td>" not in html  # only failures are listed
    row = next(line for line in text.splitlines() if line.startswith("| s | c001 |"))
    assert row.count(" | ") == 4  # the pipe in the answer did not add a column


def test_a_huge_failing_run_stays_under_the_size_limit(cli: Any, echo_config: Any) -> None:
    long = "x" * 400
    for part in range(3):
        results = [result_dict(f"case-{part}-{i:04d}", "failed", output=f"answer {long}")
                   for i in range(1000)]  # fmt: skip
        report_file(f"part{part}.json", results)
    res = cli("report", "merge", "part0.json", "part1.json", "part2.json", "-o", "big.md")
    assert res.exit_code == 1 and last_line(res.stdout) == "0 passed, 3000 failed"
    assert "(2900 more failures not explained here; -v or the reports)" in res.stdout
    text = Path("big.md").read_text(encoding="utf-8")
    assert len(text) <= 60_000
    shown = sum(line.startswith("| s | case-") for line in text.splitlines())
    assert 100 < shown < 3000
    assert f"_{3000 - shown} more rows left out" in text
    assert "<td>" in MarkdownIt("commonmark").enable("table").render(text)


# --- honest tier comparisons --------------------------------------------------------------


PEOPLE_2 = """\
suite: p
prompt: "Say ok to {{ who }}"
cases:
  - {name: a, vars: {who: ada}, assert: [{type: icontains, value: ok}]}
  - {name: b, vars: {who: bob}, assert: [{type: icontains, value: ok}]}
"""


def test_compared_tiers_answer_for_themselves(cli: Any, server: Any, make_config: Any) -> None:
    make_config()  # standard falls back to economy
    write("prompts/p.test.yaml", PEOPLE_2)
    server.set_answer("*", "ok")
    server.script("standard-model", ["500"] * 20)
    res = cli("test-prompts", "-t", "standard", "-t", "economy", "--no-cache", "-o", "r.json")
    assert res.exit_code == 1, res
    assert len(server.requests_for("economy-model")) == 2  # only economy's own runs
    data = json.loads(Path("r.json").read_text())
    tiers = {t["tier"]: t for t in data["tiers"]}
    assert set(tiers) == {"standard", "economy"}
    assert (tiers["standard"]["passed"], tiers["standard"]["errors"]) == (0, 2)
    assert tiers["economy"]["pass_rate"] == 1.0
    assert data["summary"]["disagreements"] == []  # an error is no verdict
    assert "Cases the tiers disagree on" not in res.stdout

    server.reset()
    server.set_answer("*", "ok")
    server.script("standard-model", ["500"] * 20)
    res = cli("test-prompts", "-t", "standard", "-t", "economy", "--fallback", "--no-cache",
              "-o", "f.json")  # fmt: skip
    assert res.exit_code == 0, res
    tiers = {t["tier"]: t for t in json.loads(Path("f.json").read_text())["tiers"]}
    assert set(tiers) == {"standard→economy", "economy"}  # never counted as standard
    assert tiers["standard→economy"]["passed"] == 2
    assert "standard→economy" in res.stdout
    answered = {r["answered_tier"] for r in json.loads(Path("f.json").read_text())["results"]}
    assert answered == {"economy"}

    # one tier alone keeps its fallback chain
    server.reset()
    server.set_answer("*", "ok")
    server.script("standard-model", ["500"] * 20)
    assert cli("test-prompts", "-t", "standard", "--no-cache").exit_code == 0
