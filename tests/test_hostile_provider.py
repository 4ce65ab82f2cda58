"""A provider that answers a lone surrogate, echoes the key in `model`, or puts escapes in every
field: the answer is kept (U+FFFD in the surrogate's place), printed, cached and returned, and no
key or control character reaches `--json`, the cache, a recording, a report or a client."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.fake_openai import FakeOpenAI
from tests.helpers import TEST_KEY, TEST_KEY_ENV
from tests.serve_process import ServeProcess, base_env
from tests.test_full_disk import _fill, tmpfs  # noqa: F401 (a fixture)
from tests.test_serve import write_config

EVIL_MODEL = "evil\x1b[31m\nmodel\x1b]0;TITLE\x07\u202e{key}"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _no_key(text: str) -> None:
    low = text.lower()
    assert TEST_KEY.lower() not in low and TEST_KEY[-8:].lower() not in low, text


def _cache_text(folder: Path) -> str:
    """Every byte under the cache folder, as text (the SQLite databases and value files)."""
    return "".join(
        p.read_bytes().decode("utf-8", "replace") for p in folder.rglob("*") if p.is_file()
    )


@pytest.mark.parametrize("stream", ["--no-stream", "--stream"])
def test_a_lone_surrogate_in_an_answer_is_kept_as_u_fffd(
    run_aicli: Any, server: FakeOpenAI, make_config: Any, isolate: Any, stream: str
) -> None:
    make_config()
    server.set_answer("*", "bad \ud800 answer")
    done = run_aicli("generate", stream, "x")
    assert done.exit_code == 0, done
    assert done.stdout == "bad \ufffd answer\n" and done.stderr == ""
    again = run_aicli("generate", "--json", "x")  # from the cache, no second call
    assert again.exit_code == 0, again
    assert json.loads(again.stdout)["content"] == "bad \ufffd answer"
    assert json.loads(again.stdout)["cached"] is True
    assert len(server.requests) == 1


def test_a_key_and_escapes_in_the_model_field_reach_nobody(
    run_aicli: Any, server: FakeOpenAI, make_config: Any, isolate: Any, tmp_path: Path
) -> None:
    make_config()
    server.fields = {"model": EVIL_MODEL, "id": "id-{key}", "finish_reason": "\x1b[2J{key}"}
    record = tmp_path / "rec.jsonl"
    done = run_aicli("generate", "--json", "hello")
    assert done.exit_code == 0, done
    model = json.loads(done.stdout)["model_used"]
    assert model.startswith("evil model") and not CONTROL.search(model), model
    _no_key(done.stdout + done.stderr)
    _no_key(_cache_text(isolate.cache_dir))
    streamed = run_aicli("generate", "--stream", "--no-cache", "-v", "hi")
    assert streamed.exit_code == 0 and streamed.stdout == "hi\n", streamed
    _no_key(streamed.stderr)
    assert not CONTROL.search(streamed.stderr.replace("\n", "")), streamed.stderr
    suite = Path("prompts") / "m.test.yaml"
    suite.parent.mkdir(exist_ok=True)
    suite.write_text(
        "suite: m\nprompt: hi\ncases:\n  - name: one\n    assert: [{type: equals, value: no}]\n"
    )
    report = tmp_path / "r.json"
    ran = run_aicli("test-prompts", "--record", str(record), "-o", str(report), str(suite))
    assert ran.exit_code == 1, ran
    for text in (ran.stdout + ran.stderr, record.read_text(), report.read_text()):
        _no_key(text)
        assert "\\u001b" not in text and "\x1b" not in text


def test_a_key_in_the_answer_itself_is_hidden_even_split_across_stream_chunks(
    run_aicli: Any, server: FakeOpenAI, make_config: Any
) -> None:
    make_config()
    server.set_answer("*", lambda body: f"the key is {TEST_KEY}, see")
    server.chunk_size = 3  # the key arrives in many pieces
    for stream in ("--stream", "--no-stream"):
        done = run_aicli("generate", "--no-cache", stream, "x")
        assert done.exit_code == 0, done
        assert done.stdout == "the key is ***, see\n", done


def test_an_error_message_echoing_the_key_with_escapes_is_one_clean_line(
    run_aicli: Any, server: FakeOpenAI, make_config: Any
) -> None:
    make_config(tiers={"standard": {"fallback": []}})
    server.fields = {"error": "no\x1b[2J\n::error::pwned \ud800 {key}"}
    server.script("*", ["400"])
    done = run_aicli("generate", "--no-cache", "x")
    assert done.exit_code == 3, done
    _no_key(done.stderr)
    assert not CONTROL.search(done.stderr.replace("\n", ""))
    assert not any(line.lstrip().startswith("::") for line in done.stderr.splitlines())
    assert "Traceback" not in done.stderr and "this is a bug" not in done.stderr


# ---- aicli serve --------------------------------------------------------------------------


@pytest.fixture
def svc(server: FakeOpenAI, tmp_path: Path) -> Iterator[ServeProcess]:
    config = write_config(tmp_path / "cfg", server.base_url)
    env = base_env(tmp_path / "home")
    env[TEST_KEY_ENV] = TEST_KEY
    proc = ServeProcess(config, env, log_path=tmp_path / "serve.log").start()
    yield proc
    assert proc.stop() == 0, proc.log()


def test_serve_returns_a_surrogate_answer_and_never_the_key_in_model(
    svc: ServeProcess, server: FakeOpenAI
) -> None:
    server.set_answer("*", "bad \ud800 answer")
    server.fields = {"model": EVIL_MODEL}
    client = openai.OpenAI(base_url=f"{svc.url}/v1", api_key="unused", max_retries=0)
    chat = client.chat.completions.create(
        model="standard", messages=[{"role": "user", "content": "plain"}]
    )
    assert chat.choices[0].message.content == "bad \ufffd answer"
    assert not CONTROL.search(chat.model)
    _no_key(chat.model_dump_json())
    pieces, models = [], set()
    for chunk in client.chat.completions.create(
        model="standard", messages=[{"role": "user", "content": "streamed"}], stream=True
    ):
        models.add(chunk.model)
        pieces += [c.delta.content or "" for c in chunk.choices]
    assert "".join(pieces) == "bad \ufffd answer"  # the SDK saw [DONE]: no error raised
    _no_key(" ".join(models))
    with httpx.Client(base_url=svc.url, timeout=30) as http:
        resp = http.post("/generate", json={"prompt": "again", "tier": "standard"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["content"] == "bad \ufffd answer"
    _no_key(resp.text + svc.log())


# ---- a full disk with a little room left ------------------------------------------------


def test_a_paid_answer_is_printed_when_the_cache_disk_has_a_little_room_left(
    run_aicli: Any,
    server: FakeOpenAI,
    make_config: Any,
    isolate: Any,
    tmpfs: Any,  # noqa: F811 (the fixture imported above)
) -> None:
    make_config()
    small = tmpfs(isolate.tmp / "small", 1024)
    env = {"AICLI_CACHE_DIR": str(small / "cache")}
    assert run_aicli("generate", "first", env=env).exit_code == 0  # the databases exist
    _fill(small)
    filler = small / "filler"
    os.truncate(filler, filler.stat().st_size - 256 * 1024)  # 256 KiB free
    answer = "a" * 400_000
    server.set_answer("*", answer)
    server.chunk_size = 8192  # streamed well within timeout_seconds
    for i, args in enumerate((("--no-stream",), ("--stream",), ("--json",))):
        done = run_aicli("generate", *args, f"big {i}", env=env)
        assert done.exit_code == 0, done
        assert answer in done.stdout
        assert "carrying on without the cache" in done.stderr and "error:" not in done.stderr
