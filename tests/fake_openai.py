"""An OpenAI-compatible chat-completions server on 127.0.0.1 with scriptable failures, for tests.

Stdlib only, so it also runs standalone: `python tests/fake_openai.py --port 8765`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = str | Callable[[dict[str, Any]], str]

HANG_CAP_SECONDS = 60.0
DEFAULT_MODELS = ("premium-model", "standard-model", "economy-model")
_STATUS_RE = re.compile(r"^([1-5]\d\d)(?::(\d+(?:\.\d+)?))?$")
_SIMPLE = {"ok", "hang", "malformed", "bad-shape", "empty", "null", "stream-cut", "stream-junk"}

_BATCH_PATHS = ("/v1/files", "/v1/batches")

_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request: told to reject this.", "invalid_request_error", None),
    401: ("Incorrect API key provided: {key}.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to use this model.", "invalid_request_error", None),
    404: ("The model `{model}` does not exist.", "invalid_request_error", "model_not_found"),
    408: ("Request timed out.", "server_error", None),
    409: ("Conflict, please retry.", "server_error", None),
    429: ("Rate limit reached for {model}. Try again later.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


def validate_behaviour(behaviour: str) -> None:
    """Raise ValueError for a behaviour string the server does not know."""
    if behaviour in _SIMPLE or behaviour.startswith("ok:") or _STATUS_RE.match(behaviour):
        return
    if behaviour.startswith(("delay:", "drip:")):
        float(behaviour.split(":", 1)[1])
        return
    raise ValueError(f"unknown fake-server behaviour: {behaviour!r}")


def mask_key(key: str) -> str:
    """Mask a key the way OpenAI's 401 message does: a few leading chars, stars, the last four."""
    if len(key) <= 8:
        return "*" * len(key)
    return key[:3] + "*" * (len(key) - 7) + key[-4:]


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multi-part content: keep the text parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def echo_answer(body: dict[str, Any]) -> str:
    """The default answer: the text of the last user message."""
    for msg in reversed(body.get("messages") or []):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return _content_text(msg.get("content"))
    return ""


def usage_for(
    body: dict[str, Any], answer: str, tokens_per_char: float | None = None
) -> dict[str, int]:
    """Usage as the server reports it: 4 characters a token, or `tokens_per_char` (CJK: 1)."""
    chars = sum(
        len(_content_text(m.get("content")))
        for m in body.get("messages") or []
        if isinstance(m, dict)
    )
    if tokens_per_char is not None:
        prompt, completion = round(chars * tokens_per_char), round(len(answer) * tokens_per_char)
    else:
        prompt, completion = max(1, chars // 4), max(1, len(answer) // 4)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Else each keep-alive response waits ~40 ms for a delayed ACK (Nagle): benchmarks lie.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.fake._track(self.connection, add=False)

    def handle_one_request(self) -> None:
        self._counted = False
        self._drip = 0.0
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True
        finally:
            self._release()

    def _count(self) -> None:
        self._counted = True
        self.server.fake._enter()

    def _release(self) -> None:
        # called before the last bytes go out: a client holding its answer sees in_flight drop
        if getattr(self, "_counted", False):
            self._counted = False
            self.server.fake._leave()

    # ---- plumbing -------------------------------------------------------------------------

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(obj).encode(), "application/json", headers)

    def _send_raw(
        self, status: int, data: bytes, ctype: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self._release()
        self._write(data)

    def _write(self, data: bytes) -> None:
        if not getattr(self, "_drip", 0.0):
            self.wfile.write(data)
            self.wfile.flush()
            return
        for i in range(len(data)):  # drip: each read gets a byte, the whole takes forever
            if not self.server.fake._sleep(self._drip, self.server.fake._generation):
                raise ConnectionError("server stopped or reset")
            if self._client_gone():
                raise ConnectionError("client gone")
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()

    def _write_chunk(self, data: bytes) -> None:
        self._write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def _client_gone(self) -> bool:
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # ---- routes ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        fake = self.server.fake
        if self.path.startswith(_BATCH_PATHS):  # the Batch API: tests/fake_batch.py
            fake.batch.handle(self, "GET", b"")
            return
        if self.path.rstrip("/") != "/v1/models":
            self._send_json(404, _error_body(404, "Not found", "invalid_request_error", None))
            return
        self._count()
        self._drip = fake.drip_seconds
        key = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if fake.expected_key is not None and key != fake.expected_key:
            self._error(401, None, "", key)
            return
        with fake._lock:
            fake.model_lists += 1
        models = sorted(set(DEFAULT_MODELS) | fake._known_models())
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in models]
        self._send_json(200, {"object": "list", "data": data})

    def do_POST(self) -> None:
        fake = self.server.fake
        raw = self._read_body()
        if self.path.startswith(_BATCH_PATHS):
            fake.batch.handle(self, "POST", raw)
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_json(
                404, _error_body(404, f"Unknown path {self.path}", "invalid_request_error", None)
            )
            return
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body is not an object")
        except ValueError as exc:
            self._send_json(
                400, _error_body(400, f"Invalid JSON body: {exc}", "invalid_request_error", None)
            )
            return
        self._count()
        self._chat(fake, body)

    def _chat(self, fake: FakeOpenAI, body: dict[str, Any]) -> None:
        model = str(body.get("model", ""))
        headers = {k.lower(): v for k, v in self.headers.items()}
        generation = fake._generation
        fake._record(
            {
                "model": model,
                "messages": body.get("messages"),
                "body": body,
                "headers": headers,
                "time": time.monotonic(),
                "stream": bool(body.get("stream")),
            }
        )
        retry_after, quota = fake._take_quota()
        if retry_after is not None:
            after = f"{retry_after:.3f}" if fake.retry_after else None
            self._error(429, after, model, "", quota)
            return
        behaviour = fake._next_behaviour(model)
        delay, self._drip = fake.latency, fake.drip_seconds
        if behaviour.startswith("delay:"):
            delay += float(behaviour.split(":", 1)[1])
            behaviour = "ok"
        if behaviour.startswith("drip:"):  # a valid answer, one byte at a time
            self._drip, behaviour = float(behaviour.split(":", 1)[1]), "ok"
        if delay and not fake._sleep(delay, generation):
            self.close_connection = True  # stopped or reset meanwhile: never answer
            return
        key = headers.get("authorization", "").removeprefix("Bearer ").strip()
        self._bearer = key  # for `fields` values that echo it
        if fake.expected_key is not None and key != fake.expected_key:
            behaviour = "401"
        if behaviour == "hang":
            self._hang(fake, generation)
            return
        m = _STATUS_RE.match(behaviour)
        if m:
            self._error(int(m.group(1)), m.group(2), model, key)
            return
        stream = bool(body.get("stream"))
        if behaviour == "malformed":
            if stream:
                self._stream_lines([b"data: {this is not json\n\n", b"data: [DONE]\n\n"])
            else:
                self._send_raw(200, b'{"id": "chatcmpl-broken", "choices": [', "application/json")
            return
        if behaviour == "bad-shape":
            obj = {"id": "chatcmpl-odd", "object": "unexpected", "model": model}
            if stream:
                self._stream_lines([f"data: {json.dumps(obj)}\n\n".encode(), b"data: [DONE]\n\n"])
            else:
                self._send_json(200, obj)
            return
        if behaviour in ("empty", "null"):
            answer = ""
        elif behaviour.startswith("ok:"):
            answer = behaviour[3:]
        else:
            answer = fake._answer_for(model, body)
        answer = fake._bounded(body, answer)
        calls = tool_calls_for(body) if behaviour == "ok" else None
        if calls is not None:
            self._tool_answer(fake, body, model, calls, stream, generation)
            return
        if behaviour == "ok" and body.get("tools") and _last_role(body) == "tool":
            answer = tool_result_answer(body)
        if stream:
            broken = behaviour if behaviour in ("stream-cut", "stream-junk") else None
            self._stream(fake, body, model, answer, broken=broken, generation=generation)
        else:
            completion = fake._completion(body, model, answer)
            if behaviour == "null":
                completion["choices"][0]["message"]["content"] = None
            headers = {**fake._id_headers(), **quota, **fake.headers}
            self._send_json(200, fake._with_fields(completion, key), headers)

    def _error(
        self,
        status: int,
        retry_after: str | None,
        model: str,
        key: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        message, etype, code = _ERRORS.get(status, ("Fake error.", "server_error", None))
        message = message.format(model=model, key=mask_key(key) if key else "<none>")
        message = self.server.fake.fields.get("error", message).replace("{key}", key)
        headers = {**(extra or {}), **({"Retry-After": retry_after} if retry_after else {})}
        self._send_json(status, _error_body(status, message, etype, code), headers)

    def _hang(self, fake: FakeOpenAI, generation: int) -> None:
        deadline = time.monotonic() + HANG_CAP_SECONDS
        while time.monotonic() < deadline and fake._alive(generation):
            if self._client_gone():
                break
            time.sleep(0.02)
        self.close_connection = True  # never answer

    def _start_sse(self, headers: dict[str, str] | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")  # keeps the connection reusable
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()

    def _stream_lines(self, lines: list[bytes]) -> None:
        self._start_sse()
        self._stream_rest(lines)

    def _stream_rest(self, lines: list[bytes]) -> None:
        for line in lines:
            self._write_chunk(line)
        self._release()
        self._write_chunk(b"")

    def _stream(
        self,
        fake: FakeOpenAI,
        body: dict[str, Any],
        model: str,
        answer: str,
        *,
        broken: str | None,
        generation: int,
    ) -> None:
        cid, created = fake._new_id(), int(time.time())
        size = max(1, int(fake.chunk_size))
        pieces = [answer[i : i + size] for i in range(0, len(answer), size)]

        def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
            choices = (
                [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
            )
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
            obj = fake._with_fields({**obj, "choices": choices, **extra}, self._bearer)
            return f"data: {json.dumps(obj)}\n\n".encode()

        self._start_sse(fake._id_headers())
        self._write_chunk(chunk({"role": "assistant", "content": ""}))
        if broken:
            for piece in (pieces or ["partial"])[:2]:
                self._write_chunk(chunk({"content": piece}))
            if broken == "stream-junk":  # part of the answer, then an undecodable event
                self._stream_rest([b"data: {this is not json\n\n", b"data: [DONE]\n\n"])
                return
            self.close_connection = True
            self._release()
            self.connection.shutdown(socket.SHUT_RDWR)  # drop mid-body: no terminating chunk
            return
        for piece in pieces:
            if fake.chunk_delay and not fake._sleep(fake.chunk_delay, generation):
                self.close_connection = True
                return
            self._write_chunk(chunk({"content": piece}))
        self._write_chunk(chunk({}, "stop"))
        opts = body.get("stream_options") or {}
        if isinstance(opts, dict) and opts.get("include_usage"):
            self._write_chunk(chunk(None, usage=fake._usage(body, answer)))
        self._release()
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")

    # ---- tools: a request offering tools is answered with a call of them --------------------

    def _tool_answer(
        self,
        fake: FakeOpenAI,
        body: dict[str, Any],
        model: str,
        calls: list[dict[str, Any]],
        stream: bool,
        generation: int,
    ) -> None:
        """OpenAI's answer with `message.tool_calls` and finish_reason "tool_calls"; streamed,
        its tool-call deltas: index, id, type and name first, then the arguments in pieces."""
        text = "".join(c["function"]["arguments"] for c in calls)
        if not stream:
            completion = fake._completion(body, model, text)
            message = completion["choices"][0]["message"]
            message["content"], message["tool_calls"] = None, calls
            completion["choices"][0]["finish_reason"] = "tool_calls"
            self._send_json(200, completion, fake._id_headers())
            return
        cid, created = fake._new_id(), int(time.time())
        size = max(1, int(fake.chunk_size))

        def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
            choices = (
                [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
            )
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
            return f"data: {json.dumps({**obj, 'choices': choices, **extra})}\n\n".encode()

        self._start_sse(fake._id_headers())
        self._write_chunk(chunk({"role": "assistant", "content": None}))
        for index, call in enumerate(calls):
            first = {"index": index, "id": call["id"], "type": "function"}
            name = call["function"]["name"]
            self._write_chunk(
                chunk({"tool_calls": [{**first, "function": {"name": name, "arguments": ""}}]})
            )
            args = call["function"]["arguments"]
            for i in range(0, len(args), size):
                if fake.chunk_delay and not fake._sleep(fake.chunk_delay, generation):
                    self.close_connection = True
                    return
                piece = {"index": index, "function": {"arguments": args[i : i + size]}}
                self._write_chunk(chunk({"tool_calls": [piece]}))
        self._write_chunk(chunk({}, "tool_calls"))
        opts = body.get("stream_options") or {}
        if isinstance(opts, dict) and opts.get("include_usage"):
            self._write_chunk(chunk(None, usage=fake._usage(body, text)))
        self._release()
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")


def _last_role(body: dict[str, Any]) -> Any:
    messages = body.get("messages") or []
    return messages[-1].get("role") if messages and isinstance(messages[-1], dict) else None


def tool_calls_for(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The tool calls a request offering tools is answered with (None: answer with text).

    Each offered function is called (at most two; one when `parallel_tool_calls` is false or
    `tool_choice` names a function) with `{"input": <the last user message's text>}`, so a
    test sees its own words, placeholders and all, in the arguments. No call when tool_choice
    is "none" or the last message is a tool's result (then the final answer follows)."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    choice = body.get("tool_choice")
    if not tools or choice == "none" or _last_role(body) == "tool":
        return None
    names = [str((t.get("function") or {}).get("name", "")) for t in tools]
    if isinstance(choice, dict):
        names = [str((choice.get("function") or {}).get("name", ""))]
    elif body.get("parallel_tool_calls") is False:
        names = names[:1]
    arguments = json.dumps({"input": echo_answer(body)})
    return [
        {
            "id": f"call_{i}_{abs(hash((name, arguments))) % 10**8:08d}",
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        for i, name in enumerate(names[:2])
    ]


def tool_result_answer(body: dict[str, Any]) -> str:
    """The final answer after tool results: what each tool returned, in order."""
    results = [
        _content_text(m.get("content"))
        for m in body.get("messages") or []
        if isinstance(m, dict) and m.get("role") == "tool"
    ]
    return "tools said: " + " | ".join(results)


def _batches(fake: FakeOpenAI) -> Any:
    try:
        from tests.fake_batch import FakeBatches
    except ImportError:  # run standalone from tests/
        from fake_batch import FakeBatches  # type: ignore[no-redef]
    return FakeBatches(fake)


def _error_body(status: int, message: str, etype: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": etype, "param": None, "code": code}}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the listen backlog: many clients connect at once in benchmarks
    block_on_close = False
    fake: FakeOpenAI

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # client disconnects are normal in tests


class FakeOpenAI:
    """An OpenAI-compatible server. `start()`, then point a client at `base_url`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._generation = 0
        self._ids = 0
        self._requests: list[dict[str, Any]] = []
        self._scripts: dict[str, deque[str]] = {}
        self._answers: dict[str, Answer] = {}
        self._accepted: deque[float] = deque()  # arrival times inside the rate-limit window
        self.in_flight = 0
        self.max_in_flight = 0
        self.throttled = 0  # 429s sent because of `rate_limit`
        self.model_lists = 0  # GET /v1/models answered (health probes)
        self.batch = _batches(self)  # the Batch API: files and batches in memory
        self._defaults()

    def _defaults(self) -> None:
        self.latency: float = 0.0  # seconds every request waits before answering
        self.chunk_size: int = 4  # characters per streamed content chunk
        self.chunk_delay: float = 0.0  # seconds between streamed chunks
        self.expected_key: str | None = None  # when set, any other bearer key gets a 401
        self.drip_seconds: float = 0.0  # every response sent one byte at a time, this far apart
        self.tokens_per_char: float | None = None  # usage per character (CJK-like: 1.0)
        self.usage_override: dict[str, int] | None = None  # reported whatever was generated
        # (requests, seconds): a server-side quota like OpenAI's; chat requests over it get a
        # 429 at once, and every answer carries x-ratelimit-{limit,remaining,reset}-requests.
        self.rate_limit: tuple[int, float] | None = None
        self.retry_after = True  # send Retry-After with those 429s
        self.headers: dict[str, str] = {}  # extra headers on every successful completion
        # A hostile server: values for the answer's own fields, whatever was asked ("model",
        # "id", "system_fingerprint", "finish_reason", "error" for an error's message), in
        # plain and streamed answers. "{key}" in a value becomes the bearer key the request
        # carried; lone surrogates go out as the JSON escapes they are ("\ud800").
        self.fields: dict[str, str] = {}

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        self._stop.clear()
        self._httpd = _Server((self.host, self.port), _Handler)
        self._httpd.fake = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # wake keep-alive handlers blocked on a read
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # ---- test API -------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget requests, scripts, answers and counters; release hanging requests."""
        with self._lock:
            self._generation += 1
            self._requests.clear()
            self._scripts.clear()
            self._answers.clear()
            self.in_flight = 0
            self.max_in_flight = 0
            self.throttled = 0
            self.model_lists = 0
            self._accepted.clear()
        self._defaults()
        self.batch = _batches(self)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A snapshot of the requests received: model, messages, body, headers, time, stream."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, model: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["model"] == model]

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until at least n requests arrived (raises TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reqs = self.requests
            if len(reqs) >= n:
                return reqs
            time.sleep(0.01)
        raise TimeoutError(f"expected {n} requests, got {len(self.requests)}")

    def set_answer(self, model: str, answer: Answer) -> None:
        """Fixed answer (text or callable(body) -> text) for a model; model "*" matches any."""
        with self._lock:
            self._answers[model] = answer

    def script(self, model: str, behaviours: list[str] | tuple[str, ...]) -> None:
        """Queue behaviours for a model (FIFO, one per request); model "*" is used by any
        model whose own queue is empty."""
        for b in behaviours:
            validate_behaviour(b)
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(behaviours)

    def pending(self, model: str) -> list[str]:
        """Behaviours still queued for a model."""
        with self._lock:
            return list(self._scripts.get(model, ()))

    # ---- internals used by the handler ----------------------------------------------------

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight = max(0, self.in_flight - 1)

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._requests.append(entry)

    def reset_quota(self) -> None:
        """Start `rate_limit` over: an empty window and no 429s counted."""
        with self._lock:
            self._accepted.clear()
            self.throttled = 0

    def _take_quota(self) -> tuple[float | None, dict[str, str]]:
        """(seconds until a request is allowed again when this one is refused, else None;
        x-ratelimit headers) for a request arriving now under `rate_limit`."""
        if self.rate_limit is None:
            return None, {}
        limit, window = self.rate_limit
        now = time.monotonic()
        with self._lock:
            while self._accepted and self._accepted[0] <= now - window:
                self._accepted.popleft()
            refused = len(self._accepted) >= limit
            if refused:
                self.throttled += 1
            else:
                self._accepted.append(now)
            # as OpenAI: reset is the time until the whole quota is back
            reset = self._accepted[-1] + window - now if self._accepted else 0.0
            headers = {
                "x-ratelimit-limit-requests": str(limit),
                "x-ratelimit-remaining-requests": str(limit - len(self._accepted)),
                "x-ratelimit-reset-requests": f"{max(0.0, reset):.3f}s",
            }
            freed = self._accepted[0] + window - now if refused else None
        return (max(0.001, freed) if freed is not None else None), headers

    def _next_behaviour(self, model: str) -> str:
        with self._lock:
            for key in (model, "*"):
                queue = self._scripts.get(key)
                if queue:
                    return queue.popleft()
        return "ok"

    def _answer_for(self, model: str, body: dict[str, Any]) -> str:
        with self._lock:
            answer = self._answers.get(model, self._answers.get("*"))
        if answer is None:
            return echo_answer(body)
        return answer(body) if callable(answer) else answer

    def _known_models(self) -> set[str]:
        with self._lock:
            names = set(self._answers) | set(self._scripts)
        return names - {"*"}

    def _alive(self, generation: int) -> bool:
        return not self._stop.is_set() and generation == self._generation

    def _sleep(self, seconds: float, generation: int) -> bool:
        """Sleep in small steps; False when the server stopped or was reset meanwhile."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if not self._alive(generation):
                return False
            time.sleep(min(0.02, left))
        return self._alive(generation)

    def _new_id(self) -> str:
        with self._lock:
            self._ids += 1
            return f"chatcmpl-fake{self._ids:06d}"

    def _id_headers(self) -> dict[str, str]:
        with self._lock:
            return {"x-request-id": f"req_fake{self._ids:06d}"}

    def _completion(self, body: dict[str, Any], model: str, answer: str) -> dict[str, Any]:
        message = {"role": "assistant", "content": answer, "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        return {
            "id": self._new_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": self._usage(body, answer),
        }

    def _with_fields(self, obj: dict[str, Any], key: str) -> dict[str, Any]:
        """obj with `fields` put in (a hostile server's own fields); obj itself when none."""
        if not self.fields:
            return obj
        out = dict(obj)
        for name in ("model", "id", "system_fingerprint"):
            if name in self.fields:
                out[name] = self.fields[name].replace("{key}", key)
        if "finish_reason" in self.fields:
            out["choices"] = [
                {**c, "finish_reason": self.fields["finish_reason"].replace("{key}", key)}
                for c in out.get("choices") or []
            ]
        return out

    def _bounded(self, body: dict[str, Any], answer: str) -> str:
        """With tokens_per_char set, honour max_tokens as a real server does (cut the answer)."""
        limit = body.get("max_tokens")
        if self.tokens_per_char and isinstance(limit, int):
            return answer[: int(limit / self.tokens_per_char)]
        return answer

    def _usage(self, body: dict[str, Any], answer: str) -> dict[str, int]:
        """The usage reported for this answer, logged on the request entry as "usage"."""
        usage = dict(self.usage_override or usage_for(body, answer, self.tokens_per_char))
        with self._lock:
            for entry in reversed(self._requests):
                if entry["body"] is body:
                    entry["usage"] = usage
                    break
        return usage


# ---- a model that answers right with a set probability, reproducibly (issue 26) --------------


class ChanceAnswer:
    """An answer for `set_answer`: `right` with probability `chance`, else `wrong`.

    The n-th request carrying the same prompt always gets the same outcome for the same seed,
    whatever order concurrent requests arrive in, so a case's k of n is reproducible. With
    `chance=None` each prompt sets its own: `chance=0.5` anywhere in its last user message
    (none: 1.0). `calls` counts the requests answered.
    """

    def __init__(
        self, chance: float | None = None, *, seed: int = 0, right: str = "right",
        wrong: str = "wrong",
    ) -> None:  # fmt: skip
        self.chance, self.seed, self.right, self.wrong = chance, seed, right, wrong
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()
        self.calls = 0

    def chance_for(self, prompt: str) -> float:
        if self.chance is not None:
            return self.chance
        m = re.search(r"chance=([0-9.]+)", prompt)
        return float(m.group(1)) if m else 1.0

    def outcome(self, prompt: str, n: int) -> bool:
        """Whether the n-th (0-based) request with this prompt is answered right."""
        import hashlib

        digest = hashlib.sha256(f"{self.seed}/{n}/{prompt}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.chance_for(prompt)

    def __call__(self, body: dict[str, Any]) -> str:
        prompt = echo_answer(body)
        with self._lock:
            n = self._seen.get(prompt, 0)
            self._seen[prompt] = n + 1
            self.calls += 1
        return self.right if self.outcome(prompt, n) else self.wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    server = FakeOpenAI(args.host, args.port).start()
    server.latency = args.latency
    print(server.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
