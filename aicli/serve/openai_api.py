"""`/v1/chat/completions` (plain and SSE stream) and `/v1/models`: OpenAI's request, response
and error shapes, so any OpenAI SDK can use aicli as its base URL; `model` names a tier."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from aicli.errors import AicliError
from aicli.serve.answering import Answering, answer, answer_headers, cap_max_tokens
from aicli.serve.deps import ServeState, state_of
from aicli.serve.errors import ServeError, error_body, for_aicli_error, response_for
from aicli.types import Message, Result
from aicli.types import Request as AicliRequest

router = APIRouter()


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_call_id, ...: accepted, not used
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="allow")  # top_p, user, ...: accepted, not used
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int | None = Field(None, ge=1, le=1)


def _text(message: ChatMessage) -> str:
    if isinstance(message.content, list):
        parts = [p for p in message.content if p.type != "text"]
        if parts:
            raise _bad("only text content parts are supported", "messages")
        return "".join(p.text or "" for p in message.content)
    return message.content or ""


def _bad(message: str, param: str | None = None) -> ServeError:
    return ServeError(400, message, "invalid_request_error", "invalid_request", param=param)


def _schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    if not response_format or response_format.get("type") in (None, "text"):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise _bad("response_format.json_schema.schema must be an object", "response_format")
        return schema
    raise _bad(f"response_format type {kind!r} is not supported", "response_format")


def _build(state: ServeState, body: ChatBody, request_id: str) -> AicliRequest:
    if body.model not in state.cfg.tiers:
        raise ServeError(
            404,
            f"The model `{body.model}` does not exist: `model` names an aicli tier"
            " (GET /v1/models lists them)",
            "invalid_request_error",
            "model_not_found",
            param="model",
        )
    messages: list[Message] = []
    for m in body.messages:
        role = "system" if m.role == "developer" else m.role
        messages.append({"role": role, "content": _text(m)})
    schema = _schema(body.response_format)
    if schema is not None:
        from aicli.jsontext import check_schema

        problem = check_schema(schema)
        if problem:
            raise _bad(f"response_format: not a valid JSON Schema: {problem}", "response_format")
    asked = body.max_completion_tokens or body.max_tokens
    return AicliRequest(
        messages=messages,
        tier=body.model,
        max_tokens=cap_max_tokens(state, body.model, asked),
        temperature=body.temperature,
        seed=body.seed,
        schema=schema,
        request_id=request_id,
    )


def _usage(result: Result) -> dict[str, int]:
    u = result.usage
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
    }


@router.get("/models")
async def models(http: Request) -> dict[str, Any]:
    state = state_of(http)
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "aicli"}
            for name in sorted(state.cfg.tiers)
        ],
    }


@router.post("/chat/completions", response_model=None)
async def chat_completions(body: ChatBody, http: Request) -> JSONResponse | StreamingResponse:
    state = state_of(http)
    request_id: str = http.state.request_id
    request = _build(state, body, request_id)
    if body.stream:
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        return await _stream(http, state, request, include_usage)
    result = await answer(http, request, endpoint="chat")
    return JSONResponse(
        {
            "id": f"chatcmpl-{request_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": result.model_used,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(result),
            "system_fingerprint": None,
        },
        headers=answer_headers(result),
    )


def _sse(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode() + b"\n\n"


async def _stream(
    http: Request, state: ServeState, request: AicliRequest, include_usage: bool
) -> JSONResponse | StreamingResponse:
    """Start the engine; answer with an error while nothing was streamed (so a failure before
    the first chunk is a plain HTTP error, after fallback), else stream SSE chunks."""
    deltas: asyncio.Queue[str | None] = asyncio.Queue()
    observer = Answering(state)
    task = asyncio.create_task(
        answer(http, request, endpoint="chat", on_delta=deltas.put_nowait, observer=observer)
    )
    task.add_done_callback(lambda _t: deltas.put_nowait(None))
    first = await deltas.get()
    if first is None and task.exception() is not None:
        exc = task.exception()
        if isinstance(exc, AicliError):
            return response_for(for_aicli_error(exc))
        raise exc  # type: ignore[misc]
    headers = {
        "x-aicli-cached": "true" if observer.cached else "false",
        "x-aicli-tier": observer.tier,
        "cache-control": "no-cache",
    }
    if observer.cached:
        headers["x-aicli-cost-usd"] = f"{0:.8f}"
    return StreamingResponse(
        _chunks(request.request_id, observer, first, deltas, task, include_usage),
        media_type="text/event-stream",
        headers=headers,
    )


async def _chunks(
    request_id: str,
    observer: Answering,
    first: str | None,
    deltas: asyncio.Queue[str | None],
    task: asyncio.Task[Result],
    include_usage: bool,
) -> AsyncIterator[bytes]:
    created = int(time.time())

    def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        return _sse(
            {
                "id": f"chatcmpl-{request_id}",
                "object": "chat.completion.chunk",
                "created": created,
                "model": observer.model,
                "choices": choices,
                **extra,
            }
        )

    try:
        yield chunk({"role": "assistant", "content": ""})
        text = first
        while text is not None:
            if text:
                yield chunk({"content": text})
            text = await deltas.get()
        try:
            result = task.result()
        except AicliError as exc:  # the stream broke after the first chunk: no fallback now
            err = for_aicli_error(exc)
            yield _sse(error_body(err.message, err.etype, err.code))
            return
        except Exception:
            yield _sse(error_body("internal error", "server_error", "internal_error"))
            return
        yield chunk({}, "stop")
        if include_usage:
            yield chunk(None, usage=_usage(result))
        yield b"data: [DONE]\n\n"
    finally:
        if not task.done():  # the client went away: stop the call
            task.cancel()
            # Shielded: Starlette cancels this generator again at every await, and a second
            # cancel would cut the call's own clean-up short (settling its budget and quota).
            with contextlib.suppress(BaseException):
                await asyncio.shield(task)
