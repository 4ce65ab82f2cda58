"""An OpenAI chat-completions request body -> the engine's Request, every field passed through.

The body is checked where OpenAI would refuse it (400 `invalid_request_error` naming the field),
then handed on as sent: messages of every role with their tool calls, tool results and content
parts; `tools`, `stop`, `top_p`, `response_format` and any field aicli does not know go to the
provider unchanged (Request.extra), so they are in the cache key. aicli itself reads only
`model` (a tier), the token limits (capped at the tier's `max_tokens`), `temperature`, `seed`,
`stream`, `n` and `response_format` (whose JSON or JSON Schema it checks the answer against).
"""

from __future__ import annotations

from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field

from aicli.serve.errors import ServeError
from aicli.serve.state import ServeState
from aicli.types import Message
from aicli.types import Request as AicliRequest

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
# Read by aicli itself; everything else in the body goes to the provider as sent.
_OWN = frozenset({"model", "messages", "max_tokens", "temperature", "seed", "stream", "n"})


class ChatBody(BaseModel):
    """The fields aicli reads; the others (model_extra) are passed through unchanged."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1)
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int | None = Field(None, ge=1, le=1)


def bad(message: str, param: str | None = None) -> ServeError:
    return ServeError(400, message, "invalid_request_error", "invalid_request", param=param)


def build(state: ServeState, body: ChatBody, request_id: str) -> AicliRequest:
    """The engine's Request for this body (ServeError 400/404 for what OpenAI would refuse)."""
    if body.model not in state.cfg.tiers:
        raise ServeError(
            404,
            f"The model `{body.model}` does not exist: `model` names a tier of this service"
            " (GET /v1/models lists them)",
            "invalid_request_error",
            "model_not_found",
            param="model",
        )
    messages = [_message(m, f"messages[{i}]") for i, m in enumerate(body.messages)]
    extra = {
        name: value
        for name, value in body.model_dump(exclude_unset=True).items()
        if name not in _OWN
    }
    schema = _schema(body.response_format)
    if schema is not None:
        from aicli.jsontext import check_schema

        problem = check_schema(schema)
        if problem:
            raise bad(f"response_format: not a valid JSON Schema: {problem}", "response_format")
    request = AicliRequest(
        messages=messages,
        tier=body.model,
        max_tokens=state.cfg.tier(body.model).capped(body.max_tokens),
        temperature=body.temperature,
        seed=body.seed,
        schema=schema,
        extra=extra,
        request_id=request_id,
        front="http",
    )
    if body.max_completion_tokens is not None:
        capped = state.cfg.tier(body.model).capped(body.max_completion_tokens)
        extra["max_completion_tokens"] = capped
        if body.max_tokens is None:  # newer models take only this one: aicli adds no other
            extra.pop("max_completion_tokens")
            request.max_tokens, request.max_tokens_field = capped, "max_completion_tokens"
    return request


def _message(raw: dict[str, Any], where: str) -> Message:
    """One message as sent, after the checks OpenAI makes on its shape."""
    role = raw.get("role")
    if role not in ROLES:
        raise bad(f"{where}.role: {role!r} is not one of {', '.join(ROLES)}", f"{where}.role")
    content = raw.get("content")
    if content is not None and not isinstance(content, (str, list)):
        raise bad(f"{where}.content: must be a string or a list of parts", f"{where}.content")
    for j, part in enumerate(content if isinstance(content, list) else []):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise bad(f"{where}.content[{j}]: a part needs a `type`", f"{where}.content")
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise bad(f"{where}.content[{j}].text: must be a string", f"{where}.content")
    calls = raw.get("tool_calls")
    if calls is not None:
        if role != "assistant" or not isinstance(calls, list):
            raise bad(f"{where}.tool_calls: only an assistant message has a list of them")
        for j, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            if not (
                isinstance(function, dict)
                and isinstance(call.get("id"), str)
                and isinstance(function.get("name"), str)
                and isinstance(function.get("arguments"), str)
            ):
                raise bad(
                    f"{where}.tool_calls[{j}]: needs `id` and `function` with `name` and"
                    " `arguments` (text)",
                    f"{where}.tool_calls",
                )
    elif content is None and role not in ("assistant", "function"):
        raise bad(f"{where}.content: a {role} message needs content", f"{where}.content")
    if role == "tool" and not isinstance(raw.get("tool_call_id"), str):
        raise bad(f"{where}.tool_call_id: a tool message answers a tool call by its id")
    return cast(Message, raw)


def _schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """The JSON Schema the answer is checked against for this response_format (None: none);
    a type aicli does not know is passed on unchecked."""
    kind = (response_format or {}).get("type")
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        assert response_format is not None
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise bad("response_format.json_schema.schema must be an object", "response_format")
        return schema
    return None
