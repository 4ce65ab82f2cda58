"""The one table from error to HTTP status and OpenAI-shaped body, and the handlers that use it.

Every error but FastAPI's 422 on `POST /generate` is `{"error": {"message", "type", "code"}}`,
the shape the official OpenAI SDKs turn into the right exception class.
"""

from __future__ import annotations

import logging
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
    TemplateError,
    UsageError,
)
from aicli.security import scrub

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
    (UsageError, 400, "invalid_request_error", "invalid_request"),
    (ConfigError, 400, "invalid_request_error", "invalid_request"),
    (NoAnswerError, 503, "server_error", "no_answer"),
    (CacheError, 500, "server_error", "cache_error"),
    (AicliError, 500, "server_error", "internal_error"),
]

# Statuses a client should not retry even though the SDKs retry them by default.
_NO_RETRY = {"insufficient_quota"}


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
        self.headers = headers or {}
        self.param = param


def error_body(message: str, etype: str, code: str | None, param: str | None = None) -> Any:
    return {"error": {"message": message, "type": etype, "param": param, "code": code}}


def for_aicli_error(exc: AicliError) -> ServeError:
    for cls, status, etype, code in ERROR_TABLE:
        if isinstance(exc, cls):
            message = scrub(exc.message) + (f" ({scrub(exc.hint)})" if exc.hint else "")
            headers = {"x-should-retry": "false"} if code in _NO_RETRY else {}
            if isinstance(exc, BudgetUnavailable):
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
    return JSONResponse(
        error_body(str(exc.detail), etype, code),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    from fastapi.encoders import jsonable_encoder

    errors = exc.errors()
    if not request.url.path.startswith("/v1/"):  # POST /generate: FastAPI's own 422 shape
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)
    # OpenAI answers a malformed body with 400 invalid_request_error naming the parameter.
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    message = f"{param}: {first.get('msg', 'invalid')}" if param else str(first.get("msg"))
    return JSONResponse(
        error_body(message, "invalid_request_error", "invalid_request", param), status_code=400
    )


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    # The type only: an exception's text may quote a prompt; the traceback at debug level.
    log.error("unexpected error", extra={"event": "serve.error", "error": type(exc).__name__})
    log.debug("unexpected error", exc_info=exc)
    return JSONResponse(
        error_body("internal error", "server_error", "internal_error"), status_code=500
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(ServeError, _serve_error)
    app.add_exception_handler(AicliError, _aicli_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
