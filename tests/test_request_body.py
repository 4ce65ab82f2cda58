"""The one request body: what chat_body builds, what the cache key (v2) hashes of it, which
texts of it redaction walks (and which shapes it refuses), and restore in streamed tool calls."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aicli.cache.entries import KEY_VERSION, NOT_IN_KEY, cache_key
from aicli.errors import UsageError
from aicli.providers.body import chat_body
from aicli.providers.tool_calls import StreamedToolCalls, finish_reason, parse_tool_calls
from aicli.redact import Redactor
from aicli.types import FinishEvent, StreamEvent, TextDelta, ToolCallDelta, answer_events

EMAIL = "ada@example.com"
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def body(**extra: Any) -> dict[str, Any]:
    return chat_body(
        model="m", messages=MESSAGES, max_tokens=100, temperature=0.5, seed=None, schema=None,
        extra=extra,
    )  # fmt: skip


def key(b: dict[str, Any]) -> str:
    return cache_key(base_url="http://x/v1", body=b, template_checksum=None)


def test_the_body_is_the_callers_fields_with_aicli_settings_last() -> None:
    b = chat_body(
        model="tier-model",
        messages=MESSAGES,
        max_tokens=50,
        max_tokens_field="max_completion_tokens",
        temperature=1,
        seed=3,
        schema={"type": "object"},
        extra={
            "model": "sneaky",
            "stream": True,
            "stop": ["x"],
            "response_format": {"type": "text"},
        },
    )
    assert b == {
        "model": "tier-model",
        "messages": MESSAGES,
        "stop": ["x"],
        "response_format": {"type": "text"},  # the caller's own wins over the schema's
        "max_completion_tokens": 50,
        "temperature": 1.0,
        "seed": 3,
    }
    with_schema = chat_body(
        model="m", messages=MESSAGES, max_tokens=1, temperature=None, seed=None,
        schema={"type": "object"},
    )  # fmt: skip
    assert with_schema["response_format"]["json_schema"]["schema"] == {"type": "object"}


def test_key_is_version_2_of_exactly_the_body() -> None:
    assert KEY_VERSION == 2  # v1 keys (a hand-picked field list) are misses now
    base = key(body())
    for name, value in [("stop", "x"), ("tools", []), ("top_p", 0.5), ("x_unknown", 1)]:
        assert key(body(**{name: value})) != base, name
    for name in sorted(NOT_IN_KEY):
        assert key(body(**{name: {"include_usage": True}})) == base, name
    assert key(body(top_p=1)) == key(body(top_p=1.0))


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    )
)
def test_any_json_field_can_be_keyed(value: Any) -> None:
    assert len(key(body(x_field=value))) == 64


def test_a_body_too_deep_to_key_is_a_usage_error() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(UsageError):
        key(body(x_field=deep))


# ---- redaction walks every text -------------------------------------------------------------


def test_every_text_is_redacted_and_the_originals_untouched() -> None:
    messages: list[Any] = [
        {"role": "system", "content": f"Admin is {EMAIL}"},
        {"role": "user", "content": [{"type": "text", "text": f"mail {EMAIL}"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "send", "arguments": json.dumps({"to": EMAIL})},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": f"sent to {EMAIL}"},
        {"role": "assistant", "refusal": f"no mail to {EMAIL}", "name": "bot"},
    ]
    before = json.dumps(messages)
    redactor = Redactor()
    out = redactor.redact_messages(messages)
    assert json.dumps(messages) == before  # copies were redacted, not the caller's
    text = json.dumps(out)
    assert EMAIL not in text and text.count("[EMAIL_1]") == 5
    assert json.loads(out[2]["tool_calls"][0]["function"]["arguments"]) == {"to": "[EMAIL_1]"}
    assert redactor.restore(text) == before


@pytest.mark.parametrize(
    "message",
    [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
        {"role": "user", "content": [{"type": "text", "text": "a", "extra": "b"}]},
        {"role": "user", "content": {"text": "a"}},
        {"role": "user", "content": "a", "audio": {"data": "..."}},
        {
            "role": "assistant",
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": 1}}],
        },
        {"role": "assistant", "tool_calls": "nope"},
    ],
)
def test_a_shape_redaction_does_not_know_is_refused(message: Any) -> None:
    with pytest.raises(UsageError, match="refused rather than sent unredacted"):
        Redactor().redact_messages([message])


def test_streamed_tool_call_arguments_are_restored_across_pieces() -> None:
    redactor = Redactor()
    redactor.redact_messages([{"role": "user", "content": f"to {EMAIL}"}])
    restorer = redactor.event_restorer()
    args = json.dumps({"to": "[EMAIL_1]", "cc": "[EMAIL_1]"})
    events: list[StreamEvent] = [TextDelta("ok [EMA"), TextDelta("IL_1]")]
    events += [ToolCallDelta(0, "c1", "send", "")]
    events += [ToolCallDelta(0, arguments=args[i : i + 3]) for i in range(0, len(args), 3)]
    events += [FinishEvent("tool_calls")]
    out = [e for event in events for e in restorer.feed(event)] + restorer.flush()
    assert "".join(e.text for e in out if isinstance(e, TextDelta)) == f"ok {EMAIL}"
    pieces = "".join(e.arguments for e in out if isinstance(e, ToolCallDelta))
    assert json.loads(pieces) == {"to": EMAIL, "cc": EMAIL}
    assert out[-1] == FinishEvent("tool_calls")  # held back until the rest was out


# ---- tool calls read from a provider ------------------------------------------------------


def test_tool_calls_from_answers_and_streams() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    assert parse_tool_calls([call]) == [call]
    assert parse_tool_calls(None) is None and parse_tool_calls([]) is None
    for broken in ["x", [{"id": 1, "function": {"name": "f", "arguments": "{}"}}], [{"id": "c"}]]:
        with pytest.raises(ValueError):
            parse_tool_calls(broken)
    assert finish_reason("stop", [call]) == "tool_calls"  # some servers say stop
    assert finish_reason("\x1b[31mweird", None) == "stop"
    streamed = StreamedToolCalls()
    first = streamed.feed({"index": 0, "id": "c", "function": {"name": "f", "arguments": ""}})
    again = streamed.feed({"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}})
    assert (first.id, again.id, again.arguments) == ("c", None, "{}")  # the id passes once
    assert streamed.result() == [call]
    events = answer_events("", [call], "tool_calls")
    assert events == [ToolCallDelta(0, "c", "f", "{}"), FinishEvent("tool_calls")]
    with pytest.raises(ValueError):
        StreamedToolCalls().feed({"index": -1})
