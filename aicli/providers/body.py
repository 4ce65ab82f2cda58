"""The chat-completions body a provider is sent, built by one function: the cache key hashes it.

No SDK import here: the engine builds the body (and its key) before it knows whether the answer
is a cache hit, and a hit must not pay for the openai import.
"""

from __future__ import annotations

from typing import Any

from aicli.types import Message

# Fields the body builder owns; a caller's `extra` never overrides them.
OWN_FIELDS = frozenset({"model", "messages", "stream"})


def chat_body(
    *,
    model: str,
    messages: list[Message],
    max_tokens: int | None,
    max_tokens_field: str = "max_tokens",
    temperature: float | None,
    seed: int | None,
    schema: dict[str, Any] | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The body of one chat-completions call, exactly as sent (before `stream` is added).

    `extra` holds the rest of an OpenAI client's request (tools, stop, top_p, response_format,
    unknown fields), passed through unchanged. aicli's own settings come last: the tier's
    model, the (redacted) messages, the token limit (always set: the cost must be bounded),
    temperature and seed. A `schema` (generate --schema, /generate's `schema`) is asked for as
    response_format json_schema unless the caller gave its own response_format."""
    body: dict[str, Any] = {"model": model, "messages": messages}
    for name, value in (extra or {}).items():
        if name not in OWN_FIELDS:
            body[name] = value
    if max_tokens is not None:
        body[max_tokens_field] = int(max_tokens)
    if temperature is not None:
        body["temperature"] = float(temperature)
    if seed is not None:
        body["seed"] = int(seed)
    if schema is not None and "response_format" not in body:
        body["response_format"] = schema_format(schema)
    return body


def schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    """The response_format that asks a provider for JSON matching `schema` (not strict: many
    servers reject a schema that strict mode does not allow; aicli checks the answer anyway)."""
    return {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema, "strict": False},
    }
