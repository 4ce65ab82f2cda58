"""Which texts of a chat request redaction sees, and refusing a shape it does not know.

Every text a message can carry is found: string content, text content parts, an assistant's
refusal and the arguments of its tool calls (and of a legacy `function_call`), a tool result's
content. A message or part in a shape not listed here could carry text redaction would miss, so
it is refused (UsageError: exit 2, HTTP 400) rather than sent unredacted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn, cast

from aicli.errors import UsageError
from aicli.types import Message

# Message fields that hold no free text, or only text handled below.
_MESSAGE_FIELDS = frozenset(
    {"role", "content", "name", "tool_calls", "tool_call_id", "refusal", "function_call"}
)
_TEXT_PART_FIELDS = frozenset({"type", "text", "cache_control"})
_HINT = (
    "redaction is on for this provider; send text content only, or turn redaction off"
    " (redact.enabled in the config, or `local: true` for a provider on your own machine)"
)


class Slot:
    """One text in a copied message: where it sits, so it can be replaced in place."""

    __slots__ = ("holder", "name")

    def __init__(self, holder: dict[str, Any], name: str) -> None:
        self.holder, self.name = holder, name

    @property
    def text(self) -> str:
        value = self.holder[self.name]
        assert isinstance(value, str)
        return value

    def set(self, text: str) -> None:
        self.holder[self.name] = text


def copy_with_slots(messages: list[Message]) -> tuple[list[Message], list[Slot]]:
    """Copies of the messages (what is sent is never the caller's object) and every text in
    them, in order; UsageError for a shape redaction does not know."""
    copies: list[Message] = []
    slots: list[Slot] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            _refuse(where, "is not an object")
        unknown = sorted(set(message) - _MESSAGE_FIELDS)
        if unknown:
            _refuse(f"{where}.{unknown[0]}", "is a field redaction does not know")
        copy: dict[str, Any] = dict(message)
        _content(copy, where, slots)
        _text_field(copy, "refusal", where, slots)
        if copy.get("function_call") is not None:
            where_call = f"{where}.function_call"
            copy["function_call"] = _function(copy["function_call"], where_call, slots)
        calls = copy.get("tool_calls")
        if calls is not None:
            if not isinstance(calls, list):
                _refuse(f"{where}.tool_calls", "is not a list")
            copy["tool_calls"] = [
                _tool_call(call, f"{where}.tool_calls[{j}]", slots) for j, call in enumerate(calls)
            ]
        copies.append(cast(Message, copy))
    return copies, slots


def _content(copy: dict[str, Any], where: str, slots: list[Slot]) -> None:
    content = copy.get("content")
    if content is None or isinstance(content, str):
        _text_field(copy, "content", where, slots)
        return
    if not isinstance(content, list):
        _refuse(f"{where}.content", "is neither text nor a list of parts")
    parts = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        if not isinstance(part, dict) or part.get("type") != "text":
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            _refuse(at, f"is a part of type {kind!r}, which redaction cannot read")
        if set(part) - _TEXT_PART_FIELDS or not isinstance(part.get("text"), str):
            _refuse(at, "is a text part in a shape redaction does not know")
        part = dict(part)
        slots.append(Slot(part, "text"))
        parts.append(part)
    copy["content"] = parts


def _tool_call(call: Any, where: str, slots: list[Slot]) -> dict[str, Any]:
    if not isinstance(call, dict) or set(call) - {"id", "type", "function"}:
        _refuse(where, "is not a tool call redaction knows ({id, type, function})")
    return {**call, "function": _function(call.get("function"), f"{where}.function", slots)}


def _function(function: Any, where: str, slots: list[Slot]) -> dict[str, Any]:
    if not isinstance(function, dict) or set(function) - {"name", "arguments"}:
        _refuse(where, "is not a function call redaction knows ({name, arguments})")
    copy = dict(function)
    _text_field(copy, "arguments", where, slots)
    return copy


def _text_field(holder: dict[str, Any], name: str, where: str, slots: list[Slot]) -> None:
    value = holder.get(name)
    if value is None:
        return
    if not isinstance(value, str):
        _refuse(f"{where}.{name}", "is not a string")
    slots.append(Slot(holder, name))


def _refuse(where: str, why: str) -> NoReturn:
    raise UsageError(f"{where} {why}: refused rather than sent unredacted", _HINT)


def restore_tool_calls(calls: Any, restore: Callable[[str], str]) -> Any:
    """Tool calls with placeholders in their arguments put back."""
    return [
        {**c, "function": {**c["function"], "arguments": restore(c["function"]["arguments"])}}
        for c in calls
    ]
