"""Properties of the verdict statistics: order and sharding never change them, auto-repeat
never overshoots, and the test server's chance model is reproducible."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from aicli.reports.baseline import compare
from aicli.reports.results import CaseResult, Status
from aicli.reports.summary import summarize
from aicli.stats import wilson
from tests.fake_openai import ChanceAnswer

statuses: st.SearchStrategy[Status] = st.sampled_from(["passed", "failed", "error", "skipped"])


@st.composite
def runs(draw: st.DrawFn) -> list[CaseResult]:
    cases = draw(st.integers(min_value=1, max_value=6))
    out = []
    for c in range(cases):
        for tier in draw(st.sets(st.sampled_from(["a", "b"]), min_size=1)):
            for i in range(draw(st.integers(min_value=1, max_value=6))):
                out.append(CaseResult("s", f"c{c}", tier, i, draw(statuses)))
    return out


def figures(results: list[CaseResult], before: list[CaseResult]) -> dict[str, Any]:
    s = summarize(results)
    s.baseline = compare("b.json", before, s, results)
    d = s.to_dict()
    return {
        "cases": sorted(d["cases"], key=lambda c: (c["id"], c["tier"])),
        "flaky": sorted(d["flaky"], key=lambda c: (c["id"], c["tier"])),
        "ci95": d["ci95"],
        "tiers": sorted((t.tier, t.passed, t.tally.runs) for t in s.tiers),
        "baseline": sorted(
            (c["case_id"], c["tier"], c["p_value"], c["p_value_holm"], c["significant"])
            for c in s.baseline.to_dict()["cases"]
        ),
        "mcnemar": sorted((t.tier, t.p_value, t.lost, t.won) for t in s.baseline.tiers),
    }


@settings(max_examples=150, derandomize=True, deadline=None)
@given(runs(), runs(), st.randoms(use_true_random=False), st.integers(min_value=1, max_value=4))
def test_shards_in_any_order_give_the_figures_of_one_run(
    now: list[CaseResult], before: list[CaseResult], rnd: random.Random, shards: int
) -> None:
    """What `report merge` relies on: every figure comes from the runs, whatever their order."""
    pieces: list[list[CaseResult]] = [[] for _ in range(shards)]
    by_case: dict[str, int] = {}
    for r in now:  # a case's runs stay in one shard, as --shard keeps them
        pieces[by_case.setdefault(r.case_id, rnd.randrange(shards))].append(r)
    merged = [r for piece in rnd.sample(pieces, len(pieces)) for r in piece]
    assert figures(merged, before) == figures(now, before)
    for c in figures(now, before)["cases"]:
        assert c["ci95"] == list(wilson(c["passed"], c["runs"]))


def test_the_chance_model_is_reproducible_whatever_the_order() -> None:
    prompts = [f"chance=0.5 case{i}" for i in range(5)] * 8

    def tally(order: list[str]) -> dict[str, int]:
        model = ChanceAnswer(seed=3)
        got: dict[str, int] = {}
        for p in order:
            body = {"messages": [{"role": "user", "content": p}]}
            got[p] = got.get(p, 0) + (model(body) == "right")
        return got

    shuffled = prompts[:]
    random.Random(1).shuffle(shuffled)
    assert tally(prompts) == tally(shuffled)
    assert tally(prompts) != {p: 8 for p in set(prompts)}  # it does vary
    always = ChanceAnswer(1.0)
    assert all(always({"messages": [{"role": "user", "content": p}]}) == "right" for p in prompts)
