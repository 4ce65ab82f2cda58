"""The ASGI layer around every request: its id, the body-size cap, who gets in and how many at
once (deps.admit), the request's one log line and its request metrics. Pure ASGI, so a stream is
logged (and leaves the in-flight count) when its last byte has gone, and a refused request costs
no routing."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aicli.logs import log_context
from aicli.serve.deps import LIMITED, ServeState, admit, endpoint_of
from aicli.serve.errors import ServeError, error_body
from aicli.serve.metrics import Metrics

log = logging.getLogger("aicli.serve.access")

_ID_RE = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class RequestMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, metrics: Metrics) -> None:
        self.app = app
        self.max_body = max_body_bytes
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
        completed = False  # the last byte of the body went out

        async def send_with_id(message: Message) -> None:
            nonlocal status, completed
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-request-id", request_id.encode()),
                ]
            elif not message.get("more_body", False):
                completed = True
            await send(message)

        gone: list[bool] = []  # the client hung up (Starlette then stops a stream quietly)
        try:
            body = await self._read_body(scope, receive, headers)
            if body is None:
                await _refuse(send_with_id, self._too_large(), close=True)
                return
            serve: ServeState = scope["app"].state.aicli
            refusal = admit(serve, scope["path"], headers.get("authorization", ""))
            if refusal is not None:
                await _refuse(send_with_id, refusal)
                return
            # counted until the answer, a stream too, has gone
            limited = 1 if endpoint_of(scope["path"]) in LIMITED else 0
            serve.in_flight += limited
            try:
                with log_context(request_id=request_id):  # on every line this request logs
                    await self.app(scope, _replay(body, receive, gone), send_with_id)
            finally:
                serve.in_flight -= limited
        finally:
            state["client_disconnected"] = bool(gone) and not completed
            self._done(scope, state, status, time.monotonic() - started)

    async def _read_body(
        self, scope: Scope, receive: Receive, headers: dict[str, str]
    ) -> list[Message] | None:
        """The request's body messages, or None when it is over the cap (read no further)."""
        if scope["method"] in ("GET", "HEAD"):
            return []
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            return None
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            size += len(message.get("body", b""))
            if size > self.max_body:
                return None
            if not message.get("more_body", False):
                return messages

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
