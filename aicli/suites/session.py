"""One suite run from planned jobs to closed reports: engine, recorder, writers and summary.

The CLI keeps its flags and its printing; everything that must be closed in the right order,
whether the run ends well, is interrupted or crashes, is held by one ExitStack here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aicli.reports import ReportWriter, close_writers
from aicli.reports.baseline import compare
from aicli.reports.changes import DEFAULT_ALPHA
from aicli.reports.results import CaseResult, Summary
from aicli.reports.summary import SummaryBuilder
from aicli.suites.runner import STOP_INTERRUPTED, Job, Runner, RunOptions

if TYPE_CHECKING:
    from aicli.batch.scheduler import BatchScheduler
    from aicli.config import Config
    from aicli.cost import Budget
    from aicli.engine import Engine
    from aicli.errors import BudgetError
    from aicli.providers.base import Provider
    from aicli.replay import ReplayStore
    from aicli.reports.read import Report
    from aicli.templates import TemplateStore


@dataclass
class RunOutcome:
    summary: Summary
    results: list[CaseResult]
    interrupted: bool
    terminated: bool  # the runner's own handler saw SIGTERM (a cancelled CI job)
    stopped_by: KeyboardInterrupt | None  # Ctrl-C or SIGTERM that reached the run from outside
    budget_error: BudgetError | None
    planned: int

    @property
    def finished(self) -> int:
        """Runs that were started and ended (not the ones a stop left unstarted)."""
        unstarted = (r for r in self.results if r.status == "skipped")
        return len(self.results) - sum(r.reason == STOP_INTERRUPTED for r in unstarted)


def attach_baseline(
    summary: Summary,
    results: list[CaseResult],
    baseline: Report | None,
    opts: RunOptions | None,
    *,
    alpha: float = DEFAULT_ALPHA,
) -> Summary:
    if baseline is not None:
        scope = opts.in_scope if opts is not None else (lambda case_id: True)
        summary.baseline = compare(
            str(baseline.path), baseline.results, summary, results, in_scope=scope, alpha=alpha
        )
    return summary


def run_suite(
    cfg: Config,
    store: TemplateStore,
    jobs: list[Job],
    opts: RunOptions,
    *,
    writers: list[ReportWriter],
    budget: Budget,
    record: Path | None = None,
    replay: ReplayStore | None = None,
    baseline: Report | None = None,
    alpha: float = DEFAULT_ALPHA,
    on_result: Callable[[CaseResult], None] = lambda r: None,
    fingerprint: dict[str, object] | None = None,
    on_progress: Callable[[str], None] = lambda text: None,
) -> RunOutcome:
    """Run `jobs`; the writers are closed with the summary, or with what completed on a crash."""
    from aicli.engine import Engine
    from aicli.recording import Recorder

    builder = SummaryBuilder()
    results: list[CaseResult] = []
    shard = f"{opts.shard[0]}/{opts.shard[1]}" if opts.shard else None

    def close_on_crash() -> None:
        if not results:
            for w in writers:
                w.abort()
            return
        with contextlib.suppress(Exception):  # still leave valid reports for what completed
            close_writers(writers, _build(builder, opts, interrupted=True, shard=shard))

    with contextlib.ExitStack() as stack:
        # Last out on a crash: the writers close with what completed. A run that ends takes it
        # off and closes them with its summary, before the recorder and the batch close.
        on_crash = stack.enter_context(contextlib.ExitStack())
        on_crash.callback(close_on_crash)
        recorder = Recorder(record) if record is not None else None
        if recorder is not None:
            stack.callback(recorder.close)

        def add(r: CaseResult) -> None:
            builder.add(r)
            for w in writers:
                w.add(r)
            results.append(r)
            on_result(r)

        scheduler = None
        providers: dict[str, Provider] = {}
        held: dict[str, Provider] = {}
        if opts.batch is not None and replay is None:
            from aicli.batch.run import open_batch

            scheduler, providers, held = open_batch(
                cfg, {j.tier for j in jobs} | set(graders(cfg, jobs, opts)), opts.batch,
                dict(fingerprint or {}), on_progress, budget.cap,
            )  # fmt: skip
            stack.callback(scheduler.close)
        engine = Engine(
            cfg, recorder=recorder, replay=replay, budget=budget, concurrency=opts.concurrency,
            providers=providers or None,
        )  # fmt: skip
        runner = Runner(engine, store, opts, add)
        started = time.monotonic()
        stopped_by: KeyboardInterrupt | None = None
        try:
            if scheduler is not None and providers:
                asyncio.run(_rounds(cfg, store, jobs, opts, scheduler, {**held, **providers}))
                scheduler.final = True
                engine.bought = scheduler.bought  # cached by a round: bought in this run
            asyncio.run(_run(runner, engine, jobs))
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM outside the runner's handler
            stopped_by = exc
        interrupted = stopped_by is not None or runner.interrupted
        summary = _build(
            builder,
            opts,
            interrupted=interrupted or runner.fatal is not None,
            duration_s=time.monotonic() - started,
            shard=shard,
        )
        attach_baseline(summary, results, baseline, opts, alpha=alpha)
        on_crash.pop_all()
        close_writers(writers, summary)
    if runner.fatal is not None:
        raise runner.fatal
    return RunOutcome(
        summary, results, interrupted, runner.terminated, stopped_by, runner.budget_error, len(jobs)
    )


def _build(
    builder: SummaryBuilder,
    opts: RunOptions,
    *,
    interrupted: bool,
    shard: str | None,
    duration_s: float | None = None,
) -> Summary:
    return builder.build(
        interrupted=interrupted,
        duration_s=duration_s,
        shard=shard,
        pass_threshold=opts.pass_threshold,
        max_repeat=opts.max_repeat,
    )


async def _run(runner: Runner, engine: Engine, jobs: list[Job]) -> None:
    try:
        await runner.run(jobs)
    finally:
        with contextlib.suppress(Exception):
            await engine.aclose()


async def _rounds(
    cfg: Config,
    store: TemplateStore,
    jobs: list[Job],
    opts: RunOptions,
    scheduler: BatchScheduler,
    providers: dict[str, Provider],
) -> None:
    """--batch: the collecting rounds before the last one (their results are not kept)."""
    from aicli.batch.run import collect_rounds
    from aicli.cost import Budget
    from aicli.engine import Engine

    async def one_round() -> bool:
        # No recorder, no budget to spend: a round that collects makes no paid call.
        engine = Engine(cfg, budget=Budget(None), providers=providers,
                        concurrency=opts.concurrency)  # fmt: skip
        runner = Runner(engine, store, opts, lambda r: None)
        await _run(runner, engine, jobs)
        return runner.interrupted

    await collect_rounds(scheduler, one_round, scheduler.on_progress)


def graders(cfg: Config, jobs: list[Job], opts: RunOptions) -> list[str]:
    """The tiers that judge the llm-rubric assertions of these jobs."""
    from aicli.suites.runner import grader_tier

    return sorted(
        {
            grader_tier(cfg, a, opts)
            for j in {id(j.case): j for j in jobs}.values()
            for a in j.case.asserts
            if a.base_type == "llm-rubric"
        }
    )
