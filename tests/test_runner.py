"""The suite runner's units: planning, requests, results, stops and Ctrl-C, with a stub engine."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from aicli.config import Config, load_config
from aicli.errors import BudgetError, NoAnswerError, SuiteError, UsageError
from aicli.reports.results import CaseResult
from aicli.suites.load import load_suites
from aicli.suites.plan import Job, RunOptions, build_request, grader_tier, plan_jobs, render_case
from aicli.suites.runner import STOP_BUDGET, STOP_FAIL_FAST, STOP_INTERRUPTED, Runner
from aicli.templates import TemplateStore
from aicli.types import Request, Result, Usage

TEMPLATE = """\
name: greet
version: 1.0.0
tier: economy
system: You greet people.
template: "Greet {{ name }}."
variables:
  name: {type: string, minLength: 2}
"""

CONFIG = """\
default_tier: standard
providers:
  fake: {base_url: "http://127.0.0.1:9/v1", api_key_env: AICLI_TEST_KEY}
tiers:
  premium: {model: p-model, provider: fake, price: {input_per_1m: 2.0, output_per_1m: 8.0}}
  standard: {model: s-model, provider: fake, price: {input_per_1m: 1.0, output_per_1m: 2.0}}
  economy: {model: e-model, provider: fake}
  grader: {model: g-model, provider: fake}
"""


def setup(tmp: Path, suite: str, *, config: str = CONFIG) -> tuple[Config, TemplateStore, Any]:
    (tmp / "prompts").mkdir(exist_ok=True)
    (tmp / "prompts" / "greet.yaml").write_text(TEMPLATE, encoding="utf-8")
    (tmp / "prompts" / "s.test.yaml").write_text(suite, encoding="utf-8")
    (tmp / "aicli.yaml").write_text(config, encoding="utf-8")
    cfg = load_config(tmp / "aicli.yaml")
    return cfg, TemplateStore(cfg.prompts_dir), load_suites([], cfg.prompts_dir)


class StubEngine:
    """Stands in for aicli.engine.Engine: answers through `answer(request)`, records requests."""

    def __init__(self, cfg: Config, answer: Callable[[Request], Awaitable[str] | str]) -> None:
        self.cfg = cfg
        self.answer = answer
        self.requests: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def run(self, request: Request) -> Result:
        self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            got = self.answer(request)
            text = await got if not isinstance(got, str) else got
        finally:
            self.in_flight -= 1
        return Result(
            content=text,
            tier=request.tier or "standard",
            model_used="m",
            usage=Usage(1000, 1000, 2000),
            cost_usd=0.0,  # as for a cache hit or a replay
            latency_ms=123.0,
            cached=True,
            template=request.template,
        )


def run(engine: Any, store: TemplateStore, opts: RunOptions, jobs: list[Job]) -> tuple[
    Runner, list[CaseResult]
]:  # fmt: skip
    results: list[CaseResult] = []
    runner = Runner(engine, store, opts, results.append)
    asyncio.run(runner.run(jobs))
    return runner, results


SUITE = """\
suite: s
template: greet
cases:
  - name: template-tier
    vars: {name: Ada}
    assert: [{type: icontains, value: hello}]
  - name: case-tier
    tier: premium
    vars: {name: Bob}
    assert: [{type: icontains, value: hello}]
"""


def test_tier_order_case_suite_template_default(tmp_path: Path) -> None:
    cfg, store, suites = setup(tmp_path, SUITE)
    jobs = plan_jobs(suites, cfg, store, RunOptions())
    assert [(j.case.name, j.tier) for j in jobs] == [
        ("template-tier", "economy"),
        ("case-tier", "premium"),
    ]
    suites[0].tier = "standard"
    jobs = plan_jobs(suites, cfg, store, RunOptions())
    assert [j.tier for j in jobs] == ["standard", "premium"]
    suites[0].tier, suites[0].template = None, None  # inline prompt: no template tier
    suites[0].prompt = "Hi {{ name }}"
    assert [j.tier for j in plan_jobs(suites, cfg, store, RunOptions())] == ["standard", "premium"]


def test_t_overrides_every_tier_and_repeats_multiply(tmp_path: Path) -> None:
    cfg, store, suites = setup(tmp_path, SUITE)
    opts = RunOptions(tiers=["standard", "premium", "standard"], repeat=3)
    jobs = plan_jobs(suites, cfg, store, opts)
    assert len(jobs) == 2 * 2 * 3
    assert {(j.case.name, j.tier) for j in jobs} == {
        (c, t) for c in ("template-tier", "case-tier") for t in ("standard", "premium")
    }
    assert sorted({j.repeat_index for j in jobs}) == [0, 1, 2]


def test_filter_and_unknown_tiers_fail_before_running(tmp_path: Path) -> None:
    cfg, store, suites = setup(tmp_path, SUITE)
    assert [j.case.name for j in plan_jobs(suites, cfg, store, RunOptions(filter="CASE-"))] == [
        "case-tier"
    ]
    assert len(plan_jobs(suites, cfg, store, RunOptions(filter="s/*-tier"))) == 2
    with pytest.raises(UsageError, match="matches no case"):
        plan_jobs(suites, cfg, store, RunOptions(filter="nothing"))
    with pytest.raises(Exception, match="unknown tier 'nope'"):
        plan_jobs(suites, cfg, store, RunOptions(tiers=["nope"]))
    suites[0].cases[1].tier = "missing"
    with pytest.raises(SuiteError, match=r"s\.test\.yaml:\d+: case 'case-tier': unknown tier"):
        plan_jobs(suites, cfg, store, RunOptions())


def test_grader_tier_resolution(tmp_path: Path) -> None:
    cfg, _, _ = setup(tmp_path, SUITE)
    from aicli.suites.model import Assertion

    plain = Assertion("llm-rubric", "r")
    own = Assertion("llm-rubric", "r", extra={"grader": "premium"})
    assert grader_tier(cfg, plain, RunOptions()) == "grader"
    assert grader_tier(cfg, own, RunOptions()) == "premium"
    assert grader_tier(cfg, own, RunOptions(grader="economy")) == "economy"
    del cfg.tiers["grader"]
    assert grader_tier(cfg, plain, RunOptions()) == "standard"


def test_each_repeat_has_its_own_key_and_the_first_keeps_todays() -> None:
    from aicli.planning import repeat_key

    assert repeat_key("k", 0) == "k"  # run 1: existing caches and recordings still match
    keys = {repeat_key("k", i) for i in range(1, 50)}
    assert len(keys) == 49 and "k" not in keys


def test_build_request_carries_everything(tmp_path: Path) -> None:
    cfg, store, suites = setup(tmp_path, SUITE)
    opts = RunOptions(model="custom", redact=False, repeat=2)
    job = plan_jobs(suites, cfg, store, opts)[1]
    rendered = render_case(job.suite, job.case, store)
    req = build_request(job, rendered, opts)
    assert req.messages == [
        {"role": "system", "content": "You greet people."},
        {"role": "user", "content": "Greet Ada."},
    ]
    assert req.tier == "economy" and req.model == "custom" and req.redact is False
    assert req.template is not None and req.template.name == "greet"
    assert req.cache_mode == "use" and req.repeat == 1  # run 2: its own key, cached too


def test_results_statuses_and_reasons(tmp_path: Path) -> None:
    cfg, store, suites = setup(
        tmp_path,
        """\
suite: s
template: greet
cases:
  - {name: ok, vars: {name: Ada}, assert: [{type: icontains, value: ada}]}
  - {name: bad-json, vars: {name: Bob}, assert: [{type: icontains, value: bob}, is-json]}
  - {name: too-short, vars: {name: X}}
  - {name: no-answer, vars: {name: Eve}}
  - {name: later, vars: {name: Zed}, skip: not ready yet}
  - name: weighted
    vars: {name: Kim}
    threshold: 0.5
    assert:
      - {type: icontains, value: kim, weight: 3}
      - {type: contains, value: nope}
  - name: under-threshold
    vars: {name: Lou}
    threshold: 0.9
    assert:
      - {type: icontains, value: lou}
      - {type: contains, value: nope}
""",
    )

    def answer(req: Request) -> str:
        if "Eve" in req.messages[-1]["content"]:
            raise NoAnswerError("no answer from tiers economy: HTTP 500")
        return "Hello " + req.messages[-1]["content"][6:-1]

    engine = StubEngine(cfg, answer)
    _, results = run(engine, store, RunOptions(), plan_jobs(suites, cfg, store, RunOptions()))
    by = {r.case: r for r in results}
    assert by["ok"].status == "passed" and by["ok"].output == "Hello Ada"
    assert by["ok"].template is not None and by["ok"].file.endswith("s.test.yaml")
    assert (by["bad-json"].status, by["bad-json"].reason_kind) == ("failed", "invalid_json")
    assert (by["too-short"].status, by["too-short"].reason_kind) == ("error", "render_error")
    assert "'name'" in by["too-short"].reason
    assert (by["no-answer"].status, by["no-answer"].reason_kind) == ("error", "api_error")
    assert "HTTP 500" in by["no-answer"].reason
    assert (by["later"].status, by["later"].reason) == ("skipped", "not ready yet")
    assert by["weighted"].status == "passed" and by["weighted"].score == pytest.approx(0.75)
    assert by["under-threshold"].status == "failed"
    assert by["under-threshold"].reason.startswith("score 0.50 < threshold 0.9")
    assert len(engine.requests) == 5  # no call for a render error or a skipped case


def test_cost_assertion_prices_cached_answers(tmp_path: Path) -> None:
    cfg, store, suites = setup(
        tmp_path,
        """\
suite: s
prompt: "Hi {{ who }}"
tier: standard
cases:
  - {name: cheap, vars: {who: a}, assert: [{type: cost, threshold: 0.01}]}
  - {name: dear, vars: {who: b}, assert: [{type: cost, threshold: 0.001}]}
  - {name: latency, vars: {who: c}, assert: [{type: latency, threshold: 100}]}
""",
    )
    _, results = run(
        StubEngine(cfg, lambda r: "x"),
        store,
        RunOptions(),
        plan_jobs(suites, cfg, store, RunOptions()),
    )
    by = {r.case: r for r in results}
    # 1000 prompt + 1000 completion tokens at $1 / $2 per million: $0.003 although cost_usd is 0
    assert by["cheap"].status == "passed"
    assert by["dear"].status == "failed" and "$0.003000" in by["dear"].reason
    assert by["latency"].status == "failed" and "123 ms" in by["latency"].reason
    assert all(r.cost_usd == 0 and r.cached for r in results)


def test_llm_rubric_goes_to_the_grader_tier_at_temperature_0(tmp_path: Path) -> None:
    cfg, store, suites = setup(
        tmp_path,
        """\
suite: s
prompt: "Write about {{ topic }}"
cases:
  - name: judged
    vars: {topic: cats}
    assert: [{type: llm-rubric, value: Mentions whiskers}]
""",
    )

    def answer(req: Request) -> str:
        if req.tier == "grader":
            ok = "whiskers" in req.messages[-1]["content"]
            return f'{{"pass": {str(ok).lower()}, "score": 0.9, "reason": "judged it"}}'
        return "Cats have whiskers."

    engine = StubEngine(cfg, answer)
    _, results = run(engine, store, RunOptions(), plan_jobs(suites, cfg, store, RunOptions()))
    assert results[0].status == "passed"
    assert "judged it" in results[0].assertions[0].reason
    grader_req = engine.requests[1]
    assert grader_req.tier == "grader" and grader_req.temperature == 0.0
    assert grader_req.cache_mode == "use" and grader_req.model is None


def test_fail_fast_skips_the_rest(tmp_path: Path) -> None:
    cases = "\n".join(
        f"  - {{name: c{i}, vars: {{w: '{i}'}}, assert: [{{type: equals, value: ok}}]}}"
        for i in range(6)
    )
    cfg, store, suites = setup(tmp_path, f'suite: s\nprompt: "say {{{{ w }}}}"\ncases:\n{cases}\n')
    engine = StubEngine(cfg, lambda r: "ok" if r.messages[-1]["content"] != "say 1" else "no")
    opts = RunOptions(concurrency=1, fail_fast=True)
    runner, results = run(engine, store, opts, plan_jobs(suites, cfg, store, opts))
    assert [r.status for r in results] == ["passed", "failed"] + ["skipped"] * 4
    assert {r.reason for r in results[2:]} == {STOP_FAIL_FAST}
    assert runner.stop_reason == STOP_FAIL_FAST and len(engine.requests) == 2


def test_budget_stops_new_calls(tmp_path: Path) -> None:
    cases = "\n".join(f"  - {{name: c{i}, vars: {{w: '{i}'}}}}" for i in range(5))
    cfg, store, suites = setup(tmp_path, f'suite: s\nprompt: "say {{{{ w }}}}"\ncases:\n{cases}\n')
    calls = [0]

    def answer(req: Request) -> str:
        calls[0] += 1
        if calls[0] > 2:
            raise BudgetError("over the $0.01 budget")
        return "ok"

    opts = RunOptions(concurrency=1)
    runner, results = run(StubEngine(cfg, answer), store, opts, plan_jobs(suites, cfg, store, opts))
    assert [r.status for r in results] == ["passed", "passed", "skipped", "skipped", "skipped"]
    assert results[2].reason.startswith("budget: over the")
    assert [r.reason for r in results[3:]] == [STOP_BUDGET, STOP_BUDGET]
    assert runner.budget_error is not None and calls[0] == 3


def test_a_fatal_error_aborts_the_run(tmp_path: Path) -> None:
    cases = "\n".join(f"  - {{name: c{i}, vars: {{w: '{i}'}}}}" for i in range(3))
    cfg, store, suites = setup(tmp_path, f'suite: s\nprompt: "say {{{{ w }}}}"\ncases:\n{cases}\n')

    def answer(req: Request) -> str:
        raise UsageError("$AICLI_TEST_KEY is not set")

    opts = RunOptions(concurrency=1)
    runner, results = run(StubEngine(cfg, answer), store, opts, plan_jobs(suites, cfg, store, opts))
    assert isinstance(runner.fatal, UsageError)
    assert [r.status for r in results] == ["skipped"] * 3
    assert all("AICLI_TEST_KEY" in r.reason for r in results)


def test_concurrency_is_bounded(tmp_path: Path) -> None:
    cases = "\n".join(f"  - {{name: c{i}, vars: {{w: '{i}'}}}}" for i in range(40))
    cfg, store, suites = setup(tmp_path, f'suite: s\nprompt: "say {{{{ w }}}}"\ncases:\n{cases}\n')

    async def answer(req: Request) -> str:
        await asyncio.sleep(0.01)
        return "ok"

    engine = StubEngine(cfg, answer)
    opts = RunOptions(concurrency=5)
    _, results = run(engine, store, opts, plan_jobs(suites, cfg, store, opts))
    assert len(results) == 40 and all(r.status == "passed" for r in results)
    assert engine.max_in_flight == 5


@pytest.mark.skipif(os.name != "posix", reason="needs SIGINT")
def test_sigint_cancels_in_flight_and_skips_the_rest(tmp_path: Path) -> None:
    cases = "\n".join(f"  - {{name: c{i}, vars: {{w: '{i}'}}}}" for i in range(10))
    cfg, store, suites = setup(tmp_path, f'suite: s\nprompt: "say {{{{ w }}}}"\ncases:\n{cases}\n')
    started = [0]

    async def answer(req: Request) -> str:
        started[0] += 1
        if started[0] > 3:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while calls 4 and 5 are in flight
            await asyncio.sleep(30)
        return "ok"

    opts = RunOptions(concurrency=2)
    runner, results = run(StubEngine(cfg, answer), store, opts, plan_jobs(suites, cfg, store, opts))
    assert runner.interrupted
    assert [r.status for r in results].count("passed") == 3
    assert len(results) == 10  # the rest is reported as skipped, not lost
    assert {r.reason for r in results if r.status == "skipped"} == {STOP_INTERRUPTED}
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler removed


def test_a_case_renders_once_and_a_long_run_keeps_few_rendered_prompts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aicli.suites.runner as runner_module
    from aicli.suites.runner import RENDERED_KEPT

    n = RENDERED_KEPT * 3
    cases = "\n".join(f"  - {{name: c{i}, vars: {{w: '{i}'}}}}" for i in range(n))
    cfg, store, suites = setup(tmp_path, f'suite: s\nprompt: "say {{{{ w }}}}"\ncases:\n{cases}\n')
    rendered: list[str] = []

    def counting(suite: Any, case: Any, store: TemplateStore) -> Any:
        rendered.append(case.name)
        return render_case(suite, case, store)

    monkeypatch.setattr(runner_module, "render_case", counting)
    engine = StubEngine(cfg, lambda req: "ok")
    opts = RunOptions(tiers=["standard", "premium"], repeat=3, concurrency=4)
    runner, results = run(engine, store, opts, plan_jobs(suites, cfg, store, opts))
    assert len(results) == n * 2 * 3 and all(r.status == "passed" for r in results)
    assert sorted(rendered) == sorted(f"c{i}" for i in range(n))  # 6 runs, one render each
    assert len(runner._rendered) <= RENDERED_KEPT + opts.concurrency
    # every run of a case sent the same messages
    by_case: dict[str, set[str]] = {}
    for req in engine.requests:
        by_case.setdefault(str(req.messages[-1]["content"]), set()).add(req.tier or "")
    assert len(by_case) == n and all(t == {"standard", "premium"} for t in by_case.values())


def test_a_run_keeps_only_what_its_terminal_report_needs() -> None:
    from aicli.reports.results import AssertionRecord
    from aicli.suites.session import kept

    ok = AssertionRecord("icontains", 'icontains "a"', True, 1.0, "ok")
    bad = AssertionRecord(
        "icontains", 'icontains "b"', False, 0.0, "expected b", "assertion_failed"
    )
    full: dict[str, Any] = {"output": "the answer", "prompt": "the prompt", "vars": {"w": "x"},
                            "file": "s.yaml", "model_used": "m", "usage": Usage(1, 2, 3),
                            "cost_usd": 0.5, "latency_ms": 9.0}  # fmt: skip
    passed = CaseResult("s", "c1", "standard", assertions=[ok], **full)
    failed = CaseResult(
        "s", "c2", "standard", status="failed", reason="expected b", reason_kind="assertion_failed",
        assertions=[ok, bad], **full,
    )  # fmt: skip
    small = kept(passed)
    assert (small.output, small.prompt, small.vars, small.assertions, small.file) == (
        "",
        "",
        {},
        [],
        "",
    )
    assert (small.usage, small.cost_usd, small.latency_ms, small.status) == (
        Usage(1, 2, 3), 0.5, 9.0, "passed",
    )  # fmt: skip
    small = kept(failed)
    assert small.output == "the answer" and small.assertions == [bad]
    assert (small.reason, small.reason_kind, small.prompt, small.vars) == (
        "expected b", "assertion_failed", "", {},
    )  # fmt: skip
    # the writers' results are left whole
    assert passed.output == "the answer" and failed.assertions == [ok, bad]
    assert passed.vars == {"w": "x"}
