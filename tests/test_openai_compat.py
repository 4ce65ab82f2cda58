"""`/v1/chat/completions` as a full OpenAI-compatible gateway: the official openai SDK against a
real `aicli serve`, the fake OpenAI server as its provider. Tools both ways (plain, streamed,
cached), every request field passed through and keyed, provider 4xx errors, stale answers,
redaction inside tool calls, and a property test: the provider receives exactly what was sent.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fake_openai import FakeOpenAI, tool_calls_for
from tests.helpers import TEST_KEY, TEST_KEY_ENV
from tests.serve_process import ServeProcess, base_env
from tests.test_serve import write_config

TOKEN = "compat-token-0123456789abcdef"
PLAIN_MAX_TOKENS, PLAIN_TEMPERATURE = 5000, 0.7  # the tier's: used when a request sets none
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"input": {"type": "string"}},
            "required": ["input"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture(scope="module")
def svc(
    fake_server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    root = tmp_path_factory.mktemp("compat")
    config = write_config(
        root / "cfg",
        fake_server.base_url,
        # `plain` is on this machine as far as aicli knows (local: no redaction), so what a
        # client sends must reach it byte for byte.
        providers={
            "plain": {"base_url": fake_server.base_url, "api_key_env": TEST_KEY_ENV, "local": True}
        },
        tiers={
            "plain": {
                "model": "plain-model",
                "provider": "plain",
                "max_tokens": PLAIN_MAX_TOKENS,
                "temperature": PLAIN_TEMPERATURE,
            },
            "capped": {"model": "capped-model", "provider": "plain", "max_tokens": 50},
            "short": {"model": "short-model", "provider": "plain", "cache_ttl": 1},
        },
    )
    env = base_env(root / "home")
    env[TEST_KEY_ENV] = TEST_KEY
    env["AICLI_SERVE_TOKENS"] = TOKEN
    proc = ServeProcess(config, env, token=TOKEN, log_path=root / "serve.log").start()
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture
def sdk(svc: ServeProcess, server: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{svc.url}/v1", api_key=TOKEN, max_retries=0)


@pytest.fixture
def http(svc: ServeProcess, server: FakeOpenAI) -> Iterator[httpx.Client]:
    with svc.client() as client:
        yield client


def unique(text: str = "prompt") -> str:
    return f"{text} {uuid.uuid4().hex[:10]}"


def chat_bodies(server: FakeOpenAI, model: str | None = None) -> list[dict[str, Any]]:
    return [r["body"] for r in server.requests if model is None or r["model"] == model]


def reassembled(chunks: list[Any]) -> tuple[str, list[dict[str, Any]], str | None]:
    """Text, tool calls and finish reason from streamed chunks, as an SDK user rebuilds them."""
    text, calls, finish = "", {}, None
    for chunk in chunks:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for piece in choice.delta.tool_calls or []:
                call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += piece.id or ""
                if piece.function is not None:
                    call["name"] += piece.function.name or ""
                    call["arguments"] += piece.function.arguments or ""
            finish = choice.finish_reason or finish
    tool_calls = [
        {
            "id": c["id"],
            "type": "function",
            "function": {"name": c["name"], "arguments": c["arguments"]},
        }
        for _, c in sorted(calls.items())
    ]
    return text, tool_calls, finish


# ---- tools both ways -----------------------------------------------------------------------


def test_tool_call_round_trip(sdk: openai.OpenAI, server: FakeOpenAI) -> None:
    question = unique("Weather in Paris?")
    messages: list[Any] = [{"role": "user", "content": question}]
    first = sdk.chat.completions.create(model="plain", messages=messages, tools=[WEATHER])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"input": question}

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ]
    final = sdk.chat.completions.create(model="plain", messages=messages, tools=[WEATHER])
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content == "tools said: sunny, 21 C"
    assert final.choices[0].message.tool_calls is None
    # the assistant's tool call and the tool's result reached the provider as sent
    sent = chat_bodies(server)[-1]["messages"]
    assert sent[1] == {
        "role": "assistant",
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": "get_weather", "arguments": call.function.arguments},
            }
        ],
        **({"content": sent[1]["content"]} if "content" in sent[1] else {}),
    }
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"}


def test_streamed_tool_call_deltas_and_cached_replays(
    sdk: openai.OpenAI, server: FakeOpenAI
) -> None:
    messages: Any = [{"role": "user", "content": unique("Weather and time?")}]
    tools: Any = [WEATHER, TIME]
    expected = tool_calls_for({"messages": messages, "tools": tools})
    assert expected is not None and len(expected) == 2

    raw = sdk.chat.completions.with_raw_response.create(
        model="plain", messages=messages, tools=tools, stream=True
    )
    assert raw.headers["x-aicli-cached"] == "false"
    chunks = list(raw.parse())
    text, calls, finish = reassembled(chunks)
    assert (text, calls, finish) == ("", expected, "tool_calls")
    # OpenAI's delta shape: the first piece of a call has index, id, type and name
    firsts = [
        c.choices[0].delta.tool_calls[0]
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    ]
    assert (
        firsts[0].index == 0 and firsts[0].id == expected[0]["id"] and firsts[0].type == "function"
    )
    assert len(chat_bodies(server)) == 1

    # the same request again: a cache hit, replayed identically, streamed and not
    again = sdk.chat.completions.with_raw_response.create(
        model="plain", messages=messages, tools=tools, stream=True
    )
    assert again.headers["x-aicli-cached"] == "true"
    assert reassembled(list(again.parse())) == ("", expected, "tool_calls")
    plain = sdk.chat.completions.create(model="plain", messages=messages, tools=tools)
    assert plain.choices[0].finish_reason == "tool_calls"
    assert [c.model_dump() for c in plain.choices[0].message.tool_calls or []] == expected
    # the SDK's own stream helper puts the deltas back together into the same tool calls
    with sdk.chat.completions.stream(model="plain", messages=messages, tools=tools) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == "tool_calls"
    rebuilt = [
        {
            "id": c.id,
            "type": c.type,
            "function": {"name": c.function.name, "arguments": c.function.arguments},
        }
        for c in final.choices[0].message.tool_calls or []
    ]
    assert rebuilt == expected
    assert len(chat_bodies(server)) == 1
    # and from a fresh (uncached) stream, whose arguments arrive in pieces of 4 characters
    fresh: Any = [{"role": "user", "content": unique("fresh weather")}]
    with sdk.chat.completions.stream(model="plain", messages=fresh, tools=tools) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [
        (c["id"], c["function"]["name"], c["function"]["arguments"])
        for c in tool_calls_for({"messages": fresh, "tools": tools}) or []
    ]
    assert len(chat_bodies(server)) == 2


# ---- every field reaches the provider, and the key -----------------------------------------

FIELDS: dict[str, Any] = {
    "tools": [WEATHER],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": False,
    "stop": ["\n\n", "END"],
    "top_p": 0.9,
    "presence_penalty": 0.5,
    "frequency_penalty": -0.25,
    "logit_bias": {"50256": -100},
    "logprobs": True,
    "top_logprobs": 2,
    "user": "user-1234",
    "seed": 42,
    "response_format": {"type": "text"},
    "temperature": 0.2,
}


def test_every_field_reaches_the_provider(sdk: openai.OpenAI, server: FakeOpenAI) -> None:
    messages: Any = [{"role": "user", "content": unique("all fields")}]
    sdk.chat.completions.create(
        model="capped",
        messages=messages,
        max_completion_tokens=10_000,
        extra_body={"x_future_option": {"depth": [1, 2]}},
        **FIELDS,
    )
    (sent,) = chat_bodies(server)
    for name, value in FIELDS.items():
        assert sent[name] == value, name
    assert sent["x_future_option"] == {"depth": [1, 2]}  # unknown: passed through unchanged
    # capped at the tier's max_tokens (50), under the name the client used, and no other
    assert sent["max_completion_tokens"] == 50 and "max_tokens" not in sent
    assert sent["messages"] == messages and sent["model"] == "capped-model"

    # streamed: the client's stream_options go on, with the usage aicli needs for the cost
    chunks = list(
        sdk.chat.completions.create(
            model="plain",
            messages=messages,
            stream=True,
            stream_options={"include_usage": False, "x_option": 1},
        )
    )
    assert all(c.usage is None for c in chunks)  # the client asked for no usage chunk
    sent = chat_bodies(server)[-1]
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True, "x_option": 1}


def test_what_changes_the_answer_is_in_the_key(sdk: openai.OpenAI, server: FakeOpenAI) -> None:
    messages: Any = [{"role": "user", "content": unique("keyed")}]

    def ask(**fields: Any) -> None:
        sdk.chat.completions.create(model="plain", messages=messages, **fields)

    ask(stop=["END"])
    ask(stop=["END"])  # the same request twice: one provider call
    assert len(chat_bodies(server)) == 1
    ask(stop=["STOP"])
    assert len(chat_bodies(server)) == 2
    ask(stop=["END"], tools=[WEATHER])
    ask(stop=["END"], tools=[TIME])
    assert len(chat_bodies(server)) == 4
    ask(stop=["END"], extra_body={"x_new": 1})  # an unknown field may change the answer
    assert len(chat_bodies(server)) == 5
    ask(stop=["END"], user="someone-else")  # who asks does not change the answer
    assert len(chat_bodies(server)) == 5


# ---- errors a client can act on ------------------------------------------------------------


def test_provider_400_is_the_clients_bad_request_never_retried(
    svc: ServeProcess, server: FakeOpenAI
) -> None:
    server.script("plain-model", ["400"])
    retrying = openai.OpenAI(base_url=f"{svc.url}/v1", api_key=TOKEN, max_retries=3)
    with pytest.raises(openai.BadRequestError) as caught:
        retrying.chat.completions.create(
            model="plain", messages=[{"role": "user", "content": unique("bad")}]
        )
    err = caught.value
    assert err.status_code == 400
    assert err.response.headers["x-should-retry"] == "false"
    body: Any = err.body
    assert body["type"] == "invalid_request_error"
    assert "told to reject this" in body["message"]
    assert server.base_url not in body["message"]  # the provider's URL stays inside
    assert len(chat_bodies(server)) == 1  # neither aicli nor the SDK sent it again


def test_errors_speak_http_and_say_whether_to_retry(http: httpx.Client, server: FakeOpenAI) -> None:
    server.set_answer("*", "not json at all")
    resp = http.post(
        "/v1/chat/completions",
        json={
            "model": "plain",
            "messages": [{"role": "user", "content": unique("json please")}],
            "response_format": {"type": "json_object"},
        },
    )
    assert resp.status_code == 503, resp.text
    message = resp.json()["error"]["message"]
    assert "`response_format`" in message
    assert "--" not in message and "-t " not in message
    assert "x-should-retry" not in resp.headers  # another attempt may well succeed

    resp = http.post("/v1/chat/completions", json={"model": "plain", "messages": [{"role": "x"}]})
    assert resp.status_code == 400 and resp.headers["x-should-retry"] == "false"
    resp = http.post(
        "/v1/chat/completions",
        json={"model": "nope", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert resp.status_code == 404 and resp.headers["x-should-retry"] == "false"


def test_response_format_is_checked_with_fallback_and_returned_as_written(
    sdk: openai.OpenAI, server: FakeOpenAI
) -> None:
    written = '{ "name" :  "Ada" }\n'
    server.set_answer("standard-model", "Sure! Here is the JSON you wanted.")
    server.set_answer("economy-model", written)
    fmt: Any = {
        "type": "json_schema",
        "json_schema": {
            "name": "person",
            "schema": {"type": "object", "required": ["name"]},
            "strict": True,
        },
    }
    raw = sdk.chat.completions.with_raw_response.create(
        model="standard",
        messages=[{"role": "user", "content": unique("who?")}],
        response_format=fmt,
    )
    assert raw.headers["x-aicli-tier"] == "economy"  # the broken answer was a failed attempt
    assert raw.parse().choices[0].message.content == written  # as the model wrote it
    assert [b["response_format"] for b in chat_bodies(server)] == [fmt, fmt]


# ---- stale answers are marked --------------------------------------------------------------


def test_a_stale_chat_answer_is_marked(sdk: openai.OpenAI, server: FakeOpenAI) -> None:
    messages: Any = [{"role": "user", "content": unique("stale")}]
    fresh = sdk.chat.completions.with_raw_response.create(model="short", messages=messages)
    assert fresh.headers["x-aicli-stale"] == "false"
    time.sleep(1.1)  # the tier caches for 1 s
    server.script("short-model", ["500", "500"])
    stale = sdk.chat.completions.with_raw_response.create(model="short", messages=messages)
    assert stale.headers["x-aicli-stale"] == "true"
    assert stale.parse().choices[0].message.content == messages[0]["content"]
    streamed = sdk.chat.completions.with_raw_response.create(
        model="short", messages=messages, stream=True
    )
    assert streamed.headers["x-aicli-stale"] == "true"
    assert "".join(c.choices[0].delta.content or "" for c in streamed.parse() if c.choices)


# ---- redaction inside tool calls -----------------------------------------------------------


def test_redaction_restored_inside_tool_call_arguments(
    sdk: openai.OpenAI, server: FakeOpenAI
) -> None:
    email = f"ada.{uuid.uuid4().hex[:6]}@example.com"
    messages: Any = [{"role": "user", "content": f"Mail {email} the forecast"}]
    done = sdk.chat.completions.create(model="economy", messages=messages, tools=[WEATHER])
    (call,) = done.choices[0].message.tool_calls or []
    assert json.loads(call.function.arguments) == {"input": f"Mail {email} the forecast"}
    sent = json.dumps(chat_bodies(server)[-1])
    assert email not in sent and "[EMAIL_1]" in sent

    chunks = list(
        sdk.chat.completions.create(
            model="economy",
            messages=[{"role": "user", "content": f"Again for {email}"}],
            tools=[WEATHER],
            stream=True,
        )
    )
    _, calls, _ = reassembled(chunks)
    assert json.loads(calls[0]["function"]["arguments"]) == {"input": f"Again for {email}"}

    # the whole conversation going back: the tool call's arguments and the tool's result are
    # redacted too, and the answer restored
    messages += [
        done.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": f"sent to {email}"},
    ]
    final = sdk.chat.completions.create(model="economy", messages=messages, tools=[WEATHER])
    assert final.choices[0].message.content == f"tools said: sent to {email}"
    assert email not in json.dumps(chat_bodies(server)[-1])


def test_redaction_refuses_what_it_cannot_read(http: httpx.Client, server: FakeOpenAI) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": unique("what is it?")}, image]}
    ]
    resp = http.post("/v1/chat/completions", json={"model": "economy", "messages": messages})
    assert resp.status_code == 400, resp.text
    assert "image_url" in resp.json()["error"]["message"]
    assert resp.headers["x-should-retry"] == "false"
    assert chat_bodies(server) == []  # refused, never sent unredacted
    # a provider without redaction gets the parts as sent
    resp = http.post("/v1/chat/completions", json={"model": "plain", "messages": messages})
    assert resp.status_code == 200, resp.text
    assert chat_bodies(server)[-1]["messages"] == messages


# ---- the provider receives exactly what was sent -------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_parts = st.lists(
    st.fixed_dictionaries({"type": st.just("text"), "text": _text}), min_size=1, max_size=3
)
_content = st.one_of(_text, _parts)
_call = st.fixed_dictionaries(
    {
        "id": st.text("abcdef0123456789", min_size=1, max_size=12).map(lambda s: "call_" + s),
        "type": st.just("function"),
        "function": st.fixed_dictionaries(
            {"name": st.sampled_from(["get_weather", "get_time"]), "arguments": _text}
        ),
    }
)


def _with_name(message: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    names = st.one_of(st.none(), st.text("abcxyz_", min_size=1, max_size=8))
    return st.tuples(message, names).map(lambda t: {**t[0], "name": t[1]} if t[1] else t[0])


_message = st.one_of(
    _with_name(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["system", "developer", "user"]), "content": _content}
        )
    ),
    _with_name(st.fixed_dictionaries({"role": st.just("assistant"), "content": _text})),
    st.fixed_dictionaries(
        {"role": st.just("assistant"), "tool_calls": st.lists(_call, min_size=1, max_size=2)},
        optional={"content": st.one_of(st.none(), _text)},
    ),
    st.fixed_dictionaries(
        {"role": st.just("tool"), "tool_call_id": st.just("call_1"), "content": _content}
    ),
)
_optional = st.fixed_dictionaries(
    {},
    optional={
        "stop": st.one_of(_text.filter(bool), st.lists(_text.filter(bool), min_size=1, max_size=4)),
        "top_p": st.floats(0, 1),
        "presence_penalty": st.floats(-2, 2),
        "frequency_penalty": st.floats(-2, 2),
        "logit_bias": st.dictionaries(
            st.integers(0, 100_000).map(str), st.integers(-100, 100), max_size=3
        ),
        "logprobs": st.booleans(),
        "top_logprobs": st.integers(0, 20),
        "user": _text,
        "seed": st.integers(-(2**31), 2**31),
        "temperature": st.floats(0, 2),
        "max_tokens": st.integers(1, 4000),
        "tools": st.sampled_from([[WEATHER], [WEATHER, TIME]]),
        "tool_choice": st.sampled_from(["auto", "none", "required"]),
        "parallel_tool_calls": st.booleans(),
        "response_format": st.just({"type": "text"}),
        "x_unknown": st.dictionaries(st.text("abc", min_size=1, max_size=3), _text, max_size=2),
    },
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(messages=st.lists(_message, min_size=1, max_size=5), fields=_optional)
def test_the_provider_receives_exactly_the_request(
    http: httpx.Client, server: FakeOpenAI, messages: list[dict[str, Any]], fields: dict[str, Any]
) -> None:
    server.set_answer("plain-model", "fine")
    case = uuid.uuid4().hex  # an unknown field of its own: never a cache hit of another example
    sent = {"model": "plain", "messages": messages, **fields, "x_case": case}
    resp = http.post("/v1/chat/completions", json=sent)
    assert resp.status_code == 200, resp.text
    (received,) = [b for b in chat_bodies(server) if b.get("x_case") == case]
    expected = {**sent, "model": "plain-model"}
    # the tier's own settings fill in what the request left out; a limit is always sent
    expected.setdefault("max_tokens", PLAIN_MAX_TOKENS)
    expected.setdefault("temperature", PLAIN_TEMPERATURE)
    assert received == expected
