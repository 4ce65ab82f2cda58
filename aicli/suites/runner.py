"""Running planned jobs (plan.py): through one shared Engine, a bounded number at once.

Every answer goes through `Engine.run`, so the cache, retries, fallback, redaction, cost, the
per-tier rate limit and the budget are the shared core's. Results reach `on_result` as they
arrive (report writers, progress bar, summary); nothing here prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aicli.errors import AicliError, BudgetError, NoAnswerError
from aicli.reports.results import CaseResult, ReasonKind, cut
from aicli.suites.assertions import (
    AssertionResult,
    Observation,
    case_verdict,
    evaluate,
    parse_grader_answer,
    primary_failure,
)
from aicli.suites.model import display_path
from aicli.suites.plan import (
    Job,
    RunOptions,
    build_request,
    grader_request,
    grader_tier,
    render_case,
)
from aicli.suites.repeats import AutoRepeat

if TYPE_CHECKING:
    from aicli.engine import Engine
    from aicli.templates import Rendered, TemplateStore
    from aicli.types import Result

# Why the rest of a run was not started (CaseResult.reason of the skipped results).
STOP_BUDGET = "budget"
STOP_FAIL_FAST = "fail-fast"
STOP_INTERRUPTED = "interrupted"
PROMPT_KEPT = 2_000  # characters of a rendered prompt a result keeps for reviewers
RENDERED_KEPT = 64  # cases whose rendered prompt a runner keeps (beyond one per worker)


class Runner:
    """Runs planned jobs concurrently; `stop_reason`, `fatal` and `interrupted` say how it ended."""

    def __init__(
        self,
        engine: Engine,
        store: TemplateStore,
        opts: RunOptions,
        on_result: Callable[[CaseResult], None],
    ) -> None:
        self.engine = engine
        self.cfg = engine.cfg
        self.store = store
        self.opts = opts
        self.on_result = on_result
        self.stop_reason: str | None = None
        self.budget_error: BudgetError | None = None
        self.fatal: AicliError | None = None  # e.g. a missing API key: the run cannot go on
        self.interrupted = False
        self.terminated = False  # the interruption was SIGTERM (CI cancelled the job)
        # The last few cases rendered: a case's tiers and repeats run one after another, so a
        # short memory renders each once without holding every rendered prompt of the run.
        self._rendered: OrderedDict[str, Rendered | AicliError] = OrderedDict()
        self._workers: list[asyncio.Task[None]] = []
        self._unhook: Callable[[], None] = lambda: None
        self._pending: deque[Job] = deque()
        self._busy = 0  # jobs being run: with --repeat auto each may still add more
        self._changed = asyncio.Event()
        self._auto: AutoRepeat | None = None
        if opts.max_repeat is not None:
            self._auto = AutoRepeat(opts.pass_threshold, opts.max_repeat)

    async def run(self, jobs: list[Job]) -> None:
        self._pending = pending = deque(jobs)
        self._changed = asyncio.Event()
        if self._auto is not None:
            self._auto.planned(jobs)
        wanted = self.opts.concurrency if self.opts.auto else len(jobs)
        count = max(1, min(self.opts.concurrency, wanted))
        self._workers = [asyncio.create_task(self._worker()) for _ in range(count)]
        self._unhook = _on_signals(self.interrupt)
        try:
            await asyncio.wait(self._workers)
        except asyncio.CancelledError:  # Ctrl-C reached the main task (no signal handler)
            self.interrupt()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait(self._workers)
        finally:
            self._unhook()
        while pending:  # never started: the run was stopped
            self._emit(self._skipped(pending.popleft(), self.stop_reason or STOP_INTERRUPTED))
        for w in self._workers:
            if not w.cancelled() and w.exception() is not None:
                raise w.exception()  # type: ignore[misc]  # a bug: let the CLI report it

    def interrupt(self, signum: int = signal.SIGINT) -> None:
        """Ctrl-C or SIGTERM: start nothing new and cancel the calls in flight; a second signal
        is Python's (or the CLI's)."""
        self._unhook()
        self.interrupted = True
        self.terminated = self.terminated or signum == signal.SIGTERM
        self._stop(STOP_INTERRUPTED)
        for w in self._workers:
            w.cancel()

    def _stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason

    def _emit(self, result: CaseResult) -> None:
        self.on_result(result)
        if self.opts.fail_fast and result.status in ("failed", "error"):
            self._stop(STOP_FAIL_FAST)

    async def _worker(self) -> None:
        # One shared queue: each job is taken by exactly one worker. A worker that finds it
        # empty waits while others still run jobs (--repeat auto may queue more), else ends.
        while True:
            if not self._pending:
                if self._busy == 0:
                    self._changed.set()  # wake the others so they end too
                    return
                self._changed.clear()
                await self._changed.wait()
                continue
            job = self._pending.popleft()
            if self.stop_reason is not None:
                self._emit(self._skipped(job, self.stop_reason))
                continue
            self._busy += 1
            try:
                result = await self._run_job(job)
            except asyncio.CancelledError:
                self._emit(self._skipped(job, STOP_INTERRUPTED))
                raise
            finally:
                self._busy -= 1
                self._changed.set()
            self._emit(result)
            self._repeat_until_sure(job, result)

    def _repeat_until_sure(self, job: Job, result: CaseResult) -> None:
        if self._auto is None or self.stop_reason is not None:
            return
        # to the front: a case in progress finishes before new cases start
        more = [Job(job.suite, job.case, job.tier, i) for i in self._auto.after(job, result)]
        self._pending.extendleft(reversed(more))

    def _base(self, job: Job) -> CaseResult:
        return CaseResult(
            suite=job.suite.name,
            case=job.case.name,
            tier=job.tier,
            repeat_index=job.repeat_index,
            vars=job.case.vars,
            file=display_path(job.case.file),
        )

    def _skipped(self, job: Job, reason: str) -> CaseResult:
        r = self._base(job)
        r.status, r.reason = "skipped", reason
        return r

    def _error(self, job: Job, kind: ReasonKind, reason: str) -> CaseResult:
        r = self._base(job)
        r.status, r.reason_kind, r.reason = "error", kind, reason
        return r

    def _render(self, job: Job) -> Rendered:
        key = job.case.id
        got = self._rendered.get(key)
        if got is None:
            try:
                got = render_case(job.suite, job.case, self.store)
            except AicliError as exc:
                got = exc
            self._rendered[key] = got
            if len(self._rendered) > RENDERED_KEPT + self.opts.concurrency:
                self._rendered.popitem(last=False)
        else:
            self._rendered.move_to_end(key)
        if isinstance(got, AicliError):
            raise got
        return got

    async def _run_job(self, job: Job) -> CaseResult:
        if job.case.skip:
            return self._skipped(job, job.case.skip)
        try:
            rendered = self._render(job)
        except AicliError as exc:
            return self._error(job, "render_error", exc.message)
        started = time.monotonic()
        try:
            result = await self.engine.run(build_request(job, rendered, self.opts))
        except NoAnswerError as exc:
            r = self._error(job, "api_error", exc.message)
            r.latency_ms = (time.monotonic() - started) * 1000  # what the failed tries took
            return r
        except BudgetError as exc:
            return self._budget(job, exc)
        except AicliError as exc:
            return self._abort(job, exc)
        return await self._judge(job, rendered, result)

    def _budget(self, job: Job, exc: BudgetError) -> CaseResult:
        self.budget_error = self.budget_error or exc
        self._stop(STOP_BUDGET)
        return self._skipped(job, f"{STOP_BUDGET}: {exc.message}")

    def _abort(self, job: Job, exc: AicliError) -> CaseResult:
        self.fatal = self.fatal or exc
        self._stop(f"aborted: {exc.message}")
        return self._skipped(job, f"aborted: {exc.message}")

    async def _judge(self, job: Job, rendered: Rendered, result: Result) -> CaseResult:
        from aicli.cost import cost_of

        case = job.case
        # A cost check means what this answer costs at its tier's price, cached or replayed too.
        priced = cost_of(result.usage, self.cfg.tier(result.tier).price)
        obs = Observation(result.content, result.latency_ms, priced, result.cached)
        graders = {
            a.value: grader_tier(self.cfg, a, self.opts)
            for a in reversed(case.asserts)
            if a.base_type == "llm-rubric"
        }
        # grading: spent now, what replayed grader answers cost when recorded, batch savings
        graded_cost = graded_recorded_cost = graded_batch_saved = 0.0

        async def grade(rubric: str, output: str) -> tuple[bool, float, str]:
            nonlocal graded_cost, graded_recorded_cost, graded_batch_saved
            tier = graders.get(rubric) or self.opts.grader or self.cfg.default_tier
            answer = await self.engine.run(grader_request(rubric, output, tier, self.opts))
            graded_cost += answer.cost_usd
            graded_recorded_cost += answer.recorded_cost_usd or 0.0
            graded_batch_saved += answer.batch_saved_usd
            return parse_grader_answer(answer.content)

        r = self._base(job)
        r.output, r.latency_ms, r.usage = result.content, result.latency_ms, result.usage
        r.cached, r.model_used, r.template = result.cached, result.model_used, rendered.template
        r.fallback_used = result.fallback_used
        r.answered_tier = result.tier if result.tier != job.tier else ""
        r.prompt = cut(rendered.prompt, PROMPT_KEPT)
        checked: list[AssertionResult] = []
        try:
            checked = await evaluate(case.asserts, obs, grader=grade if graders else None)
        except NoAnswerError as exc:
            r.status, r.reason_kind = "error", "api_error"
            r.reason = f"the llm-rubric grader got no answer: {exc.message}"
        except BudgetError as exc:
            self.budget_error = self.budget_error or exc
            self._stop(STOP_BUDGET)
            r.status, r.reason = "skipped", f"{STOP_BUDGET}: grading: {exc.message}"
        except AicliError as exc:
            return self._abort(job, exc)
        r.cost_usd = result.cost_usd + graded_cost  # what this run spent, grading included
        r.batch_saved_usd = result.batch_saved_usd + graded_batch_saved
        if result.recorded_cost_usd is not None:
            r.recorded_cost_usd = result.recorded_cost_usd + graded_recorded_cost
        r.assertions = [a.record() for a in checked]
        for record, got in zip(r.assertions, checked, strict=True):
            if got.assertion.base_type == "llm-rubric":  # the tier that judged, default or not
                record.grader = graders.get(got.assertion.value) or record.grader
        if r.status in ("error", "skipped"):
            return r
        passed, r.score = case_verdict(checked, case.threshold)
        if not passed:
            r.status = "failed"
            first = primary_failure(checked)
            r.reason_kind = first.kind if first else "assertion_failed"
            r.reason = first.reason if first else "the weighted score is below the threshold"
            if case.threshold is not None:
                r.reason = f"score {r.score:.2f} < threshold {case.threshold:g}; {r.reason}"
        return r


def _on_signals(handler: Callable[[int], None]) -> Callable[[], None]:
    """Route Ctrl-C and SIGTERM to `handler(signum)` while the run lasts; returns the function
    that undoes it and puts back the handlers that were there before."""
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def remove() -> None:
        for sig, old in previous.items():
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
                if old is not None:
                    signal.signal(sig, old)
        previous.clear()

    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.getsignal(sig)
            loop.add_signal_handler(sig, handler, sig)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
        remove()
        return lambda: None
    return remove
