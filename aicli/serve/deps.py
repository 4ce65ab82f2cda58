"""Per-app state and the dependencies routers attach: the state, bearer-token auth, the
in-flight cap."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from aicli.config import Config
from aicli.engine import Engine
from aicli.quota import DailyQuota
from aicli.serve.checks import HealthCache
from aicli.serve.errors import ServeError
from aicli.serve.metrics import Metrics


@dataclass
class ServeState:
    """Everything one app (one worker) shares between its requests."""

    cfg: Config
    engine: Engine
    metrics: Metrics
    tokens: list[bytes] = field(default_factory=list)
    quota: DailyQuota | None = None
    in_flight: int = 0
    health: HealthCache = field(default_factory=HealthCache)


def state_of(request: Request) -> ServeState:
    state: ServeState = request.app.state.aicli
    return state


# Dependencies are `async def`: FastAPI runs a plain `def` one in a thread pool, a thread hop
# per request for a dictionary lookup.
async def get_state(request: Request) -> ServeState:
    return state_of(request)


StateDep = Annotated[ServeState, Depends(get_state)]

_UNAUTHORIZED = ServeError(
    401,
    "missing or invalid bearer token",  # the same words whatever was wrong
    "invalid_request_error",
    "invalid_api_key",
    headers={"WWW-Authenticate": "Bearer"},
)


async def require_token(request: Request) -> None:
    """With tokens configured, `Authorization: Bearer <one of them>`, compared in constant time."""
    tokens = state_of(request).tokens
    if not tokens:
        return  # loopback-only server (the runner refuses a public host without tokens)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    presented = given.strip().encode()
    ok = False
    for token in tokens:  # every token is compared: timing says nothing about which matched
        ok |= hmac.compare_digest(presented, token)
    if not (ok and scheme.lower() == "bearer"):
        raise _UNAUTHORIZED


async def limit_in_flight(request: Request) -> AsyncIterator[None]:
    """At most serve.max_concurrency requests in flight per worker; beyond it 429 at once."""
    state = state_of(request)
    if state.in_flight >= state.cfg.serve.max_concurrency:
        raise ServeError(
            429,
            f"too many requests in flight on this worker (max {state.cfg.serve.max_concurrency})",
            "rate_limit_exceeded",
            "too_many_requests",
            headers={"Retry-After": "1"},
        )
    state.in_flight += 1
    try:
        yield  # runs until the response, a stream included, has been sent
    finally:
        state.in_flight -= 1
