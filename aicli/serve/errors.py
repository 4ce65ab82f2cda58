"""The one table from error to HTTP status and OpenAI-shaped body, and the handlers that use it.

Every error but FastAPI's 422 on `POST /generate` is `{"error": {"message", "type", "code"}}`,
the shape the official OpenAI SDKs turn into the right exception class.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from aicli.errors import (
    AicliError,
    BudgetError,
    BudgetUnavailable,
    CacheError,
    ConfigError,
    MissingKeyError,
    NoAnswerError,
    QuotaError,
    RejectedError,
    TemplateError,
    UsageError,
)
from aicli.scrub import scrub

log = logging.getLogger("aicli.serve")

# Most specific first: (error class, HTTP status, OpenAI error type, code)
ERROR_TABLE: list[tuple[type[AicliError], int, str, str]] = [
    (QuotaError, 429, "insufficient_quota", "insufficient_quota"),
    # the day's spend cannot be counted: money fails closed, and a later retry may succeed
    (BudgetUnavailable, 503, "server_error", "budget_unavailable"),
    (BudgetError, 400, "invalid_request_error", "budget_exceeded"),
    (TemplateError, 400, "invalid_request_error", "template_error"),
    # the server's key is missing: the caller's request is fine, the service cannot answer it
    (MissingKeyError, 503, "server_error", "provider_not_configured"),
    # the provider refused the request itself: its own status (below), never 503
    (RejectedError, 400, "invalid_request_error", "invalid_request"),
    (UsageError, 400, "invalid_request_error", "invalid_request"),
    (ConfigError, 400, "invalid_request_error", "invalid_request"),
    (NoAnswerError, 503, "server_error", "no_answer"),
    (CacheError, 500, "server_error", "cache_error"),
    (AicliError, 500, "server_error", "internal_error"),
]

# Errors a retry of the same request cannot fix, though their status alone does not say so.
_NO_RETRY = {"insufficient_quota", "provider_not_configured"}
# A hint that names a CLI flag (--schema, -t echo) means nothing to an HTTP caller: it is left
# out, or replaced by what the caller can change in the request.
_CLI_FLAG = re.compile(r"(?:^|[\s(/])--?[a-z]")
_HTTP_HINTS = {
    "budget_exceeded": "lower `max_tokens` (or `max_completion_tokens`), or use a cheaper tier",
}


def should_not_retry(status: int, code: str | None) -> bool:
    """A 4xx other than a timeout, conflict or rate limit is the request's own fault: sent
    again unchanged it fails again (the openai SDKs honour `x-should-retry: false`)."""
    return code in _NO_RETRY or (400 <= status < 500 and status not in (408, 409, 429))


class ServeError(Exception):
    """An error the web layer itself raises (auth, limits, unknown model), already mapped."""

    def __init__(
        self,
        status: int,
        message: str,
        etype: str,
        code: str | None,
        *,
        headers: dict[str, str] | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.etype, self.code = status, message, etype, code
        self.headers = dict(headers or {})
        if should_not_retry(status, code):
            self.headers.setdefault("x-should-retry", "false")
        self.param = param


def error_body(message: str, etype: str, code: str | None, param: str | None = None) -> Any:
    return {"error": {"message": message, "type": etype, "param": param, "code": code}}


def for_aicli_error(exc: AicliError) -> ServeError:
    if isinstance(exc, RejectedError):
        # What the provider said about the request, in the provider's terms (its code and
        # param too), without aicli's provider names or URLs.
        detail = scrub(exc.detail or "no reason given")
        return ServeError(
            exc.status,
            f"the provider refused the request (HTTP {exc.status}): {detail}",
            "invalid_request_error",
            exc.code or "invalid_request",
            param=exc.param,
        )
    for cls, status, etype, code in ERROR_TABLE:
        if isinstance(exc, cls):
            hint = _HTTP_HINTS.get(code) or (
                exc.hint if exc.hint and not _CLI_FLAG.search(exc.hint) else None
            )
            message = scrub(exc.message) + (f" ({scrub(hint)})" if hint else "")
            headers = {}
            if isinstance(exc, BudgetUnavailable):  # a later retry can succeed: say when
                headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
            return ServeError(status, message, etype, code, headers=headers)
    raise AssertionError("AicliError is the last row of ERROR_TABLE")  # pragma: no cover


def response_for(err: ServeError) -> JSONResponse:
    return JSONResponse(
        error_body(err.message, err.etype, err.code, err.param),
        status_code=err.status,
        headers=err.headers,
    )


async def _serve_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServeError)
    return response_for(exc)


async def _aicli_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AicliError)
    return response_for(for_aicli_error(exc))


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    etype = "invalid_request_error" if exc.status_code < 500 else "server_error"
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    headers = dict(getattr(exc, "headers", None) or {})
    if should_not_retry(exc.status_code, code):
        headers.setdefault("x-should-retry", "false")
    return JSONResponse(
        error_body(str(exc.detail), etype, code), status_code=exc.status_code, headers=headers
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    from fastapi.encoders import jsonable_encoder

    errors = exc.errors()
    no_retry = {"x-should-retry": "false"}
    if not request.url.path.startswith("/v1/"):  # POST /generate: FastAPI's own 422 shape
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422, headers=no_retry)
    # OpenAI answers a malformed body with 400 invalid_request_error naming the parameter.
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    message = f"{param}: {first.get('msg', 'invalid')}" if param else str(first.get("msg"))
    return JSONResponse(
        error_body(message, "invalid_request_error", "invalid_request", param),
        status_code=400,
        headers=no_retry,
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(ServeError, _serve_error)
    app.add_exception_handler(AicliError, _aicli_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # Unexpected errors are the middleware's (RequestMiddleware): a handler for Exception here
    # would run outside it, without the request id.
