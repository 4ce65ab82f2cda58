"""One call to one tier, in four steps: reserve its worst case on every spending limit, admit it
through the tier's concurrency gate and rate limit, send it to the provider, settle what it cost;
the answer as a cache entry (or None: fall back).

The engine decides which tier to call and when; this module only makes the call. What a provider
type needs (a gate, how long identical requests wait for it) is its Traits, never its name.
asyncio is imported inside the coroutine that uses it (a CLI cache hit never imports it)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from aicli.config import Config
from aicli.cost import (
    Budget,
    SpendLimit,
    Ticket,
    batch_saving,
    cost_of,
    estimate_usage,
    release_all,
    reserve_all,
    settle_all,
    worst_case_cost,
)
from aicli.errors import NoAnswerError, RejectedError
from aicli.planning import Plan, max_tokens_for
from aicli.providers import traits as provider_traits
from aicli.providers.base import (
    HttpTransport,
    Provider,
    ProviderAnswer,
    ProviderCall,
    ProviderFailure,
    Traits,
    request_refused,
)
from aicli.resilience import Cooldowns, TierConcurrency, TierLimiters
from aicli.types import EventSink, Request, StreamEvent, Usage

if TYPE_CHECKING:
    from aicli.cache import CacheEntry
    from aicli.redact import Redactor
    from aicli.redact.placeholders import EventRestorer
    from aicli.resilience import AdaptiveConcurrency as Gate

log = logging.getLogger("aicli.engine")  # one logger for the request pipeline's events


class RunObserver(Protocol):
    """What a caller may want to see of one run while it happens (the service's metrics and
    stream headers); every method is optional to act on."""

    def answering(self, tier: str, model: str, cached: bool, stale: bool = False) -> None:
        """A tier is about to answer: called before its first streamed delta."""

    def failed(self, tier: str, failure: ProviderFailure) -> None:
        """A tier failed; the engine falls back next (or gives up)."""


@dataclass
class ChainRun:
    """One request's run down its tier chain, the mutable part: the tiers tried, the attempts,
    the last error (the walk's decisions are tier_walk.py's); and what the caller passed with it
    (its spending limits, its observer). Not batch/state.py's RunState (a batch run's file on
    disk), nor a check's Outcome (suites/assertions.py)."""

    budget: Budget
    quota: SpendLimit | None = None  # the service's daily cap (per-key budgets: more limits)
    observer: RunObserver | None = None
    attempts: int = 0
    tried: list[str] = field(default_factory=list)
    last_error: str = ""
    last_hint: str | None = None  # what fixes last_error when the answer, not the provider, failed
    batch_saved_usd: float = 0.0  # what answering through a batch saved against the tier's price

    def limits(self) -> list[SpendLimit]:
        """Every spending limit a call reserves on, in order (rolled back together)."""
        return [self.budget] if self.quota is None else [self.budget, self.quota]


class TierCaller:
    """Providers, limits and cooldowns shared by every call of one engine."""

    def __init__(
        self,
        cfg: Config,
        providers: dict[str, Provider] | None,
        concurrency: int,
        transport: HttpTransport = "httpx",
    ) -> None:
        self.cfg = cfg
        self.transport = transport
        self.limiters = TierLimiters()
        # At most `concurrency` calls in flight per tier, fewer while the provider answers 429.
        self.concurrency = TierConcurrency(concurrency)
        self.cooldowns = Cooldowns(
            cfg.cooldown.failures, cfg.cooldown.seconds, cfg.cooldown.probe_seconds
        )
        # Providers by config name; pass some in to answer from elsewhere (recording scripts,
        # a batch run's stand-ins).
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
                self.cfg, name, pool_size=self.concurrency.ceiling, transport=self.transport
            )
        return self._providers[name]

    def traits_for(self, name: str) -> Traits:
        """The traits of the provider a call to provider `name` goes to."""
        return self._chosen(name, False)[1]

    def _chosen(self, name: str, direct: bool) -> tuple[Provider, Traits]:
        """The provider a call goes to and its traits: a stand-in (a batch run's) may set its own
        `traits`; `direct` goes past it to the tier's own provider."""
        provider = self.provider(name)
        if direct:
            provider = getattr(provider, "direct", provider)
        own = getattr(provider, "traits", None)
        return provider, own if isinstance(own, Traits) else provider_traits(self.cfg, name)

    async def call(
        self,
        request: Request,
        plan: Plan,
        redactor: Redactor | None,
        on_delta: EventSink | None,
        run: ChainRun,
        *,
        direct: bool = False,
    ) -> CacheEntry | None:
        """Call one tier: reserve -> admit -> send -> settle. Returns the answer as a cache
        entry, or None to fall back. `direct`: past a batch run's stand-in, to the tier's own
        provider (what a batch did not answer)."""
        import asyncio  # loaded already (this is a coroutine); not at the top: see the docstring

        tier = plan.tier
        provider, traits = self._chosen(tier.provider, direct)
        price = tier.price_for(traits.batched)  # a batch is reserved and billed at its price
        call = self._provider_call(request, plan, on_delta)
        what = f"a call to tier '{plan.name}' ({plan.model})"
        worst = worst_case_cost(
            plan.messages, max_tokens_for(request, tier), price, request.schema,
            extra=request.extra,
        )  # fmt: skip
        tickets = await self._reserve(plan, traits, worst, what, run)
        sink, restorer = _restoring_sink(on_delta, redactor if plan.redacted else None)
        if not direct:  # a resend past a batch is the same tier's turn
            run.tried.append(plan.name)
        resend = False
        charged = 0.0  # what the provider bills for this call, as far as we can know
        sent = False
        gate = None
        try:
            gate = await self._admit(plan, traits, call)
            sent = True
            answer, latency_ms = await self._send(plan, provider, call, sink, run)
            usage = answer.usage or estimate_usage(plan.messages, answer.content)
            actual = cost_of(usage, tier.price_for(answer.batched))
            if answer.batched:
                run.batch_saved_usd += batch_saving(usage, tier)
            # Without reported usage the whole reservation counts: the bound is all we know.
            charged = actual if answer.usage is not None else max(actual, worst)
            if not answer.content.strip() and not answer.tool_calls:  # paid for, nothing to use
                raise ProviderFailure(
                    f"tier '{plan.name}' returned an empty answer",
                    kind="empty",
                    fall_back=not (on_delta and answer.content),  # printed: no second answer
                    attempts=answer.attempts,
                )
        except ProviderFailure as failure:
            if not charged and _maybe_billed(failure):
                charged = worst  # money fails closed: the provider may have generated it all
            if failure.resend and not direct:  # nothing was spent; the usual path's turn
                log.info(
                    "%s", failure.message,
                    extra={"event": "batch.unanswered", "tier": plan.name},
                )  # fmt: skip
                resend = True
            else:
                self._failed(plan, failure, run)
                return None
        except asyncio.CancelledError:
            # Stopped mid-call (a client that left a stream): the provider may bill what it
            # generated, and no usage came back, so the whole reservation counts.
            if sent:
                charged = worst
            raise
        else:
            run.attempts += answer.attempts
        finally:
            if gate is not None:
                gate.release()
            await _settle(tickets, charged, what, sent and not resend)
        if resend:
            return await self.call(request, plan, redactor, on_delta, run, direct=True)
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
                run.last_error, run.last_hint = broken.message, broken.hint
                log.info(
                    "tier '%s' answer rejected: %s", plan.name, broken.message,
                    extra={"event": "tier.failed", "tier": plan.name, "status": None},
                )  # fmt: skip
                return None
        return _entry(request, plan, answer, usage, actual, latency_ms)

    # ---- the steps -------------------------------------------------------------------------

    def _provider_call(
        self, request: Request, plan: Plan, on_delta: EventSink | None
    ) -> ProviderCall:
        tier = plan.tier
        return ProviderCall(
            body=plan.body,  # the body the cache key hashes; max_tokens always set in it
            timeout_seconds=float(tier.timeout_seconds or 30),
            max_retries=int(tier.max_retries if tier.max_retries is not None else 3),
            stream=on_delta is not None,
            format_optional=request.schema is not None and "response_format" not in request.extra,
            key=plan.key,  # a batch line's custom_id
            tier=plan.name,
        )

    async def _reserve(
        self, plan: Plan, traits: Traits, worst: float, what: str, run: ChainRun
    ) -> list[tuple[SpendLimit, Ticket]]:
        """Hold the call's worst case on every spending limit, or refuse (nothing is held)."""
        limits = run.limits()
        unpriced = worst == 0 and traits.remote and plan.name not in self._unpriced
        if unpriced and any(limit.capped for limit in limits):
            self._unpriced.add(plan.name)
            log.warning(
                "tier '%s' has no price in the config, so the budget cannot limit it"
                " (its calls count as $0)", plan.name,
                extra={"event": "budget.unpriced", "tier": plan.name},
            )  # fmt: skip
        return await reserve_all(limits, worst, what)

    async def _admit(self, plan: Plan, traits: Traits, call: ProviderCall) -> Gate | None:
        """Wait for the tier's concurrency gate and rate limit; the gate to release, if any."""
        if not traits.gated:  # offline, or a batch run's stand-in: nothing to pace
            return None
        gate = self.concurrency.get(plan.name)
        started = await gate.acquire()
        try:
            call.on_response = functools.partial(gate.observe, started)
            if plan.tier.rate_limit:
                await self.limiters.acquire(plan.name, float(plan.tier.rate_limit))
        except BaseException:
            gate.release()
            raise
        return gate

    async def _send(
        self,
        plan: Plan,
        provider: Provider,
        call: ProviderCall,
        sink: EventSink | None,
        run: ChainRun,
    ) -> tuple[ProviderAnswer, float]:
        """The provider call; its answer and latency (the provider's, retries included, not our
        queueing or start-up)."""
        from aicli.logs import log_context

        if run.observer is not None:
            run.observer.answering(plan.name, plan.model, False)
        called = time.monotonic()
        with log_context(tier=plan.name):  # SDK retries are logged with their tier
            answer = await provider.complete(call, sink)
        return answer, (time.monotonic() - called) * 1000

    def _failed(self, plan: Plan, failure: ProviderFailure, run: ChainRun) -> None:
        """A failed call: counted, observed, and either the end (raised) or a fall back."""
        run.attempts += failure.attempts
        run.last_error, run.last_hint = failure.message, None
        if run.observer is not None:
            run.observer.failed(plan.name, failure)
        # Counted only when it says the provider is unwell (failure.provider_unhealthy).
        self.cooldowns.failed(plan.name, failure)
        if not failure.fall_back and request_refused(failure.status) and failure.status:
            raise RejectedError(
                failure.message, failure.hint, status=failure.status,
                detail=failure.detail, code=failure.code, param=failure.param,
            ) from None  # fmt: skip
        if not failure.fall_back:
            raise NoAnswerError(failure.message, failure.hint) from None
        log.info(
            "tier '%s' failed: %s", plan.name, failure.message,
            extra={"event": "tier.failed", "tier": plan.name, "status": failure.status},
        )  # fmt: skip


async def _settle(
    tickets: list[tuple[SpendLimit, Ticket]], charged: float, what: str, sent: bool
) -> None:
    """Count what the call cost on every limit (nothing sent: the reservations are released)."""
    if sent:
        await settle_all(tickets, charged, what)
    else:
        await release_all(tickets)


def _maybe_billed(failure: ProviderFailure) -> bool:
    """Whether the provider may bill a failed call: it timed out or broke off after the request
    was sent (a refused connection or an HTTP error is not billed)."""
    if failure.partial_output:
        return True
    return failure.status is None and failure.kind in ("timeout", "malformed")


def _label(request: Request) -> str:
    """How an error names the schema: the CLI flag, or the HTTP request's field."""
    if request.front == "cli":
        return "--schema"
    return "`response_format`" if "response_format" in request.extra else "`schema`"


def _restoring_sink(
    on_delta: EventSink | None, redactor: Redactor | None
) -> tuple[EventSink | None, EventRestorer | None]:
    """Where streamed events go: through the redactor's restorer when placeholders were sent."""
    if on_delta is None or redactor is None:
        return on_delta, None
    restorer = redactor.event_restorer()
    return _restoring(restorer.feed, on_delta), restorer


def _restoring(feed: Callable[[StreamEvent], list[StreamEvent]], sink: EventSink) -> EventSink:
    def restored(event: StreamEvent) -> None:
        for out in feed(event):
            sink(out)

    return restored


def _entry(
    request: Request,
    plan: Plan,
    answer: ProviderAnswer,
    usage: Usage,
    cost_usd: float,
    latency_ms: float,
) -> CacheEntry:
    from aicli.cache import CacheEntry

    now = time.time()
    tier = plan.tier
    return CacheEntry(
        content=answer.content,
        model_used=answer.model or plan.model,
        provider=tier.provider,
        tier=plan.name,
        usage=usage,
        cost_usd=cost_usd,
        latency_ms=latency_ms,
        created=now,
        expires=now + tier.cache_ttl if tier.cache_ttl else now,
        template_checksum=request.template.checksum if request.template else None,
        tool_calls=answer.tool_calls,
        finish_reason=answer.finish_reason,
        logprobs=answer.logprobs,
    )
