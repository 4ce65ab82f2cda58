"""`aicli generate` end to end: CLI, engine, the openai SDK and the test server over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import TEST_KEY, TEST_KEY_ENV

JSON_FIELDS = {
    "content", "cached", "stale", "model_used", "tier", "tokens_used", "usage", "cost_usd",
    "latency_ms", "request_id", "fallback_used", "attempts", "template",
}  # fmt: skip


def test_plain_answer_on_stdout_only(cli, server, make_config) -> None:
    make_config()
    result = cli("generate", "hello there")
    assert result.exit_code == 0, result
    assert result.stdout == "hello there\n"
    assert result.stderr == ""
    (req,) = server.requests
    assert req["model"] == "standard-model"
    assert req["messages"] == [{"role": "user", "content": "hello there"}]
    assert req["headers"]["authorization"] == f"Bearer {TEST_KEY}"


def test_stdin_first_then_blank_line_then_argument(cli, server, make_config) -> None:
    make_config()
    result = cli("generate", "Summarize in 3 bullets", input="line one\nline two\n")
    assert result.exit_code == 0, result
    sent = server.requests[0]["messages"][-1]["content"]
    assert sent == "line one\nline two\n\nSummarize in 3 bullets"


def test_stdin_alone_is_the_prompt(cli, server, make_config) -> None:
    make_config()
    assert cli("generate", input="just stdin\n").stdout == "just stdin\n"


def test_no_prompt_is_usage_error_and_never_hangs(run_aicli, make_config) -> None:
    make_config()
    result = run_aicli("generate", timeout=20)  # stdin is /dev/null: not a TTY, empty
    assert result.exit_code == 2
    assert result.stderr.startswith("aicli: error: no prompt")
    assert "hint:" in result.stderr
    assert result.stdout == ""


def test_json_fields(cli, server, make_config) -> None:
    make_config()
    result = cli("generate", "--json", "count my tokens please")
    assert result.exit_code == 0, result
    data = json.loads(result.stdout)
    assert data.keys() >= JSON_FIELDS
    assert data["content"] == "count my tokens please"
    assert data["cached"] is False and data["stale"] is False
    assert data["tier"] == "standard" and data["model_used"] == "standard-model"
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert data["tokens_used"] == usage["total_tokens"]
    expected = (usage["prompt_tokens"] * 0.15 + usage["completion_tokens"] * 0.60) / 1e6
    assert data["cost_usd"] == pytest.approx(expected)
    assert data["fallback_used"] is False and data["attempts"] == 1
    assert data["template"] is None
    assert len(data["request_id"]) >= 16
    assert data["latency_ms"] >= 0


def test_options_reach_the_server(cli, server, make_config) -> None:
    make_config()
    result = cli(
        "generate", "-t", "premium", "-m", "custom-model", "-s", "Be brief.",
        "--max-tokens", "42", "--temperature", "0.7", "--seed", "7", "hi",
    )  # fmt: skip
    assert result.exit_code == 0, result
    body = server.requests[0]["body"]
    assert body["model"] == "custom-model"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert body["max_tokens"] == 42
    assert body["temperature"] == 0.7
    assert body["seed"] == 7


def test_tier_defaults_are_sent(cli, server, make_config) -> None:
    make_config(defaults={"max_tokens": 321, "temperature": 0.1})
    assert cli("generate", "hi").exit_code == 0
    body = server.requests[0]["body"]
    assert body["max_tokens"] == 321 and body["temperature"] == 0.1


def test_stream_prints_everything(cli, server, make_config) -> None:
    make_config()
    text = "a streamed answer that spans several chunks"
    result = cli("generate", "--stream", "--json", text)
    assert result.exit_code == 2  # --stream and --json exclude each other
    result = cli("generate", "--stream", "-v", text)
    assert result.exit_code == 0, result
    assert result.stdout == text + "\n"
    assert server.requests[-1]["body"]["stream"] is True
    assert "tokens=" in result.stderr  # usage arrived in the final chunk


def test_stream_cut_midway_is_exit_3(cli, server, make_config) -> None:
    make_config()
    server.script("standard-model", ["stream-cut"])
    result = cli("generate", "--stream", "a long answer that will be cut off")
    assert result.exit_code == 3, result
    assert result.stderr.startswith("aicli: error:")
    assert "broke off" in result.stderr and "hint:" in result.stderr
    assert result.stdout.startswith("a lo") and result.stdout.endswith("\n")
    assert len(server.requests) == 1  # partial output: no fallback that would print twice


def test_schema_valid_answer(cli, server, make_config, tmp_path: Path) -> None:
    make_config()
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({
        "type": "object", "required": ["name"], "properties": {"name": {"type": "string"}},
    }))  # fmt: skip
    server.set_answer("standard-model", '```json\n{"name": "Ada"}\n```')
    result = cli("generate", "--schema", str(schema), "who?")
    assert result.exit_code == 0, result
    fmt = server.requests[0]["body"]["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"]["required"] == ["name"]


def test_schema_violation_is_exit_3_with_the_error(cli, server, make_config, tmp_path) -> None:
    make_config()
    schema = tmp_path / "s.json"
    schema.write_text('{"type": "object", "required": ["name"]}')
    # An answer that breaks the schema is a failed attempt: the fallback tier is asked too.
    server.set_answer("*", '{"age": 3}')
    result = cli("generate", "--schema", str(schema), "who?")
    assert result.exit_code == 3, result
    assert "'name' is a required property" in result.stderr
    assert [r["model"] for r in server.requests] == ["standard-model", "economy-model"]
    server.set_answer("*", "not json at all")
    result = cli("generate", "--schema", str(schema), "who?")
    assert result.exit_code == 3
    assert "not JSON" in result.stderr
    server.set_answer("economy-model", '{"name": "Ada"}')
    result = cli("generate", "--schema", str(schema), "who?")
    assert result.exit_code == 0 and result.stdout.strip() == '{"name": "Ada"}', result


def test_schema_falls_back_to_plain_json_when_structured_output_is_refused(
    cli, server, make_config, tmp_path
) -> None:
    make_config()
    schema = tmp_path / "s.json"
    schema.write_text('{"type": "object", "required": ["name"]}')
    server.script("standard-model", ["400"])  # e.g. a model without json_schema support
    server.set_answer("standard-model", '{"name": "Ada"}')
    result = cli("generate", "--schema", str(schema), "who?")
    assert result.exit_code == 0, result
    first, second = server.requests
    assert "response_format" in first["body"] and "response_format" not in second["body"]


def test_invalid_schema_file_is_exit_2(cli, server, make_config, tmp_path) -> None:
    make_config()
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "no-such-type"}')
    result = cli("generate", "--schema", str(bad), "x")
    assert result.exit_code == 2
    assert "not a valid JSON Schema" in result.stderr
    assert server.requests == []


@pytest.mark.parametrize("failure", ["500", "503", "malformed", "bad-shape", "hang", "429"])
def test_fallback_to_next_tier(cli, server, make_config, failure: str) -> None:
    make_config(tiers={"standard": {"timeout_seconds": 0.5}})
    server.script("standard-model", [failure])
    result = cli("generate", "--json", "fall back please")
    assert result.exit_code == 0, result
    data = json.loads(result.stdout)
    assert data["fallback_used"] is True
    assert data["tier"] == "economy" and data["model_used"] == "economy-model"
    assert data["attempts"] == 2
    assert [r["model"] for r in server.requests] == ["standard-model", "economy-model"]


def test_retries_are_counted_and_follow_the_chain(cli, server, make_config) -> None:
    make_config(tiers={"premium": {"max_retries": 2}})
    server.script("premium-model", ["503", "503", "503"])
    server.script("standard-model", ["500"])
    result = cli("generate", "-t", "premium", "--json", "x")
    assert result.exit_code == 0, result
    data = json.loads(result.stdout)
    assert data["attempts"] == 5  # 3 premium + 1 standard + 1 economy
    assert data["tier"] == "economy"
    assert data["tiers_tried"] == ["premium", "standard", "economy"]


def test_429_retry_after_is_honoured(cli, server, make_config) -> None:
    make_config(tiers={"standard": {"max_retries": 1}})
    server.script("standard-model", ["429:1"])
    result = cli("generate", "--json", "x")
    assert result.exit_code == 0, result
    data = json.loads(result.stdout)
    assert data["attempts"] == 2 and data["fallback_used"] is False
    first, second = server.requests
    assert second["time"] - first["time"] >= 0.9


def test_everything_fails_is_exit_3_naming_tiers(cli, server, make_config) -> None:
    make_config()
    for model in ("standard-model", "economy-model"):
        server.script(model, ["503"])
    result = cli("generate", "x")
    assert result.exit_code == 3, result
    assert result.stdout == ""
    first = result.stderr.splitlines()[0]
    assert first.startswith("aicli: error: no answer from tiers standard, economy")
    assert "HTTP 503" in first


def test_401_names_the_env_var_and_does_not_fall_back(cli, server, make_config) -> None:
    make_config()
    server.script("standard-model", ["401"])
    result = cli("generate", "x")
    assert result.exit_code == 3, result
    assert TEST_KEY_ENV in result.stderr
    assert TEST_KEY not in result.output
    assert TEST_KEY[-4:] not in result.output  # not even the masked tail the server echoes
    assert len(server.requests) == 1


def test_other_4xx_is_not_retried(cli, server, make_config) -> None:
    make_config(tiers={"standard": {"max_retries": 3}})
    server.script("standard-model", ["400"])
    result = cli("generate", "x")
    assert result.exit_code == 3
    assert "HTTP 400" in result.stderr
    assert len(server.requests) == 1


def test_missing_key_is_exit_2_naming_the_variable(cli, server, make_config, monkeypatch) -> None:
    make_config()
    monkeypatch.delenv(TEST_KEY_ENV)
    result = cli("generate", "x")
    assert result.exit_code == 2, result
    assert f"${TEST_KEY_ENV} is not set" in result.stderr
    assert server.requests == []


def test_verbose_summary_goes_to_stderr(cli, server, make_config) -> None:
    make_config()
    result = cli("generate", "-v", "hello")
    assert result.exit_code == 0
    assert result.stdout == "hello\n"
    (line,) = result.stderr.splitlines()
    for part in ("model=standard-model", "tokens=", "cost=$", "cached=no", "latency="):
        assert part in line


def test_budget_refuses_before_spending(cli, server, make_config) -> None:
    make_config()
    result = cli("generate", "--max-cost", "0.0000001", "hello")
    assert result.exit_code == 4, result
    assert "budget" in result.stderr
    assert server.requests == []
    make_config(budget={"max_cost_usd": 1e-9})
    assert cli("generate", "hello").exit_code == 4
    assert cli("generate", "--max-cost", "1", "hello").exit_code == 0  # the flag wins


def test_echo_tier_is_offline(run_aicli) -> None:
    result = run_aicli("generate", "-t", "echo", "--json", "--no-cache", "offline")
    assert result.exit_code == 0, result
    data = json.loads(result.stdout)
    assert data["content"] == "offline" and data["model_used"] == "echo"
    assert data["cost_usd"] == 0


def test_cache_flags_exclude_each_other(cli) -> None:
    result = cli("generate", "-t", "echo", "--no-cache", "--refresh", "x")
    assert result.exit_code == 2
    assert "exclude each other" in result.stderr


def test_bad_flag_is_one_error_line(cli) -> None:
    result = cli("generate", "--frobnicate", "x")
    assert result.exit_code == 2
    assert result.stderr.startswith("aicli: error: No such option: --frobnicate")
    assert "Traceback" not in result.stderr


def test_python_dash_m_and_version(run_aicli) -> None:
    result = run_aicli("--version")
    assert result.exit_code == 0 and result.stdout.startswith("aicli ")


@pytest.mark.parametrize("args", [["--help"], ["generate", "--help"], ["render", "--help"]])
def test_help_does_not_import_heavy_modules(run_aicli, args) -> None:
    import subprocess
    import sys

    from tests.helpers import child_env

    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "aicli", *args],
        capture_output=True, text=True, env=child_env(None), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    for heavy in ("openai", "httpx", "httpx2", "jsonschema"):
        assert heavy not in imported


def test_config_before_the_subcommand(cli, tmp_path) -> None:
    alt = tmp_path / "alt.yaml"
    alt.write_text(
        f"cache: {{dir: {tmp_path / 'altcache'}}}\n"
        "tiers: {e: {model: echo, provider: echo}}\ndefault_tier: e\n"
    )
    assert cli("--config", str(alt), "generate", "hi").stdout == "hi\n"
    for args in (
        ["--config", str(alt), "cache", "stats", "--json"],
        ["cache", "--config", str(alt), "stats", "--json"],
        ["cache", "stats", "--config", str(alt), "--json"],
    ):
        result = cli(*args)
        assert result.exit_code == 0, result
        assert json.loads(result.stdout)["directory"] == str(tmp_path / "altcache")
    missing = cli("--config", "nope.yaml", "generate", "x")
    assert missing.exit_code == 2 and "config file not found: nope.yaml" in missing.stderr


def test_stdin_that_is_not_utf8_is_exit_2(run_aicli) -> None:
    import subprocess
    import sys

    from tests.helpers import child_env

    proc = subprocess.run(
        [sys.executable, "-m", "aicli", "generate", "-t", "echo", "x"],
        input=b"\xff\xfeabc", capture_output=True, env=child_env(None),
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith("aicli: error: stdin is not UTF-8 text")
    bad_arg = subprocess.run(
        [sys.executable, "-m", "aicli", "generate", "-t", "echo", b"caf\xe9"],
        capture_output=True, env=child_env(None), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert bad_arg.returncode == 2
    assert b"is not valid UTF-8 text" in bad_arg.stderr  # checked before any command runs


def test_budget_warns_about_a_tier_without_price(cli, server, make_config) -> None:
    make_config(tiers={"standard": {"price": {"input_per_1m": 0, "output_per_1m": 0}}})
    result = cli("generate", "--max-cost", "0.01", "hello")
    assert result.exit_code == 0, result
    assert "tier 'standard' has no price" in result.stderr
    assert result.stdout == "hello\n"
