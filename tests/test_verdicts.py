"""Verdicts with their confidence, through the CLI against the test server: repeats cached and
replayed, k of n with Wilson intervals in every format, flaky cases, --repeat auto, significance
against a baseline, --fail-on significant, merged shards equal to the whole run."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import scipy.stats as scipy_stats  # the test extra only

from tests.cli.test_prompts.helpers import last_line, write
from tests.fake_openai import ChanceAnswer

MODEL = "standard-model"  # the default tier's model in make_config's config
FORMATS = ["-o", "r.json", "-o", "r.jsonl", "-o", "r.xml", "-o", "r.html", "-o", "r.md"]


def suite(chances: dict[str, float], name: str = "v") -> str:
    """One case per entry; the test server reads each case's chance from its prompt."""
    cases = "".join(
        f"  - {{name: {case}, vars: {{q: 'chance={p} {case}'}}}}\n" for case, p in chances.items()
    )
    return (
        f"suite: {name}\nprompt: 'Answer {{{{ q }}}}'\n"
        "defaults:\n  assert: [{type: equals, value: right}]\ncases:\n" + cases
    )


def wilson(k: int, n: int) -> list[float]:
    """The 95% Wilson score interval, written out from its closed form."""
    z = 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return [0.0 if k == 0 else centre - half, 1.0 if k == n else centre + half]


def report(path: str = "r.json") -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return data


def cases_of(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in data["summary"]["cases"]}


@pytest.fixture
def chance(server: Any, make_config: Any) -> ChanceAnswer:
    make_config()
    answer = ChanceAnswer(seed=7)
    server.set_answer(MODEL, answer)
    return answer


def test_repeats_are_cached_and_replayed(cli: Any, server: Any, chance: ChanceAnswer) -> None:
    write("prompts/v.test.yaml", suite({"sure": 1.0, "coin": 0.5}))
    first = cli("test-prompts", "--repeat", "6", "-o", "a.json", "--record", "rec.jsonl")
    assert len(server.requests) == 12, first
    keys = [json.loads(line)["key"] for line in Path("rec.jsonl").read_text().splitlines()]
    assert len(set(keys)) == 12  # each repeat is its own recording entry
    server.reset()
    again = cli("test-prompts", "--repeat", "6", "-o", "b.json")
    assert server.requests == [], again  # the second run costs nothing
    assert report("b.json")["summary"]["cache_hits"] == 12
    replayed = cli("test-prompts", "--repeat", "6", "--replay", "rec.jsonl", "-o", "c.json")
    assert server.requests == [], replayed
    assert cases_of(report("a.json")) == cases_of(report("b.json")) == cases_of(report("c.json"))
    assert last_line(again.stdout) == last_line(first.stdout) == last_line(replayed.stdout)


def test_k_of_n_intervals_and_flaky_cases_in_every_format(
    cli: Any, server: Any, chance: ChanceAnswer
) -> None:
    write("prompts/v.test.yaml", suite({"sure": 1.0, "coin": 0.5, "never": 0.0}))
    res = cli("test-prompts", "--repeat", "8", *FORMATS)
    assert res.exit_code == 1
    data = report()
    by_id = cases_of(data)
    assert {i: (c["passed"], c["runs"]) for i, c in by_id.items() if i != "v/coin"} == {
        "v/sure": (8, 8), "v/never": (0, 8),
    }  # fmt: skip
    coin = by_id["v/coin"]
    k = coin["passed"]
    assert 0 < k < 8 and coin["flaky"], "the seed must make coin flaky"
    for c in by_id.values():
        assert c["ci95"] == pytest.approx(wilson(c["passed"], c["runs"]), abs=1e-12)
        assert c["pass_rate"] == round(c["passed"] / c["runs"], 4)
    (tier,) = data["tiers"]
    assert (tier["passed"], tier["runs"]) == (8 + k, 24)
    assert tier["ci95"] == pytest.approx(wilson(8 + k, 24), abs=1e-12)
    assert [f["id"] for f in data["summary"]["flaky"]] == ["v/coin"]

    lines = [json.loads(x) for x in Path("r.jsonl").read_text().splitlines()]
    assert len(lines) == 25 and lines[-1]["summary"]["cases"] == data["summary"]["cases"]
    assert lines[-1]["summary"]["tiers"] == data["tiers"]

    root = ET.parse("r.xml").getroot()
    props = {}
    for tc in root.iter("testcase"):
        found = {p.get("name"): p.get("value") for p in tc.iter("property")}
        props[tc.get("name", "").split(" [")[0]] = found
    assert props["coin"]["passed_runs"] == str(k) and props["coin"]["runs"] == "8"
    assert float(props["coin"]["ci95_low"] or "nan") == pytest.approx(coin["ci95"][0], abs=1e-12)
    assert props["coin"]["flaky"] == "true" and props["sure"]["flaky"] == "false"
    outs = [el.text or "" for el in root.iter("system-out")]
    assert any(o.startswith("Flaky cases (1)") and "coin" in o for o in outs)
    suite_props = {p.get("name"): p.get("value") for p in root.find("testsuite/properties") or []}
    assert suite_props["tier_runs"] == "24" and suite_props["tier_passed_runs"] == str(8 + k)

    lo, hi = (f"{x * 100:.1f}" for x in coin["ci95"])
    html = Path("r.html").read_text()
    assert "Flaky cases (1)" in html and f"{k}/8" in html and f"{lo}–{hi}%" in html
    md = Path("r.md").read_text()
    assert md.splitlines()[0] == "<!-- aicli-report -->"
    assert "### Flaky cases (1)" in md and f"| v | coin | standard | {k}/8 |" in md
    assert f"{lo}–{hi}%" in md and "### Pass rates over 8 runs" in md
    assert "Flaky cases (1)" in res.stdout and f"{lo}–{hi}%" in res.stdout
    assert "1 flaky" in res.stdout and "95% CI" in res.stdout
    assert last_line(res.stdout) == f"{8 + k} passed, {24 - 8 - k} failed"


def test_repeat_auto_stops_decided_cases_early_and_runs_m_on_a_coin(
    cli: Any, server: Any, chance: ChanceAnswer
) -> None:
    write("prompts/v.test.yaml", suite({"sure": 1.0, "never": 0.0, "coin": 0.5}))
    args = ["--repeat", "auto", "--pass-rate", "50", "--max-repeat", "10", "-o", "r.json"]
    res = cli("test-prompts", *args, "--record", "rec.jsonl")
    runs = {i: c["runs"] for i, c in cases_of(report()).items()}
    # 4 of 4 passes: the interval starts at 0.51, wholly above 50%; none of 4: ends at 0.49
    assert runs == {"v/sure": 4, "v/never": 4, "v/coin": 10}, res
    assert len(server.requests) == 18
    assert report()["summary"]["repeat"] == "auto" and report()["summary"]["max_repeat"] == 10
    assert "Pass rate over 4–10 runs (--repeat auto)" in res.stdout
    settled = {i: c["settled"] for i, c in cases_of(report()).items()}
    assert settled == {"v/sure": True, "v/never": True, "v/coin": False}
    # the same again: every run, however many auto chose, is already cached
    server.reset()
    again = cli("test-prompts", *args[:-2], "-o", "s.json")
    assert server.requests == [] and cases_of(report("s.json")) == cases_of(report()), again
    replayed = cli("test-prompts", *args[:-2], "--replay", "rec.jsonl", "-o", "t.json")
    assert server.requests == [] and cases_of(report("t.json")) == cases_of(report()), replayed


def test_repeat_auto_at_100_percent_a_failure_decides_after_three_runs(
    cli: Any, server: Any, chance: ChanceAnswer
) -> None:
    write("prompts/v.test.yaml", suite({"sure": 1.0, "never": 0.0}))
    cli("test-prompts", "--repeat", "auto", "--max-repeat", "5", "-o", "r.json")
    runs = {i: c["runs"] for i, c in cases_of(report()).items()}
    assert runs == {"v/sure": 5, "v/never": 3}  # nothing short of every run proves 100%


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--repeat", "sometimes"], "expected a whole number from 1 to 1000, or auto"),
        (["--repeat", "0"], "expected a whole number"),
        (["--max-repeat", "5"], "--max-repeat needs --repeat auto"),
        (["--repeat", "auto", "--max-repeat", "2"], "--max-repeat"),
        (["--fail-on", "significant"], "--fail-on significant needs --baseline"),
        (["--alpha", "2"], "--alpha"),
    ],
)
def test_bad_repeat_and_significance_flags_are_usage_errors(
    cli: Any, chance: ChanceAnswer, args: list[str], message: str
) -> None:
    write("prompts/v.test.yaml", suite({"sure": 1.0}))
    res = cli("test-prompts", *args)
    assert res.exit_code == 2 and message in res.stderr and "Traceback" not in res.stderr


def scripted(server: Any, outcomes: list[bool]) -> None:
    server.reset()
    server.script(MODEL, ["ok:right" if ok else "ok:wrong" for ok in outcomes])


def test_a_planted_regression_is_significant_and_noise_is_not(
    cli: Any, server: Any, make_config: Any
) -> None:
    make_config()
    write("prompts/v.test.yaml", suite({"planted": 1.0, "noisy": 0.6}))
    # -j 1: the runs go in order, planted's five, then noisy's ten
    base_runs = ["--no-cache", "-j", "1"]
    write("prompts/v.test.yaml", suite({"planted": 1.0}))
    scripted(server, [True] * 10)
    cli("test-prompts", "--repeat", "10", *base_runs, "-o", "p0.json")
    scripted(server, [False] * 10)
    res = cli("test-prompts", "--repeat", "10", *base_runs, "--baseline", "p0.json",
              "--fail-on", "significant", "-o", "p1.json", "-o", "p1.md")  # fmt: skip
    assert res.exit_code == 1, res
    (case,) = report("p1.json")["baseline"]["cases"]
    expected = scipy_stats.fisher_exact([[0, 10], [10, 0]]).pvalue
    assert case["p_value"] == pytest.approx(expected) and case["p_value_holm"] == case["p_value"]
    assert case["significant"] and case["direction"] == "worse"
    assert report("p1.json")["baseline"]["significant_worse"] is True
    md = Path("p1.md").read_text()
    assert md.index("### Significant changes (1") < md.index("### Within noise (0)")
    assert "**worse**" in md and "significant at alpha 0.05: 1 worse" in res.stdout

    write("prompts/v.test.yaml", suite({"noisy": 0.6}))
    scripted(server, [True] * 6 + [False] * 4)
    cli("test-prompts", "--repeat", "10", *base_runs, "-o", "n0.json")
    scripted(server, [True] * 5 + [False] * 5)
    res = cli("test-prompts", "--repeat", "10", *base_runs, "--baseline", "n0.json",
              "--fail-on", "significant", "-o", "n1.json", "-o", "n1.md")  # fmt: skip
    assert res.exit_code == 0, res
    (case,) = report("n1.json")["baseline"]["cases"]
    expected = scipy_stats.fisher_exact([[5, 5], [6, 4]]).pvalue
    assert case["p_value"] == pytest.approx(expected) and not case["significant"]
    assert (case["runs_before"]["passed"], case["runs_after"]["passed"]) == (6, 5)
    md = Path("n1.md").read_text()
    assert "### Significant changes (0" in md and "### Within noise (1)" in md


def test_a_case_that_passed_every_run_and_fails_every_run_always_counts(
    cli: Any, server: Any, make_config: Any
) -> None:
    make_config()
    write("prompts/v.test.yaml", suite({"one": 1.0}))
    scripted(server, [True])
    cli("test-prompts", "--no-cache", "-o", "b.json")
    scripted(server, [False])
    res = cli("test-prompts", "--no-cache", "--baseline", "b.json", "--fail-on", "significant")
    assert res.exit_code == 1, res  # p = 1 with one run each, but 1/1 -> 0/1 always counts
    scripted(server, [True])  # and the other way round is no failure
    cli("test-prompts", "--no-cache", "-o", "c.json")
    scripted(server, [False])
    cli("test-prompts", "--no-cache", "-o", "d.json")
    scripted(server, [True])
    fixed = cli("test-prompts", "--no-cache", "--baseline", "d.json", "--fail-on", "significant")
    assert fixed.exit_code == 0, fixed


def test_a_tier_significantly_worse_over_shared_cases_fails_significant(
    cli: Any, server: Any, make_config: Any
) -> None:
    make_config()
    names = [f"c{i:02d}" for i in range(10)]
    write("prompts/v.test.yaml", suite(dict.fromkeys(names, 1.0)))
    opts = ["--repeat", "3", "--no-cache", "-j", "1"]
    scripted(server, [True] * 30)
    cli("test-prompts", *opts, "-o", "b.json")
    scripted(server, [True, False, False] * 10)  # every case: 3/3 -> 1/3
    res = cli("test-prompts", *opts, "--baseline", "b.json", "--fail-on", "significant",
              "-o", "r.json")  # fmt: skip
    diff = report()["baseline"]
    assert not any(c["significant"] for c in diff["cases"])  # Fisher p = 0.4 each, Holm 1
    (tier,) = diff["tiers"]
    assert (tier["shared_cases"], tier["cases_lost"], tier["cases_won"]) == (10, 10, 0)
    assert tier["p_value"] == pytest.approx(scipy_stats.binomtest(10, 10, 0.5).pvalue)
    assert tier["significant"] and res.exit_code == 1, res
    regressions = cli("test-prompts", "--repeat", "3", "--baseline", "b.json",
                      "--fail-on", "regressions")  # fmt: skip
    assert regressions.exit_code == 1  # the single-run rule says so too (every case regressed)


def test_merge_of_three_shards_equals_the_whole_run(
    cli: Any, server: Any, chance: ChanceAnswer
) -> None:
    chances = {f"c{i:02d}": p for i, p in enumerate([1.0, 0.5, 0.8, 0.2, 0.0, 0.5, 0.9, 0.6, 0.4])}
    write("prompts/v.test.yaml", suite(chances))
    cli("test-prompts", "--repeat", "5", "--no-cache", "-o", "base.json")
    server.set_answer(MODEL, ChanceAnswer(seed=99))  # a different run now
    cli("test-prompts", "--repeat", "5", "--baseline", "base.json", "-o", "whole.json")
    for k in (1, 2, 3):
        cli("test-prompts", "--repeat", "5", "--shard", f"{k}/3", "-o", f"s{k}.json")
    merged = cli("report", "merge", "s1.json", "s2.json", "s3.json", "--baseline", "base.json",
                 "-o", "merged.json")  # fmt: skip
    assert merged.exit_code in (0, 1), merged
    whole, joined = report("whole.json"), report("merged.json")

    def by_id(items: list[dict[str, Any]], key: str = "id") -> list[dict[str, Any]]:
        return sorted(items, key=lambda c: (c[key], c["tier"]))

    for part in ("cases", "flaky"):
        assert by_id(joined["summary"][part]) == by_id(whole["summary"][part])
    assert joined["summary"]["ci95"] == whole["summary"]["ci95"]
    drop = ("cost_usd", "mean_latency_ms", "p95_latency_ms", "cache_hits")
    strip = [{k: v for k, v in t.items() if k not in drop} for t in whole["tiers"]]
    assert [{k: v for k, v in t.items() if k not in drop} for t in joined["tiers"]] == strip
    cases_w = by_id(whole["baseline"]["cases"], "case_id")
    cases_m = by_id(joined["baseline"]["cases"], "case_id")
    assert cases_m == cases_w and any(c["p_value"] is not None for c in cases_w)
    tiers_w = [(t["p_value"], t["cases_lost"], t["cases_won"]) for t in whole["baseline"]["tiers"]]
    tiers_m = [(t["p_value"], t["cases_lost"], t["cases_won"]) for t in joined["baseline"]["tiers"]]
    assert tiers_m == tiers_w
    assert len(server.requests) == 90  # the baseline's and the whole run's: shards were cached
