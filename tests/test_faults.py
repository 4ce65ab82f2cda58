"""Hard faults through the CLI: broken streams, dripping servers, empty answers, files that
collide, SIGTERM and torn recordings (issue 9). The test server scripts each fault."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_prompts.helpers import last_line, many_cases, write
from tests.helpers import REPO_ROOT

# --- a stream that breaks after printing part of the answer -----------------------------------


@pytest.mark.parametrize("fault", ["stream-junk", "stream-cut"])
def test_a_broken_stream_after_output_is_exit_3_and_never_a_second_answer(
    cli: Any, server: Any, make_config: Any, fault: str
) -> None:
    make_config()
    server.script("standard-model", [fault])
    result = cli("generate", "--stream", "a long answer that breaks off midway")
    assert result.exit_code == 3, result
    assert result.stdout == "a long a\n"  # the two chunks that arrived, then the error line
    assert "broke off after part of the answer was printed" in result.stderr
    assert [r["model"] for r in server.requests] == ["standard-model"]  # no fallback


def test_a_stream_that_breaks_before_any_output_still_falls_back(
    cli: Any, server: Any, make_config: Any
) -> None:
    make_config()
    server.script("standard-model", ["malformed"])  # undecodable from the first event
    result = cli("generate", "--stream", "hello")
    assert result.exit_code == 0, result
    assert result.stdout == "hello\n"
    assert [r["model"] for r in server.requests] == ["standard-model", "economy-model"]


# --- timeout_seconds is a deadline for the whole attempt --------------------------------------


@pytest.mark.parametrize("stream", ["--no-stream", "--stream"])
def test_a_dripping_server_is_cut_off_and_retried_then_falls_back(
    run_aicli: Any, server: Any, make_config: Any, stream: str
) -> None:
    # every read gets a byte within the 1 s timeout; the whole answer would take minutes
    make_config(tiers={"standard": {"timeout_seconds": 1, "max_retries": 1}})
    server.script("standard-model", ["drip:0.25", "drip:0.25"])
    args = ["generate", stream, "-v", "drip " * 20]
    result = run_aicli(*args, timeout=40)  # before the fix: minutes, then TimeoutExpired
    assert result.exit_code == 0, result
    assert result.stdout.strip() == ("drip " * 20).strip()
    # the SDK retries a timed-out request, not a stream whose headers had arrived
    tries = 2 if stream == "--no-stream" else 1
    assert "tier=economy" in result.stderr and f"attempts={tries + 1}" in result.stderr
    assert [r["model"] for r in server.requests] == ["standard-model"] * tries + ["economy-model"]


def test_a_dripping_server_on_the_last_tier_is_exit_3(
    run_aicli: Any, server: Any, make_config: Any
) -> None:
    make_config(tiers={"standard": {"timeout_seconds": 1, "fallback": []}})
    server.script("standard-model", ["drip:0.25"])
    result = run_aicli("generate", "slow " * 20, timeout=30)
    assert result.exit_code == 3, result
    assert "timed out" in result.stderr
    assert result.stdout == ""


# --- empty answers are no answers --------------------------------------------------------------


@pytest.mark.parametrize("fault", ["empty", "null"])
def test_an_empty_or_null_answer_falls_back_then_exit_3(
    cli: Any, server: Any, make_config: Any, fault: str
) -> None:
    make_config()
    server.script("standard-model", [fault])
    result = cli("generate", "--json", "hello")
    assert result.exit_code == 0, result
    data = json.loads(result.stdout)
    assert (data["tier"], data["content"], data["fallback_used"]) == ("economy", "hello", True)

    server.script("standard-model", [fault])
    server.script("economy-model", [fault])
    result = cli("generate", "--no-cache", "hello again")
    assert result.exit_code == 3, result
    assert "returned an empty answer" in result.stderr
    assert result.stdout == ""
    assert cli("cache", "stats", "--json").exit_code == 0


def test_an_empty_answer_is_an_api_error_in_a_suite(
    cli: Any, server: Any, make_config: Any
) -> None:
    make_config(tiers={"standard": {"fallback": []}})
    write("prompts/m.test.yaml", many_cases(2))
    server.script("standard-model", ["empty", "null"])
    result = cli("test-prompts", "-j", "1", "-o", "r.json")
    assert result.exit_code == 1, result
    rows = json.loads(Path("r.json").read_text())["results"]
    assert [(r["status"], r["reason_kind"]) for r in rows] == [("error", "api_error")] * 2
    assert all("empty answer" in r["reason"] for r in rows)


# --- two outputs on one file ------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["-o", "x.jsonl", "--record", "x.jsonl"],
        ["-o", "x.jsonl", "--record", "./x.jsonl"],
        ["-o", "link.jsonl", "--record", "x.jsonl"],  # link.jsonl -> x.jsonl
        ["-o", "r.json", "-o", "sub/../r.json"],
        ["--replay", "x.jsonl", "-o", "hard.jsonl"],  # a hard link to the recording
        ["--record", "aicli.yaml"],  # the config: appending would break it
        ["--record", "prompts/m.test.yaml"],  # a suite of the run
    ],
)
def test_two_outputs_on_one_file_are_exit_2_before_any_call(
    cli: Any, server: Any, make_config: Any, args: list[str]
) -> None:
    make_config()
    write("prompts/m.test.yaml", many_cases(1))
    Path("sub").mkdir()
    Path("link.jsonl").symlink_to("x.jsonl")
    if "--replay" in args:
        Path("x.jsonl").write_text("")
        os.link("x.jsonl", "hard.jsonl")
    files = ["x.jsonl", "aicli.yaml", "prompts/m.test.yaml"]
    before = {f: Path(f).read_bytes() if Path(f).exists() else None for f in files}
    result = cli("test-prompts", *args)
    assert result.exit_code == 2, result
    assert result.stderr.startswith("aicli: error:") and "the same file as" in result.stderr
    assert server.requests == []
    assert {f: Path(f).read_bytes() if Path(f).exists() else None for f in files} == before


# --- torn recordings --------------------------------------------------------------------------


def test_a_recording_torn_by_sigkill_is_appended_to_on_a_fresh_line(
    cli: Any, server: Any, make_config: Any
) -> None:
    make_config()
    write("prompts/m.test.yaml", many_cases(2))
    assert cli("test-prompts", "--record", "rec.jsonl", "-k", "c000").exit_code == 0
    whole = Path("rec.jsonl").read_bytes()
    Path("rec.jsonl").write_bytes(whole + b'{"key": "0123abcd", "tier": "stan')  # killed here
    result = cli("test-prompts", "--record", "rec.jsonl", "-k", "c001", "--no-cache")
    assert result.exit_code == 0, result
    assert "torn" in result.stderr
    lines = Path("rec.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["key"] for line in lines)
    replayed = cli("test-prompts", "--replay", "rec.jsonl")
    assert replayed.exit_code == 0, replayed
    assert last_line(replayed.stdout) == "2 passed, 0 failed"


def test_replay_skips_a_torn_final_line_with_a_warning(
    cli: Any, server: Any, make_config: Any
) -> None:
    make_config()
    write("prompts/m.test.yaml", many_cases(2))
    assert cli("test-prompts", "--record", "rec.jsonl").exit_code == 0
    requests = len(server.requests)
    with open("rec.jsonl", "ab") as fh:
        fh.write(b'{"key": "0123abcd", "content": "half an ans')
    result = cli("test-prompts", "--replay", "rec.jsonl")
    assert result.exit_code == 0, result
    assert last_line(result.stdout) == "2 passed, 0 failed"
    assert "aicli: warning:" in result.stderr and "torn" in result.stderr
    assert len(server.requests) == requests
    # a broken line that is not the last one is still refused: it is not a torn write
    Path("rec.jsonl").write_text("{broken\n" + Path("rec.jsonl").read_text())
    refused = cli("test-prompts", "--replay", "rec.jsonl")
    assert refused.exit_code == 2 and "rec.jsonl:1" in refused.stderr


# --- SIGTERM ends like Ctrl-C ------------------------------------------------------------------


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


@pytest.mark.skipif(os.name != "posix", reason="needs SIGTERM")
def test_sigterm_writes_every_report_marked_interrupted_and_exits_143(
    server: Any, make_config: Any
) -> None:
    make_config(defaults={"timeout_seconds": 30})
    write("prompts/m.test.yaml", many_cases(6))
    server.script("*", ["ok", "ok", "hang", "hang", "hang", "hang"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "aicli", "test-prompts", "-j", "2", "--no-cache",
         "-o", "r.json", "-o", "r.xml", "-o", "r.jsonl", "-o", "r.html"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, env=_child_env(),
    )  # fmt: skip
    try:
        server.wait_for_requests(4, timeout=30)  # two answered, two hanging
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, (stdout, stderr)
    assert "terminated" in stderr and "Traceback" not in stderr
    summary = json.loads(Path("r.json").read_text())["summary"]
    assert summary["interrupted"] is True
    assert (summary["passed"], summary["skipped"]) == (2, 4)
    assert ET.parse("r.xml").getroot().get("interrupted") == "true"
    assert len(Path("r.jsonl").read_text().splitlines()) == 6
    assert "<html" in Path("r.html").read_text()
    assert last_line(stdout) == "2 passed, 0 failed, 4 skipped"


def test_doctor_bounds_a_dripping_endpoint(run_aicli: Any, server: Any, make_config: Any) -> None:
    make_config()
    server.drip_seconds = 0.2  # the model list would take minutes, a byte at a time
    result = run_aicli("doctor", "--json", "--timeout", "1", timeout=30)
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["provider.fake.endpoint"]["status"] == "fail"
    assert "did not answer within 1 s" in checks["provider.fake.endpoint"]["detail"]
