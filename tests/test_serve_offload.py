"""Issue 19: work a request decides the length of (a JSON Schema `pattern` that backtracks,
redaction of a long prompt) runs off the event loop of a real `aicli serve` process, with its
time bound: /health/live answers while it runs, and the requests end with a clear error."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fake_openai import FakeOpenAI
from tests.helpers import TEST_KEY, TEST_KEY_ENV
from tests.serve_process import ServeProcess, base_env
from tests.test_serve import write_config

TOKEN = "offload-token-0123456789abcdef"
EVIL = "^(a|aa)+$"  # backtracks for ages on a run of a's that ends in something else


@pytest.fixture(scope="module")
def svc(
    fake_server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    root = tmp_path_factory.mktemp("offload")
    config = write_config(root / "cfg", fake_server.base_url, tiers={"echo": {"cache_ttl": 0}})
    env = base_env(root / "home")
    env[TEST_KEY_ENV] = TEST_KEY
    env["AICLI_SERVE_TOKENS"] = TOKEN
    proc = ServeProcess(config, env, token=TOKEN, log_path=root / "serve.log").start()
    yield proc
    assert proc.stop() == 0, proc.log()


def evil_request(n: int) -> dict[str, Any]:
    names = [f"p{i}" for i in range(3)]
    schema = {
        "type": "object",
        "properties": {name: {"type": "string", "pattern": EVIL} for name in names},
    }
    # The free echo tier answers with the prompt: JSON whose strings make the pattern backtrack.
    value = "a" * 60 + "!"
    answer = "{" + ", ".join(f'"{name}": "{value}"' for name in names) + "}"
    return {
        "model": "echo",
        "messages": [{"role": "user", "content": answer + " " * n}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }


def test_backtracking_schemas_never_stall_the_event_loop(svc: ServeProcess) -> None:
    results: list[httpx.Response | BaseException] = []
    done = threading.Event()
    lock = threading.Lock()

    def send(n: int) -> None:
        try:
            with httpx.Client(base_url=svc.url, headers=svc.headers(), timeout=120) as client:
                resp: httpx.Response | BaseException = client.post(
                    "/v1/chat/completions", json=evil_request(n)
                )
        except BaseException as exc:  # reported below, never lost in the thread
            resp = exc
        with lock:
            results.append(resp)
            done.set()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    # The six are in: each spends its time bound (seconds) on the pattern, off the loop.
    _wait_in_flight(svc, 6)
    live = httpx.get(f"{svc.url}/health/live", timeout=60)
    assert live.status_code == 200
    assert not done.is_set(), "the liveness probe waited for the requests to finish"
    for thread in threads:
        thread.join(120)
    assert len(results) == 6
    for resp in results:
        assert isinstance(resp, httpx.Response), resp
        assert resp.status_code == 503, resp.text
        error = resp.json()["error"]
        assert error["code"] == "no_answer"
        assert f"/{EVIL}/ took longer than" in error["message"]


def _wait_in_flight(svc: ServeProcess, n: int) -> None:
    """Until the worker has `n` requests in flight (its gauge on /metrics)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = httpx.get(f"{svc.url}/metrics", headers=svc.headers(), timeout=60).text
        for line in text.splitlines():
            if line.startswith("aicli_inflight_requests") and float(line.split()[-1]) >= n:
                return
        time.sleep(0.05)
    raise AssertionError("the requests never got in flight")


def test_a_long_prompt_is_redacted_off_the_loop_and_restored(svc: ServeProcess) -> None:
    secret = "mail me at jane.doe@example.com "
    prompt = secret * 2000  # 64 KB: redacted on the pool, restored in the answer
    with svc.client() as client:
        resp = client.post(
            "/v1/chat/completions",
            json={"model": "echo", "messages": [{"role": "user", "content": prompt}]},
        )
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == prompt
