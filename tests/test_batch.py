"""test-prompts --batch over the test server's Batch API: half price, resumable, never twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fake_openai import FakeOpenAI
from tests.helpers import child_env, run_aicli

FAST = {"AICLI_BATCH_POLL_SECONDS": "0.05"}
SUITE = """
suite: batchy
prompt: "Say {{ word }}"
cases:
  - name: one
    vars: {word: alpha}
    assert: [{type: icontains, value: alpha}]
  - name: two
    vars: {word: beta}
    assert: [{type: icontains, value: beta}]
  - name: three
    vars: {word: gamma}
    assert: [{type: icontains, value: gamma}]
"""
GRADED = """
suite: graded
prompt: "Write about {{ word }}"
cases:
  - name: g1
    vars: {word: alpha}
    assert: [{type: llm-rubric, value: "mentions alpha"}]
  - name: g2
    vars: {word: beta}
    assert: [{type: llm-rubric, value: "mentions beta"}]
"""


@pytest.fixture
def batch_config(make_config: Any) -> Path:
    return make_config(  # type: ignore[no-any-return]
        providers={"fake": {"batch": True}},
        tiers={"grader": {"model": "grader-model", "provider": "fake",
                          "price": {"input_per_1m": 1.0, "output_per_1m": 2.0}}},
    )  # fmt: skip


def suite(text: str = SUITE, name: str = "s.test.yaml") -> Path:
    path = Path(name)
    path.write_text(text, encoding="utf-8")
    return path


def report(path: str = "r.json") -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def chat_requests(server: FakeOpenAI, *, batch: bool) -> list[dict[str, Any]]:
    return [r for r in server.requests if bool(r.get("batch")) == batch]


def test_suite_answered_through_one_batch_at_half_price(
    server: FakeOpenAI, batch_config: Path
) -> None:
    suite()
    done = run_aicli("test-prompts", "s.test.yaml", "--batch", "-o", "r.json", env=FAST)
    assert done.exit_code == 0, done
    assert done.stdout.strip().splitlines()[-1] == "3 passed, 0 failed"
    assert server.batch.uploads == 1 and server.batch.creates == 1
    assert len(chat_requests(server, batch=True)) == 3
    assert chat_requests(server, batch=False) == []
    lines = server.batch.in_batches()
    assert all(line["url"] == "/v1/chat/completions" for line in lines)
    assert len({line["custom_id"] for line in lines}) == 3
    data = report()
    direct = sum(
        (u["prompt_tokens"] * 0.15 + u["completion_tokens"] * 0.60) / 1e6
        for u in (r["usage"] for r in server.requests)
    )
    assert data["summary"]["cost_usd"] == pytest.approx(direct / 2, abs=1e-9)
    assert data["summary"]["batch_saved_usd"] == pytest.approx(direct / 2, abs=1e-9)
    assert "batch saved" in done.stdout
    # the state file beside the cache names the batch
    states = list((Path(os.environ["XDG_CACHE_HOME"]) / "aicli" / "batches").glob("*.json"))
    assert len(states) == 1
    state = json.loads(states[0].read_text())
    assert [b["status"] for b in state["batches"]] == ["completed"]

    # A second run is answered from the cache: no batch, no request.
    server.reset()
    again = run_aicli("test-prompts", "s.test.yaml", "--batch", "-o", "r.json", env=FAST)
    assert again.exit_code == 0, again
    assert server.requests == [] and server.batch.creates == 0
    assert report()["summary"]["cache_hits"] == 3


def test_grader_calls_go_in_a_second_batch(server: FakeOpenAI, batch_config: Path) -> None:
    suite(GRADED, "g.test.yaml")
    server.set_answer("grader-model", '{"pass": true, "score": 1, "reason": "ok"}')
    done = run_aicli("test-prompts", "g.test.yaml", "--batch", "-o", "r.json", env=FAST)
    assert done.exit_code == 0, done
    assert server.batch.creates == 2
    batches = list(server.batch.batches.values())
    assert {line["body"]["model"] for line in batches[0]["_lines"]} == {"standard-model"}
    assert {line["body"]["model"] for line in batches[1]["_lines"]} == {"grader-model"}
    assert chat_requests(server, batch=False) == []
    assert report()["summary"]["batch_saved_usd"] > 0


def test_failed_and_expired_requests_take_the_usual_path(
    server: FakeOpenAI, batch_config: Path
) -> None:
    suite()
    server.batch.expire = True  # half the lines expire
    done = run_aicli("test-prompts", "s.test.yaml", "--batch", "-o", "r.json", env=FAST)
    assert done.exit_code == 0, done
    batched = chat_requests(server, batch=True)
    direct = chat_requests(server, batch=False)
    assert len(batched) == 1 and len(direct) == 2  # 3 lines, 3 // 2 = 1 answered
    results = report()["results"]
    saved = sorted(r["batch_saved_usd"] > 0 for r in results)
    assert saved == [False, False, True]


def test_batch_only_makes_unanswered_requests_errors(
    server: FakeOpenAI, batch_config: Path
) -> None:
    suite()
    server.batch.fail_batch = True
    done = run_aicli(
        "test-prompts", "s.test.yaml", "--batch", "--batch-only", "-o", "r.json", env=FAST
    )
    assert done.exit_code == 1, done
    assert chat_requests(server, batch=False) == []
    kinds = {r["reason_kind"] for r in report()["results"]}
    assert kinds == {"api_error"}
    assert "the batch did not answer" in done.stdout + done.stderr


def test_a_whole_failed_batch_falls_back_to_direct_calls(
    server: FakeOpenAI, batch_config: Path
) -> None:
    suite()
    server.batch.fail_batch = True
    done = run_aicli("test-prompts", "s.test.yaml", "--batch", "-o", "r.json", env=FAST)
    assert done.exit_code == 0, done
    assert len(chat_requests(server, batch=False)) == 3
    assert report()["summary"]["batch_saved_usd"] == 0


def test_max_cost_refuses_before_submitting(server: FakeOpenAI, batch_config: Path) -> None:
    suite()
    done = run_aicli("test-prompts", "s.test.yaml", "--batch", "--max-cost", "0.0000001", env=FAST)
    assert done.exit_code == 4, done
    assert server.batch.uploads == 0 and server.batch.creates == 0
    assert server.requests == []


def test_bad_and_foreign_result_lines_lose_nothing_that_parsed(
    server: FakeOpenAI, batch_config: Path
) -> None:
    case = (
        "  - name: extra{0}\n    vars: {{word: w{0}}}\n"
        "    assert: [{{type: icontains, value: w{0}}}]\n"
    )
    text = SUITE + "".join(case.format(i) for i in range(5))
    suite(text)
    server.batch.bad_line = True
    server.batch.foreign_line = True
    done = run_aicli("test-prompts", "s.test.yaml", "--batch", "-o", "r.json", env=FAST)
    assert done.exit_code == 0, done
    assert "unreadable result line" in done.stderr
    assert "not sent" in done.stderr or "it was not sent" in done.stderr
    direct = chat_requests(server, batch=False)
    assert len(direct) == 1  # only the cut last line goes again
    assert len(chat_requests(server, batch=True)) == 8


def test_killed_while_polling_resumes_without_submitting_twice(
    server: FakeOpenAI, batch_config: Path
) -> None:
    suite()
    server.batch.hold = True
    proc = subprocess.Popen(
        [sys.executable, "-m", "aicli", "test-prompts", "s.test.yaml", "--batch"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=child_env(FAST), cwd=os.getcwd(),
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while server.batch.creates == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.batch.creates == 1
    time.sleep(0.3)  # polling now
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    server.batch.hold = False
    done = run_aicli("test-prompts", "s.test.yaml", "--batch", "-o", "r.json", env=FAST)
    assert done.exit_code == 0, done
    assert server.batch.creates == 1 and server.batch.uploads == 1
    lines = server.batch.in_batches()
    assert len(lines) == 3
    assert len(chat_requests(server, batch=True)) == 3
    assert chat_requests(server, batch=False) == []


def test_tiers_without_batch_run_normally_in_the_same_invocation(
    server: FakeOpenAI, make_config: Any
) -> None:
    make_config(providers={"plain": {"base_url": server.base_url,
                                     "api_key_env": "AICLI_TEST_KEY"},
                           "fake": {"batch": True}},
                tiers={"economy": {"provider": "plain"}})  # fmt: skip
    suite()
    done = run_aicli(
        "test-prompts", "s.test.yaml", "--batch", "-t", "standard", "-t", "economy",
        "-o", "r.json", env=FAST,
    )  # fmt: skip
    assert done.exit_code == 0, done
    assert {r["model"] for r in chat_requests(server, batch=True)} == {"standard-model"}
    assert {r["model"] for r in chat_requests(server, batch=False)} == {"economy-model"}


def test_batch_flags_need_batch(batch_config: Path) -> None:
    suite()
    done = run_aicli("test-prompts", "s.test.yaml", "--batch-only")
    assert done.exit_code == 2
    assert "need --batch" in done.stderr
    bad = run_aicli("test-prompts", "s.test.yaml", "--batch", "--batch-timeout", "soon")
    assert bad.exit_code == 2 and "--batch-timeout" in bad.stderr


def test_batch_list_and_cancel(server: FakeOpenAI, batch_config: Path) -> None:
    suite()
    server.batch.hold = True
    done = run_aicli("test-prompts", "s.test.yaml", "--batch", "--batch-timeout", "1s", env=FAST)
    # the held batch was cancelled at the timeout; its requests took the usual path
    assert done.exit_code == 0, done
    assert "--batch-timeout passed" in done.stderr
    assert len(chat_requests(server, batch=False)) == 3
    listed = run_aicli("batch", "list", "--json")
    assert listed.exit_code == 0, listed
    rows = json.loads(listed.stdout)["batches"]
    assert [(r["tier"], r["status"], r["requests"]) for r in rows] == [("standard", "cancelled", 3)]

    # a second run's batch, held, then cancelled by id from another process
    Path("s.test.yaml").write_text(SUITE.replace("alpha", "delta"), encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aicli", "test-prompts", "s.test.yaml", "--batch"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=child_env(FAST), cwd=os.getcwd(),
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while server.batch.creates < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    text = run_aicli("batch", "list")
    assert "in_progress" in text.stdout, text
    new_id = next(b for b in server.batch.batches if b != rows[0]["id"])
    stopped = run_aicli("batch", "cancel", new_id)
    assert stopped.exit_code == 0, stopped
    assert f"{new_id}  cancelled" in stopped.stdout
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err  # the cancelled requests went the usual path
    assert run_aicli("batch", "cancel", "nope").exit_code == 2
    assert run_aicli("batch", "cancel").exit_code == 2


def test_max_cost_submits_only_what_fits_under_the_cap(
    server: FakeOpenAI, batch_config: Path
) -> None:
    suite()
    # worst case of one call at the batch price: (prompt + 2000 tokens) at $0.30/1M out, half
    # of standard's $0.60: ~$0.0006; a cap of $0.0013 holds two of the three
    done = run_aicli(
        "test-prompts", "s.test.yaml", "--batch", "--max-cost", "0.0013", "-o", "r.json",
        env=FAST,
    )  # fmt: skip
    assert done.exit_code == 4, done
    assert server.batch.creates == 1
    assert len(server.batch.in_batches()) == 2
    assert chat_requests(server, batch=False) == []
    statuses = sorted(r["status"] for r in report()["results"])
    assert statuses == ["passed", "passed", "skipped"]


def test_a_failed_line_takes_the_usual_path(server: FakeOpenAI, batch_config: Path) -> None:
    suite()
    server.script("standard-model", ["ok", "500", "ok"])  # the batch's second line fails
    done = run_aicli("test-prompts", "s.test.yaml", "--batch", "-o", "r.json", env=FAST)
    assert done.exit_code == 0, done
    assert len(chat_requests(server, batch=True)) == 3
    assert len(chat_requests(server, batch=False)) == 1


def test_batch_answers_are_checked_like_any_answer(server: FakeOpenAI, batch_config: Path) -> None:
    from tests.helpers import TEST_KEY

    suite()
    # a hostile batch result: a lone surrogate in the answer, the key and escapes in `model`
    server.set_answer("standard-model", "alpha beta gamma \ud800 end")
    server.fields = {"model": "evil\x1b[31m\nmodel{key}"}
    done = run_aicli("test-prompts", "s.test.yaml", "--batch", "-o", "r.json", env=FAST)
    assert done.exit_code == 0, done
    assert TEST_KEY not in done.stdout + done.stderr
    data = Path("r.json").read_text(encoding="utf-8")
    assert TEST_KEY not in data and "\\u001b" not in data and "\x1b" not in data
    results = json.loads(data)["results"]
    assert all("\ufffd" in r["output"] for r in results)
    assert all(r["model_used"].startswith("evil") for r in results)
