"""`aicli serve`'s front under attack and at a stop, against a real process: auth from the
headers alone, slow bodies (408), idle and half-open connections, lone surrogates, HEAD, the
500 path, a drain that refuses newcomers, and connections spread over workers. Raw sockets
where the attack needs them."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fake_openai import FakeOpenAI
from tests.helpers import TEST_KEY, TEST_KEY_ENV
from tests.serve_process import ServeProcess, base_env
from tests.test_serve import write_config

TOKEN = "front-token-SECRET-4242"

# Loaded by every process of the service (PYTHONPATH): an unexpected error, on demand.
FAULT = """\
import aicli.request_builder as rb

_plain = rb._plain_messages


def _faulty(given):
    if given.prompt and "boom-unexpected" in given.prompt:
        raise RuntimeError("the whole prompt: " + given.prompt)
    return _plain(given)


rb._plain_messages = _faulty
"""


def start(
    tmp: Path, server: FakeOpenAI, *, workers: int = 1, token: str | None = TOKEN, **serve: Any
) -> ServeProcess:
    config = write_config(
        tmp / "cfg",
        server.base_url,
        serve={"body_timeout_seconds": 1, "keep_alive_seconds": 1, **serve},
    )
    (tmp / "inject").mkdir(exist_ok=True)
    (tmp / "inject" / "sitecustomize.py").write_text(FAULT, encoding="utf-8")
    env = base_env(tmp / "home")
    env[TEST_KEY_ENV] = TEST_KEY
    if token:
        env["AICLI_SERVE_TOKENS"] = token
    svc = ServeProcess(config, env, workers=workers, token=token, log_path=tmp / "serve.log")
    svc.env["PYTHONPATH"] = f"{tmp / 'inject'}:{svc.env['PYTHONPATH']}"
    return svc.start()


@pytest.fixture(scope="module")
def svc(
    fake_server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    proc = start(tmp_path_factory.mktemp("front"), fake_server)
    yield proc
    assert proc.stop() == 0, proc.log()


def raw(svc: ServeProcess, data: bytes, timeout: float = 10) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", svc.port), timeout=timeout)
    sock.sendall(data)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (or the socket's timeout, which fails the test)."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def parse(response: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    pairs = (line.split(": ", 1) for line in lines[1:])
    headers = {name.lower(): value for name, value in pairs}
    return int(lines[0].split()[1]), headers, json.loads(body) if body else None


def post_headers(path: str, length: int, *, token: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n{auth}\r\n"
    ).encode()


def all_json(log: str) -> list[dict[str, Any]]:
    """Every line serve wrote, each one JSON object (json.loads fails the test otherwise)."""
    return [json.loads(line) for line in log.splitlines() if line.strip()]


# ---- auth before the body, the body's time, idle connections ---------------------------------


def test_many_slow_unauthenticated_bodies_get_401_without_the_body_being_read(
    svc: ServeProcess, server: FakeOpenAI
) -> None:
    # 1 MB announced, 10 bytes sent: a server that read the body first would wait for the rest.
    socks = [raw(svc, post_headers("/generate", 1_000_000) + b'{"prompt":') for _ in range(60)]
    for sock in socks:
        with sock:
            status, headers, body = parse(read_all(sock))
            assert status == 401
            assert headers["connection"] == "close" and headers["www-authenticate"] == "Bearer"
            assert body["error"]["code"] == "invalid_api_key"
            assert headers["x-request-id"]
    assert server.requests == []
    with raw(svc, post_headers("/generate", 1_000_000, token="wrong")) as sock:
        assert parse(read_all(sock))[0] == 401


def test_a_body_that_does_not_arrive_in_time_is_408(svc: ServeProcess) -> None:
    with raw(svc, post_headers("/generate", 100, token=TOKEN) + b'{"pro') as sock:
        status, headers, body = parse(read_all(sock))  # body_timeout_seconds: 1
    assert status == 408 and headers["connection"] == "close"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "request_timeout"
    line = svc.wait_for_log(headers["x-request-id"])
    assert line["status"] == 408


def test_connections_that_send_nothing_or_trickle_headers_are_closed(svc: ServeProcess) -> None:
    with socket.create_connection(("127.0.0.1", svc.port), timeout=10) as idle:
        assert read_all(idle) == b""  # closed by the server (keep_alive_seconds: 1)
    with raw(svc, b"GET /health/live HTTP/1.1\r\nHost: x\r\n") as slow:
        closed = False
        for _ in range(40):  # a header byte every 0.1 s, never finished
            try:
                slow.sendall(b"X")
            except OSError:
                closed = True
                break
            time.sleep(0.1)
        assert closed or read_all(slow) == b""
    with raw(svc, b"NOT HTTP AT ALL\r\n\r\n") as garbage:  # uvicorn's own warning
        assert read_all(garbage).startswith(b"HTTP/1.1 400")
    # a kept-alive connection is closed after its answer's keep-alive time
    with raw(svc, b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n") as kept:
        assert b'{"status":"ok"}' in read_all(kept)
    time.sleep(0.2)
    server_lines = [e for e in all_json(svc.log()) if e.get("event") == "server"]
    assert any("Invalid HTTP request" in e["message"] for e in server_lines), svc.log()


def test_headers_over_64_kb_get_431_and_a_close(svc: ServeProcess) -> None:
    head = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000
    with raw(svc, head) as sock:  # never finished: without a bound it would all be kept
        response = read_all(sock)
    status, headers, body = parse(response)
    assert status == 431 and headers["connection"] == "close"
    assert body["error"]["code"] == "headers_too_large"
    ok = b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Fine: " + b"a" * 30_000 + b"\r\n\r\n"
    with raw(svc, ok) as sock:
        assert read_all(sock).startswith(b"HTTP/1.1 200")


# ---- Unicode, logs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/generate", b'{"prompt":"a \\ud800 b SECRET-PROMPT"}'),
        ("/generate", b'{"prompt":"low first \\udc00\\ud800 SECRET-PROMPT"}'),
        (
            "/v1/chat/completions",
            b'{"model":"standard","messages":[{"role":"user","content":"\\udfff SECRET-PROMPT"}]}',
        ),
        ("/generate", b'{"prompt":"not utf-8 \xff\xfe SECRET-PROMPT"}'),
    ],
)
def test_a_lone_surrogate_or_bad_utf8_is_400_and_never_logged(
    svc: ServeProcess, server: FakeOpenAI, path: str, body: bytes
) -> None:
    resp = httpx.post(
        f"{svc.url}{path}",
        content=body,
        headers={**svc.headers(), "content-type": "application/json"},
        timeout=30,
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["type"] == "invalid_request_error"
    assert resp.json()["error"]["code"] == "invalid_unicode"
    assert "SECRET-PROMPT" not in resp.text
    line = svc.wait_for_log(resp.headers["x-request-id"])
    assert line["status"] == 400
    log = svc.log()
    assert "SECRET-PROMPT" not in log and "Traceback" not in log
    all_json(log)
    assert server.requests == []


def test_a_surrogate_pair_is_fine(svc: ServeProcess, server: FakeOpenAI) -> None:
    server.set_answer("*", "ok")
    resp = httpx.post(
        f"{svc.url}/generate",
        content=b'{"prompt":"an emoji \\ud83d\\ude00 and an escaped \\\\ud800"}',
        headers={**svc.headers(), "content-type": "application/json"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text


# ---- HEAD, what a caller is told -------------------------------------------------------------


def test_head_is_answered_wherever_get_is_and_live_shows_no_version(svc: ServeProcess) -> None:
    live = httpx.get(f"{svc.url}/health/live")
    assert live.json() == {"status": "ok"}  # no version without a token
    head = httpx.head(f"{svc.url}/health/live")
    assert head.status_code == 200 and head.content == b"" and head.headers["x-request-id"]
    assert httpx.head(f"{svc.url}/v1/models").status_code == 401  # auth as for GET
    with svc.client() as client:
        for path in ("/v1/models", "/health", "/health/ready", "/metrics"):
            got, headed = client.get(path), client.head(path)
            assert headed.status_code == got.status_code == 200, path
            assert headed.content == b"", path
        assert client.head("/generate").status_code == 405  # no GET there either


def test_errors_name_only_what_the_caller_sent(svc: ServeProcess) -> None:
    tiers = ("economy", "premium", "standard")
    with svc.client() as client:
        resp = client.post(
            "/v1/chat/completions",
            json={"model": "nope", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert resp.status_code == 404 and "nope" in resp.text
        resp2 = client.post("/generate", json={"prompt": "hi", "tier": "nope"})
        assert resp2.status_code == 400 and "nope" in resp2.text
        resp3 = client.post("/generate", json={"template": "gret", "vars": {"name": "x"}})
        assert resp3.status_code == 400 and "gret" in resp3.text
    for r in (resp, resp2, resp3):
        assert not any(t in r.text for t in tiers), r.text
        assert "greet" not in r.text and "prompts" not in r.text, r.text


# ---- the 500 path -------------------------------------------------------------------------------


def test_an_unexpected_error_is_a_json_500_with_its_request_id(svc: ServeProcess) -> None:
    rid = f"boom-{uuid.uuid4().hex}"
    with svc.client() as client:
        resp = client.post(
            "/generate", json={"prompt": "boom-unexpected PRIVATE"}, headers={"x-request-id": rid}
        )
    assert resp.status_code == 500
    assert resp.headers["x-request-id"] == rid
    assert resp.json()["error"] == {
        "message": "internal error",
        "type": "server_error",
        "param": None,
        "code": "internal_error",
    }
    svc.wait_for_log(rid)
    lines = all_json(svc.log())
    mine = [e for e in lines if e.get("request_id") == rid]
    assert [e["event"] for e in mine] == ["serve.error", "request"]
    assert mine[0]["error"] == "RuntimeError" and mine[1]["status"] == 500
    assert "PRIVATE" not in svc.log() and "Traceback" not in svc.log()


# ---- the drain -------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 2])
def test_after_sigterm_newcomers_are_refused_while_requests_in_flight_finish(
    server: FakeOpenAI, tmp_path: Path, workers: int
) -> None:
    svc = start(tmp_path, server, workers=workers, token=None, shutdown_timeout=20)
    server.set_answer("*", "finished after the signal")
    server.latency = 1.5
    outcomes: dict[str, Any] = {}

    def plain(n: int) -> None:
        resp = httpx.post(f"{svc.url}/generate", json={"prompt": f"slow {n}"}, timeout=30)
        outcomes[f"plain{n}"] = (resp.status_code, resp.json().get("content"))

    def stream() -> None:
        body = {"model": "economy", "messages": [{"role": "user", "content": "s"}], "stream": True}
        with httpx.stream("POST", f"{svc.url}/v1/chat/completions", json=body, timeout=30) as r:
            lines = [line for line in r.iter_lines() if line]
        outcomes["stream"] = (r.status_code, lines[-1])

    threads = [threading.Thread(target=plain, args=(n,)) for n in range(4)]
    threads.append(threading.Thread(target=stream))
    for t in threads:
        t.start()
    server.wait_for_requests(5, timeout=30)  # a fresh worker imports the SDK first
    assert svc.proc is not None
    svc.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    refused = 0
    for _ in range(5):  # newcomers: refused, not accepted and left waiting for the exit
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{svc.url}/health/live", timeout=httpx.Timeout(5, connect=5))
        refused += 1
    for t in threads:
        t.join(30)
    assert svc.proc.wait(30) == 0, svc.log()
    assert refused == 5
    assert outcomes == {
        **{f"plain{n}": (200, "finished after the signal") for n in range(4)},
        "stream": (200, "data: [DONE]"),
    }
    all_json(svc.log())
    assert "Traceback" not in svc.log()


def wait_for_listeners(port: int, n: int, timeout: float = 30) -> None:
    """Until n sockets listen on 127.0.0.1:port (one per worker with SO_REUSEPORT)."""
    wanted = f"0100007F:{port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
        listening = [r for r in rows if r.split()[1] == wanted and r.split()[3] == "0A"]
        if len(listening) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} listeners on port {port}")


def test_connections_are_spread_over_the_workers(server: FakeOpenAI, tmp_path: Path) -> None:
    # 48 at once on 2 workers capped at 36 each: shared evenly, none is refused
    svc = start(tmp_path, server, workers=2, token=None, max_concurrency=36)
    try:
        wait_for_listeners(svc.port, 2)  # both workers up, not only the first to answer
        server.set_answer("*", "spread")
        server.latency = 1.5
        statuses: list[int] = []

        def one(n: int) -> None:
            resp = httpx.post(
                f"{svc.url}/generate", json={"prompt": f"spread {n}", "cache": "off"}, timeout=60
            )
            statuses.append(resp.status_code)

        threads = [threading.Thread(target=one, args=(n,)) for n in range(48)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert statuses.count(200) == 48, statuses
    finally:
        assert svc.stop() == 0, svc.log()
    all_json(svc.log())


def test_a_worker_that_dies_is_replaced(server: FakeOpenAI, tmp_path: Path) -> None:
    svc = start(tmp_path, server, workers=2, token=None)
    try:
        assert svc.proc is not None
        children = Path(f"/proc/{svc.proc.pid}/task/{svc.proc.pid}/children")

        def worker_pids() -> list[str]:  # not multiprocessing's resource tracker
            found = []
            for pid in children.read_text().split():
                try:
                    if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        found.append(pid)
                except OSError:
                    pass  # gone meanwhile
            return found

        workers = worker_pids()
        assert len(workers) == 2
        os.kill(int(workers[0]), signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = worker_pids()
            if len(now) == 2 and workers[0] not in now:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"no replacement worker:\n{svc.log()}")
        server.set_answer("*", "still here")
        for n in range(6):
            resp = httpx.post(f"{svc.url}/generate", json={"prompt": f"after {n}"}, timeout=30)
            assert resp.status_code == 200
    finally:
        assert svc.stop() == 0, svc.log()
    restarts = [e for e in all_json(svc.log()) if e.get("event") == "serve.worker_restart"]
    assert len(restarts) == 1 and restarts[0]["exit_code"] == -signal.SIGKILL


@pytest.mark.parametrize("reuse_port", [False, True])
def test_a_port_in_use_is_exit_2_before_any_worker(
    make_config: Any, run_aicli: Any, reuse_port: bool
) -> None:
    make_config()
    with socket.socket() as taken:
        if reuse_port:  # another SO_REUSEPORT listener would otherwise share our traffic
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_aicli("serve", "--port", str(port), "--workers", "2")
    assert done.exit_code == 2, done
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr, done
    assert "serving on" not in done.stderr  # never announced, then refused
    assert "Traceback" not in done.stderr


def test_a_large_body_sent_with_its_headers_is_not_mistaken_for_headers(
    svc: ServeProcess, server: FakeOpenAI
) -> None:
    server.set_answer("*", "read it")
    text = "word " * 60_000  # 300 KB, written in one go with the headers
    body = {"model": "standard", "messages": [{"role": "user", "content": text}]}
    with svc.client() as client:
        resp = client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
