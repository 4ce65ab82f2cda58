"""One request through the engine for a route: its own budget, the shared daily quota, metrics,
and the fields the request's log line reports."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request as HttpRequest

from aicli.cost import Budget
from aicli.providers.base import ProviderFailure
from aicli.serve.metrics import failure_kind
from aicli.serve.state import ServeState, state_of
from aicli.types import EventSink, Request, Result


@dataclass
class RequestObserver:
    """The engine's RunObserver for one HTTP request: which tier is answering, known before
    the first streamed delta (for stream headers), and each tier's failure in the metrics."""

    state: ServeState
    tier: str = ""
    model: str = ""
    cached: bool = False
    stale: bool = False

    def answering(self, tier: str, model: str, cached: bool, stale: bool = False) -> None:
        self.tier, self.model, self.cached, self.stale = tier, model, cached, stale

    def failed(self, tier: str, failure: ProviderFailure) -> None:
        self.state.metrics.provider_errors.labels(tier, failure_kind(failure)).inc()


async def answer(
    http: HttpRequest,
    request: Request,
    *,
    endpoint: str,
    on_delta: EventSink | None = None,
    observer: RequestObserver | None = None,
) -> Result:
    """Run the engine; count the answer; leave the log fields on `http.state`."""
    state = state_of(http)
    tier = state.cfg.tier_for(request)
    http.state.tier = tier
    observer = observer or RequestObserver(state)
    http.state.answering = observer
    # Per request: the config's cap per call. Unlike the CLI, no check_overrun() afterwards: a
    # call over its bound is paid for, so its answer is sent; the overrun is logged, and the
    # daily quota counts the real cost.
    budget = Budget(state.cfg.budget.max_cost_usd)
    with state.metrics.in_flight.track_inprogress():
        result = await state.engine.run(
            request, on_delta, budget=budget, quota=state.quota, observer=observer
        )
    state.metrics.answered(tier, result)
    http.state.result = result
    http.state.endpoint = endpoint
    return result


def answer_headers(result: Result) -> dict[str, str]:
    return {
        "x-aicli-cached": "true" if result.cached else "false",
        "x-aicli-stale": "true" if result.stale else "false",
        "x-aicli-tier": result.tier,
        "x-aicli-cost-usd": f"{result.cost_usd:.8f}",
    }


def stream_headers(observer: RequestObserver) -> dict[str, str]:
    """A stream's headers go out before its answer is complete: what is known by then."""
    headers = {
        "x-aicli-cached": "true" if observer.cached else "false",
        "x-aicli-stale": "true" if observer.stale else "false",
        "x-aicli-tier": observer.tier,
        "cache-control": "no-cache",
    }
    if observer.cached:
        headers["x-aicli-cost-usd"] = f"{0:.8f}"
    return headers
