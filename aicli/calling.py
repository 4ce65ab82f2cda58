"""One call to one tier: the budget and quota reservations, the tier's concurrency gate and rate
limit, the provider call, what it cost, and the answer as a cache entry (or None: fall back).

The engine decides which tier to call and when; this module only makes the call. asyncio is
imported inside the coroutine that uses it (a CLI cache hit never imports it)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from aicli.config import Config
from aicli.cost import Budget, cost_of, estimate_usage, worst_case_cost
from aicli.errors import NoAnswerError, RejectedError
from aicli.planning import Plan, max_tokens_for
from aicli.providers.base import Provider, ProviderCall, ProviderFailure, request_refused
from aicli.resilience import Cooldowns, TierConcurrency, TierLimiters
from aicli.types import EventSink, Request, StreamEvent

if TYPE_CHECKING:
    from aicli.cache import CacheEntry
    from aicli.quota import DailyQuota
    from aicli.redact import Redactor

log = logging.getLogger("aicli.engine")  # one logger for the request pipeline's events


class RunObserver(Protocol):
    """What a caller may want to see of one run while it happens (the service's metrics and
    stream headers); every method is optional to act on."""

    def answering(self, tier: str, model: str, cached: bool, stale: bool = False) -> None:
        """A tier is about to answer: called before its first streamed delta."""

    def failed(self, tier: str, failure: ProviderFailure) -> None:
        """A tier failed; the engine falls back next (or gives up)."""


@dataclass
class Outcome:
    """One run's state, and the per-request things a caller passed with it."""

    budget: Budget
    quota: DailyQuota | None = None
    observer: RunObserver | None = None
    attempts: int = 0
    tried: list[str] = field(default_factory=list)
    stale: tuple[Plan, CacheEntry] | None = None
    last_error: str = ""
    last_hint: str | None = None  # what fixes last_error when the answer, not the provider, failed
    batch_saved_usd: float = 0.0  # what answering through a batch saved against the tier's price


class TierCaller:
    """Providers, limits and cooldowns shared by every call of one engine."""

    def __init__(
        self, cfg: Config, providers: dict[str, Provider] | None, concurrency: int
    ) -> None:
        self.cfg = cfg
        self.limiters = TierLimiters()
        # At most `concurrency` calls in flight per tier, fewer while the provider answers 429.
        self.concurrency = TierConcurrency(concurrency)
        self.cooldowns = Cooldowns(
            cfg.cooldown.failures, cfg.cooldown.seconds, cfg.cooldown.probe_seconds
        )
        # Providers by config name; pass some in to answer from elsewhere (recording scripts).
        self._providers: dict[str, Provider] = dict(providers or {})
        self._unpriced: set[str] = set()  # tiers already warned about: no price, budget blind

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()

    def provider(self, name: str) -> Provider:
        if name not in self._providers:
            from aicli.providers import make_provider

            self._providers[name] = make_provider(
                self.cfg, name, pool_size=self.concurrency.ceiling
            )
        return self._providers[name]

    async def call(
        self,
        request: Request,
        plan: Plan,
        redactor: Redactor | None,
        on_delta: EventSink | None,
        outcome: Outcome,
        *,
        direct: bool = False,
    ) -> CacheEntry | None:
        """Call one tier; return the answer as a cache entry, or None to fall back. `direct`:
        past a batch provider, to the tier's own (what a batch did not answer)."""
        import asyncio  # loaded already (this is a coroutine); not at the top: see the docstring

        from aicli.cache import CacheEntry
        from aicli.logs import log_context

        tier = plan.tier
        max_tokens = max_tokens_for(request, tier)
        provider = self.provider(tier.provider)
        if direct:
            provider = getattr(provider, "direct", provider)
        batched = bool(getattr(provider, "batch", False))  # reserved at the batch price
        price = tier.price_for(batched)
        worst = worst_case_cost(
            plan.messages, max_tokens, price, request.schema, extra=request.extra
        )
        budget = outcome.budget
        if budget.cap is not None and worst == 0 and plan.name not in self._unpriced:
            self._unpriced.add(plan.name)
            if self.cfg.provider(tier.provider).type != "echo":
                log.warning(
                    "tier '%s' has no price in the config, so the budget cannot limit it"
                    " (its calls count as $0)", plan.name,
                    extra={"event": "budget.unpriced", "tier": plan.name},
                )  # fmt: skip
        what = f"a call to tier '{plan.name}' ({plan.model})"
        reserved = budget.reserve(worst, what)
        ticket = None
        if outcome.quota is not None:
            try:
                ticket = await outcome.quota.reserve(worst, what)
            except BaseException:
                budget.settle(reserved, 0.0)
                raise
        sink = on_delta
        restorer = None
        if on_delta is not None and redactor is not None and plan.redacted:
            restorer = redactor.event_restorer()
            sink = _restoring(restorer.feed, on_delta)
        call = ProviderCall(
            body=plan.body,  # the body the cache key hashes; max_tokens always set in it
            timeout_seconds=float(tier.timeout_seconds or 30),
            max_retries=int(tier.max_retries if tier.max_retries is not None else 3),
            stream=on_delta is not None,
            format_optional=request.schema is not None and "response_format" not in request.extra,
            key=plan.key,
            tier=plan.name,
        )
        if not direct:  # a resend past a batch is the same tier's turn
            outcome.tried.append(plan.name)
        resend = False
        charged = 0.0
        sent = False
        gate = None
        try:
            if getattr(provider, "gated", True):  # echo (offline), a batch: nothing to pace
                tier_gate = self.concurrency.get(plan.name)
                started = await tier_gate.acquire()
                gate = tier_gate  # released below, also when the call is cancelled
                call.on_response = functools.partial(gate.observe, started)
                if tier.rate_limit:
                    await self.limiters.acquire(plan.name, float(tier.rate_limit))
            if outcome.observer is not None:
                outcome.observer.answering(plan.name, plan.model, False)
            # Latency is the provider's (retries included), not our queueing or start-up.
            called = time.monotonic()
            sent = True
            with log_context(tier=plan.name):  # SDK retries are logged with their tier
                answer = await provider.complete(call, sink)
            latency_ms = (time.monotonic() - called) * 1000
            usage = answer.usage or estimate_usage(plan.messages, answer.content)
            actual = cost_of(usage, tier.price_for(answer.batched))
            if answer.batched:
                outcome.batch_saved_usd += max(0.0, cost_of(usage, tier.price) - actual)
            # Without reported usage the whole reservation counts: the bound is all we know.
            charged = actual if answer.usage is not None else max(actual, reserved)
            if not answer.content.strip() and not answer.tool_calls:  # paid for, nothing to use
                raise ProviderFailure(
                    f"tier '{plan.name}' returned an empty answer",
                    kind="empty",
                    retryable=not (on_delta and answer.content),  # printed: no second answer
                    attempts=answer.attempts,
                )
        except ProviderFailure as failure:
            if failure.resend and not direct:  # nothing was spent; the usual path's turn
                log.info(
                    "%s", failure.message,
                    extra={"event": "batch.unanswered", "tier": plan.name},
                )  # fmt: skip
                resend = True
            else:
                outcome.attempts += failure.attempts
                outcome.last_error, outcome.last_hint = failure.message, None
                if outcome.observer is not None:
                    outcome.observer.failed(plan.name, failure)
                # Counted only when it says the provider is unwell (failure.provider_unhealthy).
                self.cooldowns.failed(plan.name, failure)
                if not failure.retryable and request_refused(failure.status) and failure.status:
                    raise RejectedError(
                        failure.message, failure.hint, status=failure.status,
                        detail=failure.detail, code=failure.code, param=failure.param,
                    ) from None  # fmt: skip
                if not failure.retryable:
                    raise NoAnswerError(failure.message, failure.hint) from None
                log.info(
                    "tier '%s' failed: %s", plan.name, failure.message,
                    extra={"event": "tier.failed", "tier": plan.name, "status": failure.status},
                )  # fmt: skip
                return None
        except asyncio.CancelledError:
            # Stopped mid-call (a client that left a stream): the provider may bill what it
            # generated, and no usage came back, so the whole reservation counts.
            if sent:
                charged = reserved
            raise
        else:
            outcome.attempts += answer.attempts
        finally:
            if gate is not None:
                gate.release()
            budget.settle(reserved, charged, what)
            if outcome.quota is not None and ticket is not None:
                await outcome.quota.settle(ticket, charged)
        if resend:
            return await self.call(request, plan, redactor, on_delta, outcome, direct=True)
        self.cooldowns.succeeded(plan.name)
        if restorer is not None and on_delta is not None:
            for event in restorer.flush():
                on_delta(event)
        if request.schema is not None and not answer.tool_calls:
            from aicli import offload  # a request's schema and answer: off the event loop
            from aicli.jsontext import check_answer_schema

            try:
                await offload.run(
                    check_answer_schema, request.schema, answer.content, plan.name, _label(request)
                )
            except NoAnswerError as broken:
                # The request made this answer unusable, not the provider: a failed attempt
                # (the next tier may do better) that never trips the tier's cooldown.
                if on_delta is not None:  # streamed already: no second answer
                    raise
                outcome.last_error, outcome.last_hint = broken.message, broken.hint
                log.info(
                    "tier '%s' answer rejected: %s", plan.name, broken.message,
                    extra={"event": "tier.failed", "tier": plan.name, "status": None},
                )  # fmt: skip
                return None
        now = time.time()
        return CacheEntry(
            content=answer.content,
            model_used=answer.model or plan.model,
            provider=tier.provider,
            tier=plan.name,
            usage=usage,
            cost_usd=actual,
            latency_ms=latency_ms,
            created=now,
            expires=now + tier.cache_ttl if tier.cache_ttl else now,
            template_checksum=request.template.checksum if request.template else None,
            tool_calls=answer.tool_calls,
            finish_reason=answer.finish_reason,
            logprobs=answer.logprobs,
        )


def _label(request: Request) -> str:
    """How an error names the schema: the CLI flag, or the HTTP request's field."""
    if request.front == "cli":
        return "--schema"
    return "`response_format`" if "response_format" in request.extra else "`schema`"


def _restoring(feed: Callable[[StreamEvent], list[StreamEvent]], sink: EventSink) -> EventSink:
    def restored(event: StreamEvent) -> None:
        for out in feed(event):
            sink(out)

    return restored
