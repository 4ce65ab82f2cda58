"""A provider's tool calls and finish reason, read from its answer or stream into OpenAI's shape.

What a server sends is untrusted: a tool call whose parts have the wrong types is a malformed
answer (ValueError, which the provider turns into a failure the next tier answers), never a
crash later.
"""

from __future__ import annotations

from typing import Any

from aicli.safetext import answer_field, answer_text, valid_text
from aicli.types import ToolCall, ToolCallDelta

# finish_reason values OpenAI documents; anything else a server invents is reported as "stop".
FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})
MAX_TOOL_CALLS = 128  # more from one answer is a broken server, not an agent


def dumped(obj: Any) -> Any:
    """An SDK object (or whatever the server sent instead) as plain JSON data."""
    dump = getattr(obj, "model_dump", None)
    return dump(mode="json", exclude_unset=True) if callable(dump) else obj


def parse_tool_calls(raw: Any) -> list[ToolCall] | None:
    """`message.tool_calls` as a list of OpenAI tool calls, or None when there are none."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise ValueError("message.tool_calls is not a list")
    if len(raw) > MAX_TOOL_CALLS:
        raise ValueError(f"more than {MAX_TOOL_CALLS} tool calls in one answer")
    calls: list[ToolCall] = []
    for item in raw:
        data = dumped(item)
        function = data.get("function") if isinstance(data, dict) else None
        if not isinstance(function, dict):
            raise ValueError("a tool call has no function")
        ident, name, args = data.get("id"), function.get("name"), function.get("arguments")
        if not (isinstance(ident, str) and isinstance(name, str) and isinstance(args, str)):
            raise ValueError("a tool call's id, function.name or function.arguments is not text")
        # cleaned where parsed, as the answer's text is: ids and names one printable line
        # without a key, arguments without a key or lone surrogate
        ident, name, args = answer_field(ident), answer_field(name), answer_text(args)
        calls.append(
            {"id": ident, "type": "function", "function": {"name": name, "arguments": args}}
        )
    return calls or None


def finish_reason(reported: Any, tool_calls: list[ToolCall] | None) -> str:
    """An answer with tool calls ends with "tool_calls" (some servers say "stop"), else the
    server's reason when OpenAI knows it."""
    if tool_calls:
        return "tool_calls"
    return reported if isinstance(reported, str) and reported in FINISH_REASONS else "stop"


class StreamedToolCalls:
    """Tool calls assembled from a stream's deltas (index, then id and name, then argument
    pieces), each piece passed on as a ToolCallDelta."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def feed(self, piece: Any) -> ToolCallDelta:
        data = dumped(piece)
        index = data.get("index") if isinstance(data, dict) else None
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < MAX_TOOL_CALLS:
            raise ValueError("a streamed tool call has no valid index")
        function = data.get("function") or {}
        if not isinstance(function, dict):
            raise ValueError("a streamed tool call's function is not an object")
        ident, name, args = data.get("id"), function.get("name"), function.get("arguments") or ""
        if not (
            isinstance(ident, (str, type(None)))
            and isinstance(name, (str, type(None)))
            and isinstance(args, str)
        ):
            raise ValueError("a streamed tool call's id, name or arguments is not text")
        ident = answer_field(ident) if ident is not None else None
        name = answer_field(name) if name is not None else None
        args = valid_text(args)
        call = self._calls.setdefault(index, {"id": None, "name": None, "arguments": []})
        # Some servers repeat the id and name in every piece: they are passed on once.
        ident = None if call["id"] else ident
        name = None if call["name"] else name
        call["id"] = call["id"] or ident
        call["name"] = call["name"] or name
        call["arguments"].append(args)
        return ToolCallDelta(index, ident, name, args)

    def result(self) -> list[ToolCall] | None:
        calls: list[ToolCall] = []
        for index in sorted(self._calls):
            call = self._calls[index]
            if not call["id"] or not call["name"]:
                raise ValueError(f"streamed tool call {index} never got its id or name")
            calls.append(
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": "".join(call["arguments"])},
                }
            )
        return calls or None
