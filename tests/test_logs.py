"""Structured logs: --log-format json / $AICLI_LOG_FORMAT, one JSON object per stderr line."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tests.fake_openai import FakeOpenAI
from tests.helpers import TEST_KEY, Completed

PROMPT = "the secret plan is tangerine"


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Every stderr line must be one JSON object with ts, level and event."""
    lines = [json.loads(line) for line in stderr.splitlines()]
    for obj in lines:
        assert isinstance(obj, dict)
        assert {"ts", "level", "event", "message"} <= set(obj), obj
    return lines


def events(result: Completed, name: str) -> list[dict[str, Any]]:
    return [e for e in json_lines(result.stderr) if e["event"] == name]


def test_verbose_generate_logs_request_and_retry_events(
    run_aicli: Any, make_config: Any, server: FakeOpenAI
) -> None:
    make_config(defaults={"max_retries": 2})
    server.script("standard-model", ["503:0.01", "429:0.01", "ok:four"])
    result = run_aicli("generate", "-v", "--log-format", "json", PROMPT)
    assert result.exit_code == 0, result
    assert result.stdout == "four\n"  # stdout unchanged
    retries = events(result, "retry")
    assert [(r["attempt"], r["status"]) for r in retries] == [(1, 503), (2, 429)]
    for r in retries:
        assert r["tier"] == "standard" and r["level"] == "info"
        assert r["wait_s"] == pytest.approx(0.01, abs=0.05)
        assert r["request_id"]
    (request,) = events(result, "request")
    assert request["tier"] == "standard" and request["model"] == "standard-model"
    assert request["attempts"] == 3 and request["cached"] is False
    assert request["fallback_used"] is False
    assert request["request_id"] == retries[0]["request_id"]
    for key in ("latency_ms", "prompt_tokens", "completion_tokens", "cost_usd"):
        assert isinstance(request[key], (int, float)), key
    (summary,) = events(result, "summary")
    assert summary["model"] == "standard-model" and summary["attempts"] == 3
    assert PROMPT not in result.stderr and "tangerine" not in result.stderr
    assert TEST_KEY not in result.stderr


def test_without_verbose_there_are_no_request_events(run_aicli: Any, make_config: Any) -> None:
    make_config()
    result = run_aicli("generate", "hello", env={"AICLI_LOG_FORMAT": "json"})
    assert result.exit_code == 0, result
    assert result.stdout == "hello\n"
    assert result.stderr == ""


def test_errors_become_json_objects_with_the_hint(run_aicli: Any, make_config: Any) -> None:
    make_config()
    result = run_aicli("--log-format", "json", "generate", "-t", "nope", "hi")
    assert result.exit_code == 2
    (line,) = json_lines(result.stderr)
    assert line["level"] == "error" and line["event"] == "error"
    assert line["message"] == "unknown tier 'nope'"
    assert "standard" in line["hint"]


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["generate", "--bogus", "--log-format", "json"], None),
        (["generate", "--log-format=json", "--bogus"], None),
        (["generate", "--bogus"], {"AICLI_LOG_FORMAT": "json"}),
        (["--log-format", "json", "cache", "stats", "--bogus"], None),
    ],
)
def test_usage_errors_follow_the_format(
    run_aicli: Any, args: list[str], env: dict[str, str] | None
) -> None:
    result = run_aicli(*args, env=env)
    assert result.exit_code == 2
    (line,) = json_lines(result.stderr)
    assert line["event"] == "error" and "--bogus" in line["message"]
    assert line["hint"].startswith("see 'aicli")


def test_key_refused_never_shows_the_key(
    run_aicli: Any, make_config: Any, server: FakeOpenAI
) -> None:
    make_config()
    server.script("standard-model", ["401"])
    result = run_aicli("generate", "-v", "--log-format", "json", "hi")
    assert result.exit_code == 3, result
    lines = json_lines(result.stderr)
    assert lines[-1]["event"] == "error" and "rejected the API key" in lines[-1]["message"]
    failed = [e for e in lines if e["event"] == "request"]
    assert failed and "error" in failed[0]
    assert TEST_KEY not in result.stderr and TEST_KEY[-4:] not in result.stderr


def test_warnings_are_json_too(run_aicli: Any, make_config: Any) -> None:
    make_config(tiers={"standard": {"price": {"input_per_1m": 0, "output_per_1m": 0}}})
    result = run_aicli("generate", "--max-cost", "1", "hi", env={"AICLI_LOG_FORMAT": "json"})
    assert result.exit_code == 0, result
    (line,) = json_lines(result.stderr)
    assert line["level"] == "warning" and line["event"] == "budget.unpriced"
    assert line["tier"] == "standard" and "has no price" in line["message"]


def test_text_format_keeps_todays_lines(run_aicli: Any, make_config: Any) -> None:
    make_config(tiers={"standard": {"price": {"input_per_1m": 0, "output_per_1m": 0}}})
    result = run_aicli("generate", "--max-cost", "1", "hi")
    assert result.stderr.startswith("aicli: warning: tier 'standard' has no price")
    bad = run_aicli("generate", "-t", "nope", "hi")
    assert bad.stderr.splitlines()[0] == "aicli: error: unknown tier 'nope'"
    assert bad.stderr.splitlines()[1].startswith("  hint: tiers in ")


def test_bad_env_value_is_a_usage_error(run_aicli: Any, make_config: Any) -> None:
    make_config()
    result = run_aicli("generate", "hi", env={"AICLI_LOG_FORMAT": "xml"})
    assert result.exit_code == 2
    assert "AICLI_LOG_FORMAT must be one of text, json" in result.stderr


def test_bad_flag_value_is_a_usage_error(run_aicli: Any) -> None:
    result = run_aicli("generate", "--log-format", "xml", "hi")
    assert result.exit_code == 2
    assert "--log-format" in result.stderr


def test_configure_is_idempotent_and_scrubs(capsys: pytest.CaptureFixture[str]) -> None:
    from aicli.logs import configure, log_context
    from aicli.scrub import register_secret

    configure("json", logging.INFO)
    configure("json", logging.INFO)
    from aicli.logs import _StderrHandler

    logger = logging.getLogger("aicli")
    assert sum(isinstance(h, _StderrHandler) for h in logger.handlers) == 1
    register_secret("sk-unit-test-secret-0000")
    with log_context(request_id="r1", tier="t1"):
        logging.getLogger("aicli.engine").info(
            "sent %s",
            "sk-unit-test-secret-0000",
            extra={"event": "x", "detail": ["sk-unit-test-secret-0000"]},
        )
    line = json.loads(capsys.readouterr().err)
    assert line["message"] == "sent ***" and line["detail"] == ["***"]
    assert line["request_id"] == "r1" and line["tier"] == "t1" and line["event"] == "x"
    configure("text", logging.WARNING)


def test_test_prompts_json_logs_one_request_event_per_case(
    run_aicli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers import REPO_ROOT

    monkeypatch.chdir(REPO_ROOT)
    result = run_aicli(
        "test-prompts", "--replay", "prompts/recordings/shipped.jsonl", "-v", "--log-format", "json"
    )
    assert result.exit_code == 0, result
    assert result.stdout.splitlines()[-1] == "18 passed, 0 failed"  # stdout unchanged
    lines = json_lines(result.stderr)
    assert lines[0]["event"] == "message" and lines[0]["message"].startswith("18 runs of")
    requests = [e for e in lines if e["event"] == "request"]
    assert len(requests) >= 18
    assert len({e["request_id"] for e in requests}) == len(requests)
    assert {"tier", "model", "cached", "latency_ms", "cost_usd"} <= set(requests[0])


@pytest.mark.parametrize("args", [[], ["cache"]])
def test_no_command_prints_the_help_on_stdout_even_with_json_logs(
    run_aicli: Any, args: list[str]
) -> None:
    result = run_aicli(*args, env={"AICLI_LOG_FORMAT": "json"})
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: aicli") and result.stderr == ""
