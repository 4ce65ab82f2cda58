"""Text from a hostile server reaches the terminal and reports as one clean line, never with the
key's tail in any form: a small fault server answers what the OpenAI-compatible one cannot."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import TEST_KEY, TEST_KEY_ENV, run_aicli

TAIL = TEST_KEY[-8:]  # "7890abcd"
HOSTILE = (
    f"Invalid key ending in '{TAIL.upper()}' (sk-...{TAIL}, ****{TAIL[-6:]}, {TEST_KEY[8:24]})"
    "\x1b]0;pwned title\x07\x1b[2J\x1b[31mred\x9b1m\r\naicli: error: forged second line"
    "\u202eevil\u2028more\ttab\x00nul"
)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        status, body = self.server.reply  # type: ignore[attr-defined]
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def hostile(make_config: Any) -> Iterator[Any]:
    """A server that answers every request with `.reply = (status, body)`; aicli points at it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.reply = (400, {"error": {"message": HOSTILE, "type": "invalid_request_error"}})  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    make_config(
        providers={"bad": {"base_url": url, "api_key_env": TEST_KEY_ENV}},
        tiers={"standard": {"provider": "bad", "fallback": []}},
    )
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _clean(text: str) -> None:
    """No key tail in any form, no escape or control character but newlines between lines."""
    low = text.lower()
    assert TAIL not in low and TAIL[-6:] not in low and TEST_KEY[8:24].lower() not in low
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e\u2028]", text), repr(text)
    assert "pwned" not in text or "\x1b" not in text


@pytest.mark.parametrize("status", [400, 500])
def test_a_hostile_error_body_is_one_clean_line(hostile: Any, status: int) -> None:
    hostile.reply = (status, {"error": {"message": HOSTILE}})
    for args in ((), ("-v",), ("--debug",)):
        done = run_aicli("generate", "--no-cache", *args, "hello")
        assert done.exit_code == 3, done
        _clean(done.stdout + done.stderr)
        errors = [line for line in done.stderr.splitlines() if line.startswith("aicli: error:")]
        assert len(errors) == 1 and "forged second line" in errors[0], done.stderr
        assert "Invalid key ending in" in errors[0]


def _answer(content: str, model: str = "m") -> dict[str, Any]:
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def test_a_hostile_model_name_in_the_verbose_summary(hostile: Any) -> None:
    hostile.reply = (200, _answer("hi", model="m\x1b]0;pwned\x07\x1b[2J\nforged line"))
    done = run_aicli("generate", "-v", "hello")
    assert done.exit_code == 0, done
    assert done.stdout == "hi\n"
    assert done.stderr.count("\n") == 1 and "forged line" in done.stderr
    _clean(done.stderr)


def _suite() -> Path:
    suite = Path("prompts") / "hostile.test.yaml"
    suite.parent.mkdir(exist_ok=True)
    suite.write_text(
        "suite: hostile\nprompt: 'say {{ word }}'\ncases:\n"
        "  - name: one\n    vars: {word: hi}\n    assert:\n      - {type: contains, value: hi}\n"
    )
    return suite


def test_reports_carry_no_key_tail_nor_raw_server_text(hostile: Any, tmp_path: Path) -> None:
    suite = _suite()
    outs = [tmp_path / f"report.{ext}" for ext in ("json", "xml", "html", "jsonl")]
    args = [a for out in outs for a in ("-o", str(out))]
    done = run_aicli("test-prompts", "--no-cache", *args, str(suite))
    assert done.exit_code == 1, done
    assert "api_error" in done.stdout
    _clean(done.stdout + done.stderr)
    for out in outs:
        text = out.read_text()
        assert TAIL not in text.lower() and TAIL[-6:] not in text.lower(), out
        assert "\x1b" not in text and "\\u001b" not in text, out


def test_an_answer_excerpt_in_the_terminal_report_is_one_printable_line(hostile: Any) -> None:
    hostile.reply = (200, _answer("no\x1b]0;pwned\x07\x1b[2J\u202eevil\u2028\naicli: forged"))
    done = run_aicli("test-prompts", "--no-cache", str(_suite()))
    assert done.exit_code == 1, done
    assert "forged" in done.stdout
    _clean(done.stdout + done.stderr)


def test_a_judges_reason_is_one_clean_line_without_the_key_tail(
    hostile: Any, tmp_path: Path
) -> None:
    verdict = {"pass": False, "score": 0, "reason": f"rude; key ...{TAIL}\x1b[2J\naicli: forged"}
    hostile.reply = (200, _answer(json.dumps(verdict)))  # the answer and the judge's verdict
    suite = Path("prompts") / "judged.test.yaml"
    suite.parent.mkdir(exist_ok=True)
    suite.write_text(
        "suite: judged\nprompt: hello\ncases:\n"
        "  - name: polite\n    assert:\n      - {type: llm-rubric, value: is polite}\n"
    )
    report = tmp_path / "report.json"
    done = run_aicli("test-prompts", "--no-cache", "-o", str(report), str(suite))
    assert done.exit_code == 1, done
    assert "rude" in done.stdout and "forged" in done.stdout
    _clean(done.stdout + done.stderr)
    (result,) = json.loads(report.read_text())["results"]
    (judged,) = result["assertions"]
    assert "rude" in judged["reason"] and "forged" in judged["reason"]
    _clean(judged["reason"])
