"""Who gets in: bearer-token auth and the in-flight cap, checked by the middleware from the
headers alone, before any body is read or routing done (`admit`); a tier the config defines."""

from __future__ import annotations

import hmac

from aicli.serve.errors import ServeError
from aicli.serve.state import ServeState

_UNAUTHORIZED = ServeError(
    401,
    "missing or invalid bearer token",  # the same words whatever was wrong
    "invalid_request_error",
    "invalid_api_key",
    headers={"WWW-Authenticate": "Bearer"},
)
_ENDPOINTS = {
    "/generate": "generate",
    "/v1/chat/completions": "chat",
    "/v1/models": "models",
    "/health": "health",
    "/health/live": "health",
    "/health/ready": "health",
    "/metrics": "metrics",
}


def endpoint_of(path: str) -> str:
    return _ENDPOINTS.get(path.rstrip("/") or "/", "other")  # never the raw path: cardinality


OPEN_PATHS = ("/health/live",)  # never authenticated: a liveness probe has no token
LIMITED = ("generate", "chat", "models")  # endpoints under serve.max_concurrency


def admit(state: ServeState, path: str, authorization: str) -> ServeError | None:
    """Why a request may not go in (401, then 429), or None. The middleware asks this before
    routing: a refused request costs no more than this."""
    if state.tokens and path.rstrip("/") not in OPEN_PATHS and not _token_ok(state, authorization):
        return _UNAUTHORIZED
    cap = state.cfg.serve.max_concurrency
    if endpoint_of(path) in LIMITED and state.in_flight >= cap:
        return ServeError(
            429,
            f"too many requests in flight on this worker (max {cap})",
            "rate_limit_exceeded",
            "too_many_requests",
            headers={"Retry-After": "1"},
        )
    return None


def require_tier(state: ServeState, name: str, param: str | None) -> None:
    """400 for a tier this config does not define, naming only that tier (never the others)."""
    if name in state.cfg.tiers:
        return
    message = (
        f"unknown tier '{name}'"
        if param
        else f"the template asks for tier '{name}', which this server does not define"
    )
    raise ServeError(400, message, "invalid_request_error", "invalid_request", param=param)


def _token_ok(state: ServeState, authorization: str) -> bool:
    """`Authorization: Bearer <one of the tokens>`, compared in constant time. Without tokens
    the server is loopback-only (the runner refuses a public host)."""
    scheme, _, given = authorization.partition(" ")
    presented = given.strip().encode()
    ok = False
    for token in state.tokens:  # every token is compared: timing says nothing about which
        ok |= hmac.compare_digest(presented, token)
    return ok and scheme.lower() == "bearer"
