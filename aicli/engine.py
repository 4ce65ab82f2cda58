"""One request, one way: plan (redact, keys) -> cache -> single-flight -> rate limit -> call ->
fall back -> cache write -> restore -> Result. Every command that needs a model answer goes
through Engine.run (or run_sync, which answers a cache hit without starting asyncio).

What is looked up, what is a hit, which tier is called, the stale fallback and when to give up
are tier_walk.py's decisions; here are its two adapters, which only do the I/O it asks for:
`_hit_now` (reads without an event loop, up to the first call) and `_run` (async).

asyncio is imported where it is used, here and in what this imports, so that a CLI cache hit
never imports it (start-up time)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aicli.calling import ChainRun, RunObserver, TierCaller
from aicli.config import Config
from aicli.cost import Budget, SpendLimit
from aicli.errors import AicliError, NoAnswerError
from aicli.planning import Plan, make_redactor, plan_request
from aicli.providers.base import HttpTransport, Provider
from aicli.tier_walk import Answer, Call, GiveUp, Read, TierWalk, looked_up_in, no_answer
from aicli.types import EventSink, Request, Result, answer_events

if TYPE_CHECKING:
    from aicli.cache import CacheEntry, ResponseCache
    from aicli.recording import Recorder
    from aicli.redact import Redactor
    from aicli.replay import ReplayStore

log = logging.getLogger(__name__)
_UNSET: Any = object()
DEFAULT_CONCURRENCY = 64  # per tier; `test-prompts -j N` passes its own
LONG_TEXT = 16_384  # characters of prompt past which redaction runs off the event loop


def _text_length(request: Request) -> int:
    return sum(len(m.get("content") or "") for m in request.messages)


class Engine:
    """Answers Requests for one invocation; shares providers, limits and the budget across calls."""

    def __init__(
        self,
        cfg: Config,
        *,
        cache: ResponseCache | None = _UNSET,
        recorder: Recorder | None = None,
        replay: ReplayStore | None = None,
        budget: Budget | None = None,
        providers: dict[str, Provider] | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        transport: HttpTransport = "httpx",
    ) -> None:
        self.cfg = cfg
        self._cache = cache
        self._own_cache: ResponseCache | None = None  # opened here, so closed here
        self.recorder = recorder
        self.replay = replay
        self.budget = budget or Budget(cfg.budget.max_cost_usd)
        self.calls = TierCaller(cfg, providers, concurrency, transport)
        # Cache keys whose entries this invocation paid for through a batch (the batch's
        # savings): their hits are reported as answers bought now, at their cost.
        self.bought: dict[str, float] = {}

    @property
    def cache(self) -> ResponseCache | None:
        if self._cache is _UNSET:
            from aicli.cache import open_cache

            self._cache = self._own_cache = open_cache(self.cfg)
        return self._cache

    # -- public API --------------------------------------------------------------------------

    def run_sync(self, request: Request, on_delta: EventSink | None = None) -> Result:
        """`run` for a caller without an event loop, then `aclose`. An answer the walk reaches
        before any call (a cache hit; a --cache-only stale one; a replay) is given without one:
        its cost is a CLI command's start-up."""
        try:
            hit = self._hit_now(request, on_delta)
        except BaseException:
            self._close_now()
            raise
        if hit is not None:
            self._close_now()
            return hit

        async def go() -> Result:
            try:
                return await self.run(request, on_delta)
            finally:
                await self.aclose()

        import asyncio

        return asyncio.run(go())

    async def run(
        self,
        request: Request,
        on_delta: EventSink | None = None,
        *,
        budget: Budget | None = None,
        quota: SpendLimit | None = None,
        observer: RunObserver | None = None,
    ) -> Result:
        """Answer one request. A server passes its per-request budget, the shared daily quota
        and an observer (to learn the answering tier before the first streamed delta). With -v
        (or serve's logs) one `request` event says how it went."""
        from aicli.logs import log_context

        with log_context(request_id=request.request_id):
            try:
                result = await self._run(
                    request, on_delta, budget=budget, quota=quota, observer=observer
                )
            except AicliError as exc:
                self._log_failed(request, exc)
                raise
            self._log_done(result)
            return result

    def _log_failed(self, request: Request, exc: AicliError) -> None:
        if log.isEnabledFor(logging.INFO):  # off unless -v (or serve): skip building its fields
            log.info(
                "request %s failed: %s",
                request.request_id,
                exc.message,
                extra={"event": "request", "tier": self.cfg.tier_for(request),
                       "error": exc.message},
            )  # fmt: skip

    def _log_done(self, result: Result) -> None:
        if log.isEnabledFor(logging.INFO):  # the fields cost more than the check: per hit
            log.info(
                "request %s: tier %s, model %s, cached %s, %d attempt(s), %.0f ms",
                result.request_id, result.tier, result.model_used, result.cached,
                result.attempts, result.latency_ms,
                extra={"event": "request", **result.log_fields()},
            )  # fmt: skip

    def _hit_now(self, request: Request, on_delta: EventSink | None) -> Result | None:
        """`_run`'s answer when the walk reaches it before any call (a fresh hit; with
        --cache-only, a stale one; a replay), read without an event loop; None when the walk
        needs one: a call, a miss to count, a backend that cannot answer synchronously."""
        source = looked_up_in(request, replay=self.replay is not None)
        if source is None:  # the walk starts with a call
            return None
        from aicli.logs import log_context

        with log_context(request_id=request.request_id):
            try:
                redactor = self._start(request)
                cache = self.cache if source == "cache" else None
                if source == "cache" and (cache is None or not cache.answers_now):
                    return None
                plans = plan_request(self.cfg, request, redactor)
                walk = TierWalk(request, plans, replay=self.replay is not None)
                while isinstance(step := walk.next(), Read):
                    walk.found(self._read_now(step, cache))
                if not isinstance(step, Answer):
                    return None
                if cache is not None and step.counts == "hit":
                    cache.record_hit_now(step.entry)
                result = self._finish(request, step, redactor, on_delta, ChainRun(self.budget))
            except AicliError as exc:
                self._log_failed(request, exc)
                raise
            self._log_done(result)
            return result

    def _read_now(self, step: Read, cache: ResponseCache | None) -> CacheEntry | None:
        if step.source == "replay":
            assert self.replay is not None
            return self.replay.get(step.plan.key)
        assert cache is not None
        return cache.get_now(step.plan.key)

    def _start(self, request: Request) -> Redactor | None:
        """Every path's first step, before any I/O: an unknown tier is exit 2 before all else;
        then the request's redactor."""
        self.cfg.tier(self.cfg.tier_for(request))
        return make_redactor(self.cfg, request)

    def _close_now(self) -> None:
        """`aclose` after `_hit_now`: nothing but the cache it opened needs closing."""
        own, self._own_cache = self._own_cache, None
        if own is not None:
            self._cache = _UNSET
            if own.answers_now:  # else _hit_now did not use it: nothing was opened
                own.close_now()

    async def _run(
        self,
        request: Request,
        on_delta: EventSink | None,
        *,
        budget: Budget | None,
        quota: SpendLimit | None,
        observer: RunObserver | None,
    ) -> Result:
        redactor = self._start(request)
        if redactor is not None and _text_length(request) > LONG_TEXT:
            from aicli import offload  # a long text's redaction must not hold the event loop

            plans = await offload.run(plan_request, self.cfg, request, redactor)
        else:
            plans = plan_request(self.cfg, request, redactor)
        run = ChainRun(budget or self.budget, quota, observer)
        walk = TierWalk(request, plans, replay=self.replay is not None)
        cache = self.cache if walk.uses_cache else None
        # One lookup per tier, just before its call: so the lookups before any call are those
        # _hit_now makes without an event loop.
        while True:
            step = walk.next()
            if isinstance(step, Read):
                walk.found(await self._read(step, cache))
            elif isinstance(step, Call):
                fresh, shared = await self._call_once(request, step, cache, redactor, on_delta, run)
                walk.called(fresh, shared=shared)
            elif isinstance(step, Answer):
                await self._count(cache, step)
                return self._finish(request, step, redactor, on_delta, run)
            else:
                await self._count(cache, step)
                if step.why == "replay":
                    raise self._not_recorded(request, plans[0])
                raise no_answer(step.why, request, plans, run)

    async def aclose(self) -> None:
        await self.calls.aclose()
        own, self._own_cache = self._own_cache, None
        if own is not None:
            self._cache = _UNSET
            await own.aclose()

    # -- steps -------------------------------------------------------------------------------

    async def _call_once(
        self,
        request: Request,
        step: Call,
        cache: ResponseCache | None,
        redactor: Redactor | None,
        on_delta: EventSink | None,
        run: ChainRun,
    ) -> tuple[CacheEntry | None, bool]:
        """Call one tier unless it is cooling, through single-flight if the walk says so; the
        answer is written to the cache. Returns (entry or None, whether another request paid)."""
        plan = step.plan
        if not self.calls.cooldowns.admit(plan.name):  # cooling, and no probe due
            run.tried.append(plan.name)
            run.last_error = f"tier '{plan.name}' skipped: it failed repeatedly just now"
            return None, False
        if cache is None:
            return await self.calls.call(request, plan, redactor, on_delta, run), False
        store = bool(plan.tier.cache_ttl)
        if step.flight:
            return await cache.single_flight(
                plan.key,
                lambda: self.calls.call(request, plan, redactor, on_delta, run),
                wait_s=self._flight_wait_s(plan),
                store=store,
            )
        fresh = await self.calls.call(request, plan, redactor, on_delta, run)
        if fresh is not None and store:
            await cache.set(plan.key, fresh)
        return fresh, False

    def _flight_wait_s(self, plan: Plan) -> float:
        """How long identical requests wait for this call: the provider's say, else the tier's
        timeout."""
        wait = self.calls.traits_for(plan.tier.provider).flight_wait_s
        return wait if wait is not None else float(plan.tier.timeout_seconds or 30)

    async def _read(self, step: Read, cache: ResponseCache | None) -> CacheEntry | None:
        if step.source == "replay":
            assert self.replay is not None
            return self.replay.get(step.plan.key)
        return await cache.get(step.plan.key) if cache is not None else None

    def _not_recorded(self, request: Request, first: Plan) -> NoAnswerError:
        """A replay's miss names what changed since the recording (the endpoint, model, prompt)."""
        from aicli.recording import request_facts

        assert self.replay is not None
        asked = request_facts(self.cfg.base_url(first.tier.provider), first.model, first.messages)
        cause, hint = self.replay.why_missing(first.name, asked, request.template)
        return NoAnswerError(
            f"no recorded answer for this request (tier '{first.name}', model {first.model}):"
            f" not recorded: {cause}",
            hint,
        )

    def _finish(
        self,
        request: Request,
        answer: Answer,
        redactor: Redactor | None,
        on_delta: EventSink | None,
        run: ChainRun,
    ) -> Result:
        """The walk's answer as the request's Result: restored, streamed (unless a call already
        streamed it), recorded."""
        plan, entry, cached = answer.plan, answer.entry, answer.cached
        if answer.stale:
            why = run.last_error or "--cache-only"
            log.warning(
                "serving an expired cached answer (stale) for tier '%s': %s", plan.name, why,
                extra={"event": "cache.stale", "tier": plan.name, "reason": why},
            )  # fmt: skip
        content, tool_calls = entry.content, entry.tool_calls
        if redactor is not None and plan.redacted:
            from aicli.redact.walk import restore_tool_calls

            content = redactor.restore(content)
            if tool_calls:
                tool_calls = restore_tool_calls(tool_calls, redactor.restore)
        if on_delta is not None and answer.streams and (content or tool_calls):
            if run.observer is not None:
                run.observer.answering(plan.name, entry.model_used, cached, answer.stale)
            for event in answer_events(content, tool_calls, entry.finish_reason):
                on_delta(event)  # a cache hit or replay streams at once
        if self.recorder is not None:
            from aicli.recording import request_facts

            asked = request_facts(self.cfg.base_url(plan.tier.provider), plan.model, plan.messages)
            self.recorder.write(plan.key, entry, request.template, asked)
        saved = run.batch_saved_usd
        if cached and plan.key in self.bought:  # paid by this run (a batch), not a hit
            cached, saved = False, self.bought[plan.key]
        # a replay spends nothing now; what the answer cost then still compares tiers offline
        replayed = answer.kind == "replayed"
        return Result(
            content=content,
            tier=plan.name,
            model_used=entry.model_used,
            usage=entry.usage,
            cost_usd=0.0 if cached or replayed else entry.cost_usd,
            recorded_cost_usd=entry.cost_usd if replayed else None,
            latency_ms=entry.latency_ms,
            request_id=request.request_id,
            cached=cached,
            stale=answer.stale,
            fallback_used=answer.index > 0,
            attempts=run.attempts,
            template=request.template,
            provider=entry.provider,
            tiers_tried=run.tried or [plan.name],
            # what was done: an unredacted (local) tier's prompt had nothing replaced
            redactions=dict(redactor.counts) if redactor is not None and plan.redacted else {},
            cache_key=plan.key,
            batch_saved_usd=0.0 if cached else saved,
            tool_calls=tool_calls,
            finish_reason=entry.finish_reason or ("tool_calls" if tool_calls else "stop"),
            logprobs=entry.logprobs,
        )

    @staticmethod
    async def _count(cache: ResponseCache | None, step: Answer | GiveUp) -> None:
        """Add to the counter the walk names (counters fail open inside ResponseCache)."""
        if cache is None or step.counts is None:
            return
        if isinstance(step, Answer) and step.counts == "hit":
            await cache.record_hit(step.entry)
        else:
            await cache.record_miss()
