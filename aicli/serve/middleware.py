"""The ASGI layer around every request: its id, who gets in and how many at once
(admission.admit, from the headers alone), the body's size, time and Unicode, HEAD as GET,
unexpected errors as a JSON 500, the request's one log line and its request metrics. Pure ASGI,
so a stream is logged (and leaves the in-flight count) when its last byte has gone, and a
refused request costs no routing and no body."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aicli.logs import log_context
from aicli.serve.admission import LIMITED, admit, endpoint_of
from aicli.serve.errors import ServeError, error_body
from aicli.serve.metrics import Metrics
from aicli.serve.state import ServeState

log = logging.getLogger("aicli.serve.access")
errlog = logging.getLogger("aicli.serve")

_ID_RE = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
# A \uD800-\uDFFF escape: only then can parsed JSON hold a lone surrogate (raw ones are not
# UTF-8), so only then is the body parsed here to look.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")

_INTERNAL = ServeError(500, "internal error", "server_error", "internal_error")


class RequestMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, body_timeout_s: float, metrics: Metrics
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.body_timeout = body_timeout_s
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        request_id = given if _ID_RE.fullmatch(given) else uuid.uuid4().hex
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500
        started_response = False
        completed = False  # the last byte of the body went out
        head = scope["method"] == "HEAD"  # answered as GET, without the body

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response, completed
            if message["type"] == "http.response.start":
                status = message["status"]
                started_response = True
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            elif message["type"] == "http.response.body":
                if head:
                    message = {**message, "body": b""}
                if not message.get("more_body", False):
                    completed = True
            await send(message)

        gone: list[bool] = []  # the client hung up (Starlette then stops a stream quietly)
        try:
            serve: ServeState = scope["app"].state.aicli
            # Who may come in is decided by the headers alone: a refused request's body is
            # never read (the connection closes after the answer).
            refusal = admit(serve, scope["path"], headers.get("authorization", ""))
            if refusal is not None:
                await _refuse(send_with_id, refusal, close=_has_body(scope, headers))
                return
            body = await self._read_body(scope, receive, headers, started)
            if isinstance(body, ServeError):
                await _refuse(send_with_id, body, close=True)
                return
            # counted until the answer, a stream too, has gone
            limited = 1 if endpoint_of(scope["path"]) in LIMITED else 0
            serve.in_flight += limited
            inner = {**scope, "method": "GET"} if head else scope
            try:
                with log_context(request_id=request_id):  # on every line this request logs
                    try:
                        await self.app(inner, _replay(body, receive, gone), send_with_id)
                    except Exception as exc:  # the one place that catches everything
                        # Here, not in an app-level handler (which Starlette puts outside this
                        # middleware): the id, the JSON shape and the one log line are known.
                        # The type only: an exception's text may quote a prompt.
                        errlog.error(
                            "unexpected error",
                            extra={"event": "serve.error", "error": type(exc).__name__},
                        )
                        if not started_response:
                            await _refuse(send_with_id, _INTERNAL)
                        # else a stream was cut short: uvicorn closes the connection
            finally:
                serve.in_flight -= limited
        finally:
            state["client_disconnected"] = bool(gone) and not completed
            self._done(scope, state, status, time.monotonic() - started)

    async def _read_body(
        self, scope: Scope, receive: Receive, headers: dict[str, str], started: float
    ) -> list[Message] | ServeError:
        """The request's body messages, or the error that ends it: over the size cap (read no
        further), not all there within serve.body_timeout_seconds of the headers (408), not
        UTF-8 or holding a lone surrogate (400)."""
        if scope["method"] in ("GET", "HEAD"):
            return []
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            return self._too_large()
        messages: list[Message] = []
        size = 0
        deadline = started + self.body_timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                return ServeError(
                    408,
                    f"the request body did not arrive within {self.body_timeout:g} s of its"
                    " headers",
                    "invalid_request_error",
                    "request_timeout",
                )
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            size += len(message.get("body", b""))
            if size > self.max_body:
                return self._too_large()
            if not message.get("more_body", False):
                return unicode_problem(messages) or messages

    def _too_large(self) -> ServeError:
        kb = self.max_body // 1024
        return ServeError(
            413,
            f"request body over {kb} KB (serve.max_body_kb)",
            "invalid_request_error",
            "request_too_large",
        )

    def _done(self, scope: Scope, state: dict[str, Any], status: int, seconds: float) -> None:
        endpoint = endpoint_of(scope["path"])
        tier = state.get("tier") or ""
        result = state.get("result")
        answering = state.get("answering")  # who was answering when a stream was cut short
        self.metrics.requests.labels(endpoint, tier, str(status)).inc()
        cached = bool(result is not None and result.cached)
        if endpoint in ("generate", "chat"):
            self.metrics.duration.labels(endpoint, "true" if cached else "false").observe(seconds)
        fields: dict[str, Any] = {
            "event": "request",
            "request_id": state.get("request_id"),
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "tier": result.tier if result is not None else tier,
            "model": result.model_used if result is not None else getattr(answering, "model", ""),
            "cached": cached,
            "fallback_used": bool(result is not None and result.fallback_used),
            "attempts": result.attempts if result is not None else 0,
            "latency_ms": round(seconds * 1000, 1),
            "prompt_tokens": result.usage.prompt_tokens if result is not None else 0,
            "completion_tokens": result.usage.completion_tokens if result is not None else 0,
            "cost_usd": round(result.cost_usd, 8) if result is not None else 0.0,
            "client_disconnected": state.get("client_disconnected", False),
        }
        log.info("request", extra=fields)


def _has_body(scope: Scope, headers: dict[str, str]) -> bool:
    if scope["method"] in ("GET", "HEAD"):
        return False
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


def unicode_problem(messages: list[Message]) -> ServeError | None:
    """400 for a body that is not UTF-8, or whose JSON holds a lone surrogate (which no JSON
    encoder, log line or cache key can take): said here, once, for every endpoint."""
    raw = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _bad_text(f"the request body is not valid UTF-8 (at byte {exc.start})")
    if _SURROGATE_ESCAPE.search(raw) is None:
        return None
    try:
        json.dumps(json.loads(raw), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return _bad_text(
            "the request body holds a lone UTF-16 surrogate (a \\ud800-\\udfff escape"
            " without its pair): not valid Unicode text"
        )
    except ValueError:
        return None  # not JSON at all: the endpoint says so
    return None


def _bad_text(message: str) -> ServeError:
    return ServeError(400, message, "invalid_request_error", "invalid_unicode")


async def _refuse(send: Send, err: ServeError, *, close: bool = False) -> None:
    """An error answered here, before the app: the same JSON as errors.py's handlers."""
    body = json.dumps(error_body(err.message, err.etype, err.code, err.param)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in err.headers.items()),
    ]
    if close:  # the rest of the body was not read: the connection cannot carry another request
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _replay(messages: list[Message], receive: Receive, gone: list[bool]) -> Receive:
    """Hand the app the body already read, then the real channel (for http.disconnect, noted
    in `gone`)."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.append(True)
        return message

    return replayed
