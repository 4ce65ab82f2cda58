"""`/v1/chat/completions` (plain and SSE stream) and `/v1/models`: OpenAI's request, response
and error shapes, so any OpenAI SDK can use aicli as its base URL; `model` names a tier.

Tool calls come back in OpenAI's shape (`message.tool_calls`, `finish_reason: "tool_calls"`),
streamed as tool-call deltas; the request is read in serve/chat_request.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from aicli import offload
from aicli.errors import AicliError
from aicli.serve.answering import RequestObserver, answer, answer_headers, stream_headers
from aicli.serve.chat_request import ChatBody, build
from aicli.serve.errors import error_body, for_aicli_error, response_for
from aicli.serve.state import ServeState, state_of
from aicli.types import Request as AicliRequest
from aicli.types import Result, StreamEvent, TextDelta, ToolCallDelta

router = APIRouter()


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
    if body.response_format:  # checking a caller's JSON Schema takes as long as it makes it
        request = await offload.run(build, state, body, request_id)
    else:
        request = build(state, body, request_id)
    if body.stream:
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        return await _stream(http, state, request, include_usage)
    result = await answer(http, request, endpoint="chat")
    message: dict[str, Any] = {"role": "assistant", "content": result.content, "refusal": None}
    if result.tool_calls:
        message["content"] = result.content or None
        message["tool_calls"] = result.tool_calls
    return JSONResponse(
        {
            "id": f"chatcmpl-{request_id}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": result.model_used,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": result.logprobs,
                    "finish_reason": result.finish_reason or "stop",
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
    events: asyncio.Queue[StreamEvent | None] = asyncio.Queue()
    observer = RequestObserver(state)
    task = asyncio.create_task(
        answer(http, request, endpoint="chat", on_delta=events.put_nowait, observer=observer)
    )
    task.add_done_callback(lambda _t: events.put_nowait(None))
    first = await events.get()
    if first is None and task.exception() is not None:
        exc = task.exception()
        if isinstance(exc, AicliError):
            return response_for(for_aicli_error(exc))
        raise exc  # type: ignore[misc]
    return StreamingResponse(
        _chunks(request.request_id, observer, first, events, task, include_usage),
        media_type="text/event-stream",
        headers=stream_headers(observer),
    )


def _delta(event: TextDelta | ToolCallDelta) -> dict[str, Any]:
    """An event as OpenAI's chunk delta: text, or one tool call's piece (its first piece with
    id, type and name; the next ones with more arguments)."""
    if isinstance(event, TextDelta):
        return {"content": event.text}
    call: dict[str, Any] = {"index": event.index}
    if event.id is not None:
        call["id"], call["type"] = event.id, "function"
    function: dict[str, Any] = {"arguments": event.arguments}
    if event.name is not None:
        function["name"] = event.name
    call["function"] = function
    return {"tool_calls": [call]}


async def _chunks(
    request_id: str,
    observer: RequestObserver,
    first: StreamEvent | None,
    events: asyncio.Queue[StreamEvent | None],
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
        event = first
        while event is not None:
            if isinstance(event, (TextDelta, ToolCallDelta)) and (
                not isinstance(event, TextDelta) or event.text
            ):
                yield chunk(_delta(event))
            # a FinishEvent ends nothing here: the result below says how the answer ended
            event = await events.get()
        try:
            result = task.result()
        except AicliError as exc:  # the stream broke after the first chunk: no fallback now
            err = for_aicli_error(exc)
            yield _sse(error_body(err.message, err.etype, err.code))
            return
        except Exception:
            yield _sse(error_body("internal error", "server_error", "internal_error"))
            return
        yield chunk({}, result.finish_reason or "stop")
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
