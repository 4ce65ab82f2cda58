"""`aicli serve` as a process: refusing to start, draining on SIGTERM, several workers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fake_openai import FakeOpenAI
from tests.helpers import REPO_ROOT, TEST_KEY, TEST_KEY_ENV, run_aicli
from tests.serve_process import ServeProcess, base_env
from tests.test_serve import write_config


def test_public_host_without_tokens_exits_2(make_config: Any) -> None:
    make_config()
    done = run_aicli("serve", "--host", "0.0.0.0", "--port", "1")
    assert done.exit_code == 2, done
    assert "without authentication" in done.stderr and "AICLI_SERVE_TOKENS" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    # read by whoever typed it: the usual one line, not a JSON log object...
    assert done.stderr.startswith("aicli: error: refusing to listen on 0.0.0.0"), done
    # ...unless JSON was asked for
    done = run_aicli("serve", "--host", "0.0.0.0", "--port", "1", "--log-format", "json")
    assert done.exit_code == 2, done
    line = json.loads(done.stderr.strip())
    assert line["level"] == "error" and "without authentication" in line["message"]


def test_without_the_extra_serve_exits_2_naming_it(make_config: Any) -> None:
    make_config()
    code = (
        "import sys; sys.modules['fastapi'] = None; sys.argv = ['aicli', 'serve'];"
        " from aicli.cli.app import main; main()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**base_env(Path.cwd() / "home"), "PYTHONPATH": str(REPO_ROOT)},
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'aicli-prod[serve]'" in proc.stderr and "fastapi" in proc.stderr


def test_bad_serve_config_is_exit_2(make_config: Any) -> None:
    make_config(serve={"max_concurrency": "many"})
    done = run_aicli("serve")
    assert done.exit_code == 2 and "serve.max_concurrency" in done.stderr, done
    make_config(serve={"tokens_env": "not a name!"})
    done = run_aicli("serve")
    assert done.exit_code == 2 and "serve.tokens_env" in done.stderr, done


def test_sigterm_drains_requests_and_streams_then_exits_0(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "cfg", server.base_url, serve={"shutdown_timeout": 20})
    env = base_env(tmp_path / "home")
    env[TEST_KEY_ENV] = TEST_KEY
    env["TMPDIR"] = str(tmp_path / "tmp")  # where the metrics directory goes
    (tmp_path / "tmp").mkdir()
    svc = ServeProcess(config, env, log_path=tmp_path / "serve.log").start()
    assert list((tmp_path / "tmp").iterdir())  # the private multiprocess directory
    server.set_answer("*", "a slow but complete answer")
    server.latency = 1.5
    outcomes: dict[str, Any] = {}

    def plain() -> None:
        resp = httpx.post(f"{svc.url}/generate", json={"prompt": "slow one"}, timeout=30)
        outcomes["plain"] = (resp.status_code, resp.json().get("content"))

    def stream() -> None:
        body = {
            "model": "economy",
            "messages": [{"role": "user", "content": "slow stream"}],
            "stream": True,
        }
        with httpx.stream("POST", f"{svc.url}/v1/chat/completions", json=body, timeout=30) as r:
            lines = [line for line in r.iter_lines() if line]
        outcomes["stream"] = (r.status_code, lines[-1])

    threads = [threading.Thread(target=plain), threading.Thread(target=stream)]
    for t in threads:
        t.start()
    server.wait_for_requests(2)
    assert svc.proc is not None
    svc.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(30)
    assert svc.proc.wait(30) == 0, svc.log()
    assert outcomes["plain"] == (200, "a slow but complete answer")
    assert outcomes["stream"] == (200, "data: [DONE]")
    assert not list((tmp_path / "tmp").iterdir())  # cleaned up
    statuses = [e["status"] for e in svc.request_lines() if e["path"] != "/health/live"]
    assert statuses == [200, 200]


def test_two_workers_share_cache_and_sum_metrics(server: FakeOpenAI, tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg", server.base_url)
    env = base_env(tmp_path / "home")
    env[TEST_KEY_ENV] = TEST_KEY
    svc = ServeProcess(config, env, workers=2, log_path=tmp_path / "serve.log").start()
    try:
        prompt = f"shared {uuid.uuid4().hex}"
        answers = []
        for _ in range(6):  # new connections: the kernel spreads them over both workers
            with httpx.Client(base_url=svc.url, timeout=30) as client:
                answers.append(client.post("/generate", json={"prompt": prompt}).json())
        assert [a["cached"] for a in answers] == [False] + [True] * 5
        assert len(server.requests) == 1
        text = httpx.get(f"{svc.url}/metrics").text
        samples = {
            (s.name, json.dumps(s.labels, sort_keys=True)): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        key = json.dumps(
            {"endpoint": "generate", "status": "200", "tier": "standard"}, sort_keys=True
        )
        assert samples[("aicli_requests_total", key)] == 6
        assert samples[("aicli_cache_hits_total", json.dumps({"tier": "standard"}))] == 5
    finally:
        assert svc.stop() == 0, svc.log()


def test_sigterm_with_two_workers_drains_a_slow_request_then_exits_0(
    server: FakeOpenAI, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "cfg", server.base_url, serve={"shutdown_timeout": 20})
    env = base_env(tmp_path / "home")
    env[TEST_KEY_ENV] = TEST_KEY
    svc = ServeProcess(config, env, workers=2, log_path=tmp_path / "serve.log").start()
    server.latency = 1.5
    outcome: dict[str, Any] = {}

    def slow() -> None:
        resp = httpx.post(f"{svc.url}/generate", json={"prompt": "slow, two workers"}, timeout=30)
        outcome["slow"] = (resp.status_code, resp.json().get("content"))

    thread = threading.Thread(target=slow)
    thread.start()
    server.wait_for_requests(1)
    assert svc.proc is not None
    svc.proc.send_signal(signal.SIGTERM)  # to the supervisor, which passes it to its workers
    thread.join(30)
    assert svc.proc.wait(30) == 0, svc.log()
    assert outcome["slow"] == (200, "slow, two workers")
    assert "Traceback" not in svc.log()
    with pytest.raises(httpx.ConnectError):  # nothing listens any more
        httpx.get(f"{svc.url}/health/live", timeout=2)
