"""`aicli serve` end to end: a real uvicorn subprocess, driven with httpx and the openai SDK,
against the fake OpenAI server as the provider. One server for the whole module."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from aicli.types import Result
from tests.fake_openai import FakeOpenAI
from tests.helpers import TEST_KEY, TEST_KEY_ENV, deep_merge, default_config
from tests.serve_process import ServeProcess, base_env, free_port

TOKEN = "serve-token-TOPSECRET-0123456789"
OTHER_TOKEN = "second-token-ALSOSECRET-987"

TEMPLATE = """\
name: greet
version: 1.0.0
template: "Say hello to {{ name }}{% if input %} about {{ input }}{% endif %}."
variables:
  name: {type: string, minLength: 1}
  input: {type: string}
"""


def write_config(folder: Path, base_url: str, **overrides: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prompts" / "greet").mkdir(parents=True, exist_ok=True)
    (folder / "prompts" / "greet" / "1.0.0.yaml").write_text(TEMPLATE, encoding="utf-8")
    data = deep_merge(default_config(base_url), overrides)
    path = folder / "aicli.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def svc(
    fake_server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    root = tmp_path_factory.mktemp("serve")
    config = write_config(
        root / "cfg",
        fake_server.base_url,
        serve={"max_body_kb": 16, "max_concurrency": 2},
        tiers={
            "short": {"model": "short-model", "provider": "fake", "cache_ttl": 1},
            "slow": {"model": "slow-model", "provider": "fake", "timeout_seconds": 0.5},
            "gone": {"model": "gone-model", "provider": "dead"},
        },
        providers={"dead": {"base_url": f"http://127.0.0.1:{free_port()}/v1", "local": True}},
    )
    env = base_env(root / "home")
    env[TEST_KEY_ENV] = TEST_KEY
    env["AICLI_SERVE_TOKENS"] = f" {TOKEN} ,{OTHER_TOKEN},"
    proc = ServeProcess(config, env, token=TOKEN, log_path=root / "serve.log").start()
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture
def http(svc: ServeProcess, server: FakeOpenAI) -> Iterator[httpx.Client]:
    with svc.client() as client:
        yield client


@pytest.fixture
def sdk(svc: ServeProcess, server: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{svc.url}/v1", api_key=TOKEN, max_retries=0)


def unique(text: str = "prompt") -> str:
    return f"{text} {uuid.uuid4().hex[:10]}"


def assert_error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) >= {"message", "type", "code"}
    if code is not None:
        assert err["code"] == code
    return dict(err)


# ---- POST /generate -----------------------------------------------------------------------


def test_generate_answers_like_generate_json(http: httpx.Client, server: FakeOpenAI) -> None:
    prompt = unique("Name a prime")
    resp = http.post("/generate", json={"prompt": prompt, "max_tokens": 50, "temperature": 0.5})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    fields = set(Result(content="", tier="", model_used="").to_json())
    assert set(body) == fields
    assert body["content"] == prompt and body["tier"] == "standard"
    assert body["cached"] is False and body["attempts"] == 1
    assert resp.headers["x-aicli-cached"] == "false"
    assert resp.headers["x-aicli-tier"] == "standard"
    assert float(resp.headers["x-aicli-cost-usd"]) == pytest.approx(body["cost_usd"])
    assert resp.headers["x-request-id"] == body["request_id"]
    sent = server.requests[-1]["body"]
    assert sent["max_tokens"] == 50 and sent["temperature"] == 0.5

    again = http.post("/generate", json={"prompt": prompt, "max_tokens": 50, "temperature": 0.5})
    assert again.json()["cached"] is True and again.headers["x-aicli-cached"] == "true"
    assert again.headers["x-aicli-cost-usd"] == "0.00000000"
    assert len(server.requests) == 1


def test_request_id_is_the_callers_or_a_new_one(http: httpx.Client) -> None:
    mine = "trace-" + uuid.uuid4().hex
    resp = http.post("/generate", json={"prompt": unique()}, headers={"x-request-id": mine})
    assert resp.headers["x-request-id"] == mine and resp.json()["request_id"] == mine
    odd = http.post("/generate", json={"prompt": unique()}, headers={"x-request-id": "a b\tc"})
    assert odd.headers["x-request-id"] != "a b\tc" and len(odd.headers["x-request-id"]) == 32
    assert http.get("/v1/models").headers["x-request-id"]


def test_generate_with_a_template_vars_and_prompt_as_input(
    http: httpx.Client, server: FakeOpenAI
) -> None:
    resp = http.post(
        "/generate", json={"template": "greet", "vars": {"name": "Ada"}, "prompt": "the weather"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["template"]["name"] == "greet"
    assert server.requests[-1]["messages"][-1]["content"] == "Say hello to Ada about the weather."


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 422),  # neither prompt nor template
        ({"prompt": ""}, 422),
        ({"prompt": "x" * 10001}, 422),
        ({"prompt": "hi", "max_tokens": 0}, 422),
        ({"prompt": "hi", "max_tokens": 4001}, 422),
        ({"prompt": "hi", "temperature": 2.5}, 422),
        ({"prompt": "hi", "surprise": 1}, 422),
        ({"prompt": "hi", "cache": "sometimes"}, 422),
        ({"prompt": "hi", "tier": "nope"}, 400),
        ({"template": "missing"}, 400),
        ({"template": "greet", "vars": {}}, 400),  # a required variable is missing
        ({"prompt": "hi", "schema": {"type": 12}}, 400),
    ],
)
def test_generate_rejects_bad_input(http: httpx.Client, body: Any, status: int) -> None:
    resp = http.post("/generate", json=body)
    assert resp.status_code == status, resp.text
    if status == 422:
        assert isinstance(resp.json()["detail"], list)  # FastAPI's shape
    else:
        assert_error(resp, 400)


def test_malformed_json_is_422_and_unknown_path_404(http: httpx.Client) -> None:
    resp = http.post(
        "/generate", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 422
    assert_error(http.get("/nowhere"), 404)
    assert_error(http.get("/generate"), 405)


def test_fallback_then_stale_then_503_never_hanging(http: httpx.Client, server: FakeOpenAI) -> None:
    prompt = unique("outage")
    server.script("standard-model", ["500"])
    resp = http.post("/generate", json={"prompt": prompt})
    assert resp.status_code == 200 and resp.json()["fallback_used"] is True
    assert resp.headers["x-aicli-tier"] == "economy"

    # `short` caches for 1 s; then its provider hangs past the tier's timeout: a stale answer
    stale = unique("stale")
    assert http.post("/generate", json={"prompt": stale, "tier": "short"}).status_code == 200
    time.sleep(1.1)
    server.script("short-model", ["500"])
    resp = http.post("/generate", json={"prompt": stale, "tier": "short"})
    assert resp.status_code == 200 and resp.json()["stale"] is True

    server.script("slow-model", ["hang"])
    started = time.monotonic()
    resp = http.post("/generate", json={"prompt": unique(), "tier": "slow"})
    assert time.monotonic() - started < 10
    err = assert_error(resp, 503, "no_answer")
    assert "slow" in err["message"]


def test_max_tokens_is_capped_at_the_tiers(sdk: openai.OpenAI, server: FakeOpenAI) -> None:
    sdk.chat.completions.create(
        model="economy", messages=[{"role": "user", "content": unique()}], max_tokens=100_000
    )
    assert server.requests[-1]["body"]["max_tokens"] == 2000  # the built-in default


def test_body_over_the_cap_is_413(http: httpx.Client) -> None:
    resp = http.post("/generate", json={"prompt": "x" * 9000, "system": "y" * 9000})
    assert_error(resp, 413, "request_too_large")
    chunked = http.post("/generate", content=iter([b'{"prompt": "', b"z" * 20000, b'"}']))
    assert_error(chunked, 413)


def test_in_flight_cap_answers_429_at_once(svc: ServeProcess, server: FakeOpenAI) -> None:
    server.script("*", ["delay:1.5", "delay:1.5"])
    results: list[int] = []

    def slow() -> None:
        with svc.client() as client:
            results.append(client.post("/generate", json={"prompt": unique()}).status_code)

    threads = [threading.Thread(target=slow) for _ in range(2)]
    for t in threads:
        t.start()
    server.wait_for_requests(2)
    with svc.client() as client:
        started = time.monotonic()
        resp = client.post("/generate", json={"prompt": unique()})
        assert time.monotonic() - started < 1.0
    assert_error(resp, 429)
    assert resp.headers["retry-after"] == "1"
    for t in threads:
        t.join()
    assert results == [200, 200]


# ---- auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/generate", "/v1/models", "/health", "/health/ready", "/metrics"]
)
def test_auth_is_needed_everywhere_but_live(svc: ServeProcess, path: str) -> None:
    method = "POST" if path == "/generate" else "GET"
    bodies = []
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
    ):
        resp = httpx.request(method, svc.url + path, json={"prompt": "hi"}, headers=headers)
        assert resp.status_code == 401
        bodies.append(resp.json())
    assert all(b == bodies[0] for b in bodies)  # nothing says which part was wrong
    assert TOKEN not in json.dumps(bodies)
    ok = httpx.request(method, svc.url + path, json={"prompt": unique()}, headers={
        "Authorization": f"Bearer {OTHER_TOKEN}"
    })  # fmt: skip
    assert ok.status_code == 200
    assert httpx.get(svc.url + "/health/live").status_code == 200


def test_sdk_gets_authentication_error(svc: ServeProcess) -> None:
    bad = openai.OpenAI(base_url=f"{svc.url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


# ---- /v1 -----------------------------------------------------------------------------------


def test_models_lists_tiers(sdk: openai.OpenAI) -> None:
    assert {m.id for m in sdk.models.list()} == {
        "premium", "standard", "economy", "echo", "short", "slow", "gone"
    }  # fmt: skip


def test_chat_completion_through_the_sdk(sdk: openai.OpenAI, server: FakeOpenAI) -> None:
    prompt = unique("Hello")
    raw = sdk.chat.completions.with_raw_response.create(
        model="premium",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}],
        temperature=0.2,
        seed=7,
    )
    done = raw.parse()
    assert done.choices[0].message.content == prompt
    assert done.model == "premium-model" and done.object == "chat.completion"
    assert done.usage is not None and done.usage.total_tokens > 0
    assert raw.headers["x-aicli-tier"] == "premium" and raw.headers["x-aicli-cached"] == "false"
    assert float(raw.headers["x-aicli-cost-usd"]) > 0
    sent = server.requests[-1]["body"]
    assert sent["seed"] == 7 and sent["messages"][0] == {"role": "system", "content": "Be brief."}


def test_chat_errors_raise_the_sdks_exceptions(sdk: openai.OpenAI, server: FakeOpenAI) -> None:
    msgs: Any = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.NotFoundError) as nf:
        sdk.chat.completions.create(model="gpt-nope", messages=msgs)
    assert nf.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="standard", messages=[])
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="standard", messages=msgs, temperature=9)
    server.script("*", ["500", "500"])
    with pytest.raises(openai.InternalServerError) as down:
        sdk.chat.completions.create(
            model="standard", messages=[{"role": "user", "content": unique()}]
        )
    assert down.value.status_code == 503


def test_stream_through_the_sdk_and_cache_hit_streams(
    sdk: openai.OpenAI, http: httpx.Client, server: FakeOpenAI
) -> None:
    prompt = unique("Stream this answer please")
    msgs: Any = [{"role": "user", "content": prompt}]
    chunks = list(sdk.chat.completions.create(model="standard", messages=msgs, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == prompt
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    assert server.requests[-1]["stream"] is True

    with http.stream(
        "POST", "/v1/chat/completions",
        json={"model": "standard", "messages": msgs, "stream": True,
              "stream_options": {"include_usage": True}},
    ) as resp:  # fmt: skip
        assert resp.headers["x-aicli-cached"] == "true"
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [line for line in resp.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    payloads = [json.loads(e[6:]) for e in events[:-1]]
    text = "".join(p["choices"][0]["delta"].get("content", "") for p in payloads if p["choices"])
    assert text == prompt
    assert payloads[-1]["usage"]["total_tokens"] > 0
    assert len(server.requests) == 1  # the second came from the cache


def test_stream_fails_over_only_before_the_first_chunk(
    sdk: openai.OpenAI, server: FakeOpenAI
) -> None:
    server.script("standard-model", ["500"])
    msgs: Any = [{"role": "user", "content": unique("fail over")}]
    raw = sdk.chat.completions.with_raw_response.create(
        model="standard", messages=msgs, stream=True
    )
    assert raw.headers["x-aicli-tier"] == "economy"
    chunks = list(raw.parse())
    assert chunks[1].model == "economy-model"

    server.script("*", ["stream-cut"])
    msgs = [{"role": "user", "content": unique("cut me off mid way")}]
    with pytest.raises(openai.APIError):
        list(sdk.chat.completions.create(model="standard", messages=msgs, stream=True))
    assert [r["model"] for r in server.requests[-1:]] == ["standard-model"]  # no second tier


def test_redaction_round_trip(sdk: openai.OpenAI, http: httpx.Client, server: FakeOpenAI) -> None:
    email = f"ada.{uuid.uuid4().hex[:6]}@example.com"
    resp = http.post("/generate", json={"prompt": f"Write to {email} today"})
    assert resp.json()["content"] == f"Write to {email} today"
    assert resp.json()["redactions"] == {"email": 1}
    sent = json.dumps(server.requests[-1]["messages"])
    assert email not in sent and "EMAIL" in sent.upper()

    done = sdk.chat.completions.create(
        model="economy", messages=[{"role": "user", "content": f"Mail {email} now"}]
    )
    assert done.choices[0].message.content == f"Mail {email} now"
    assert email not in json.dumps(server.requests[-1]["messages"])


# ---- logs and metrics ----------------------------------------------------------------------

LOG_FIELDS = {
    "ts", "level", "request_id", "method", "path", "status", "tier", "model", "cached",
    "fallback_used", "attempts", "latency_ms", "prompt_tokens", "completion_tokens", "cost_usd",
}  # fmt: skip


def test_one_json_log_line_per_request_without_text_or_tokens(
    svc: ServeProcess, http: httpx.Client
) -> None:
    secret_prompt = unique("SECRET-PROMPT-TEXT")
    rid = "log-" + uuid.uuid4().hex
    http.post("/generate", json={"prompt": secret_prompt}, headers={"x-request-id": rid})
    entry = svc.wait_for_log(rid)
    assert set(entry) >= LOG_FIELDS
    assert entry["status"] == 200 and entry["path"] == "/generate" and entry["tier"] == "standard"
    assert entry["prompt_tokens"] > 0 and entry["cached"] is False
    assert [e["request_id"] for e in svc.request_lines()].count(rid) == 1
    for line in svc.log().splitlines():  # every line is one JSON object
        assert isinstance(json.loads(line), dict), line
    log = svc.log()
    assert "SECRET-PROMPT-TEXT" not in log and TOKEN not in log and TEST_KEY not in log


def metric_values(svc: ServeProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with svc.client() as client:
        text = client.get("/metrics").text
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def test_metrics_move_with_requests(svc: ServeProcess, http: httpx.Client) -> None:
    ok = (
        "aicli_requests_total",
        (("endpoint", "generate"), ("status", "200"), ("tier", "economy")),
    )
    hits = ("aicli_cache_hits_total", (("tier", "economy"),))
    misses = ("aicli_cache_misses_total", (("tier", "economy"),))
    tokens = ("aicli_tokens_total", (("kind", "prompt"), ("tier", "economy")))
    cost = ("aicli_cost_usd_total", (("tier", "economy"),))
    before = metric_values(svc)
    prompt = unique("count me")
    for _ in range(2):
        assert http.post("/generate", json={"prompt": prompt, "tier": "economy"}).status_code == 200
    after = metric_values(svc)
    assert after[ok] - before.get(ok, 0) == 2
    assert after[hits] - before.get(hits, 0) == 1
    assert after[misses] - before.get(misses, 0) == 1
    assert after[tokens] > before.get(tokens, 0) and after[cost] > before.get(cost, 0)
    names = {name for name, _ in after}
    assert {
        "aicli_request_duration_seconds_bucket", "aicli_inflight_requests",
    } <= names  # fmt: skip
    for _, labels in after:  # low cardinality: no prompt, token or request id in any label
        assert all(prompt not in v and TOKEN not in v for _, v in labels)


def test_provider_errors_and_fallbacks_are_counted(svc: ServeProcess, http: httpx.Client,
                                                   server: FakeOpenAI) -> None:  # fmt: skip
    errors = ("aicli_provider_errors_total", (("kind", "server_error"), ("tier", "premium")))
    fallbacks = ("aicli_fallbacks_total", (("tier", "premium"),))
    before = metric_values(svc)
    server.script("premium-model", ["502"])
    assert http.post("/generate", json={"prompt": unique(), "tier": "premium"}).status_code == 200
    after = metric_values(svc)
    assert after[errors] - before.get(errors, 0) == 1
    assert after[fallbacks] - before.get(fallbacks, 0) == 1


# ---- health --------------------------------------------------------------------------------


def test_health_shallow_and_deep(http: httpx.Client) -> None:
    resp = http.get("/health")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "healthy" and body["version"]
    assert body["dependencies"]["cache"]["status"] == "ok"
    assert body["dependencies"]["providers"]["fake"] == {"status": "not_checked"}

    deep = http.get("/health", params={"deep": 1}).json()
    providers = deep["dependencies"]["providers"]
    assert providers["fake"]["status"] in ("ok", "warn") and providers["echo"]["status"] == "ok"
    assert providers["dead"]["status"] == "down"
    assert deep["status"] == "degraded"  # one provider down, the others answer
    assert TEST_KEY not in json.dumps(deep)
    ready = http.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
