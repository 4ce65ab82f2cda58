"""`aicli doctor` through the CLI, against the fake OpenAI server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.fake_openai import FakeOpenAI
from tests.helpers import TEST_KEY, TEST_KEY_ENV, Completed


def doctor_json(cli: Any, *args: str, env: dict[str, str | None] | None = None) -> Any:
    result = cli("doctor", "--json", *args, env=env)
    data = json.loads(result.stdout)
    assert set(data) == {"status", "checks"}
    for check in data["checks"]:
        assert set(check) == {"name", "status", "detail", "hint"}
        assert check["status"] in ("ok", "warn", "fail", "skip")
    return result, data


def by_name(data: Any) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in data["checks"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def no_key(result: Completed) -> None:
    assert TEST_KEY not in result.output and TEST_KEY[-4:] not in result.output


def test_all_ok(cli: Any, make_config: Any, server: FakeOpenAI) -> None:
    path = make_config()
    server.expected_key = TEST_KEY
    result, data = doctor_json(cli)
    assert result.exit_code == 0, result
    assert data["status"] == "ok"
    checks = by_name(data)
    assert checks["config"]["status"] == "ok"
    assert str(path.resolve()) in checks["config"]["detail"]
    assert "./aicli.yaml" in checks["config"]["detail"]
    assert checks["provider.fake.key"]["detail"] == f"${TEST_KEY_ENV} is set"
    for name in ("provider.fake.endpoint", "provider.fake.auth", "provider.echo", "cache"):
        assert checks[name]["status"] == "ok", checks[name]
    for tier in ("premium", "standard", "economy"):
        assert checks[f"tier.{tier}.model"]["status"] == "ok"
    assert "provider.openai.key" not in checks  # no tier uses the built-in openai provider
    assert checks["prompts"]["status"] == "skip"
    no_key(result)


def test_text_output_one_line_per_check(cli: Any, make_config: Any) -> None:
    make_config()
    result = cli("doctor")
    assert result.exit_code == 0, result
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ok    config ")
    assert any(line.startswith("ok    provider.fake.endpoint ") for line in lines)
    assert lines[-1].startswith("ok: ") and "0 failed" in lines[-1]
    assert result.stderr == ""


def test_key_unset(cli: Any, make_config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    make_config()
    monkeypatch.delenv(TEST_KEY_ENV)
    result, data = doctor_json(cli)
    assert result.exit_code == 3
    assert data["status"] == "fail"
    key = by_name(data)["provider.fake.key"]
    assert key["status"] == "fail" and key["detail"] == f"${TEST_KEY_ENV} is not set"
    assert f"export {TEST_KEY_ENV}=" in key["hint"]


def test_endpoint_closed_fails_fast(cli: Any, make_config: Any) -> None:
    make_config(providers={"fake": {"base_url": f"http://127.0.0.1:{free_port()}/v1"}})
    result, data = doctor_json(cli, "--timeout", "2")
    assert result.exit_code == 3
    checks = by_name(data)
    assert checks["provider.fake.endpoint"]["status"] == "fail"
    assert "cannot be reached" in checks["provider.fake.endpoint"]["detail"]
    assert "running" in checks["provider.fake.endpoint"]["hint"]
    assert checks["provider.fake.auth"]["status"] == "skip"
    assert checks["tier.standard.model"]["status"] == "skip"


def test_auth_rejected(cli: Any, make_config: Any, server: FakeOpenAI) -> None:
    make_config()
    server.expected_key = "sk-some-other-key-0000000000"
    result, data = doctor_json(cli)
    assert result.exit_code == 3
    auth = by_name(data)["provider.fake.auth"]
    assert auth["status"] == "fail"
    assert f"refused the key in ${TEST_KEY_ENV} (HTTP 401)" in auth["detail"]
    no_key(result)
    text = cli("doctor")
    assert text.exit_code == 3 and "FAIL  provider.fake.auth" in text.stdout
    no_key(text)


def test_unknown_model_is_a_warning_with_the_closest_names(cli: Any, make_config: Any) -> None:
    make_config(tiers={"standard": {"model": "standrd-model"}})
    result, data = doctor_json(cli)
    assert result.exit_code == 0, result
    assert data["status"] == "warn"
    model = by_name(data)["tier.standard.model"]
    assert model["status"] == "warn"
    assert "standrd-model is not in the" in model["detail"]
    assert "closest listed: standard-model" in model["detail"]
    assert "tiers.standard.model" in model["hint"]


def test_invalid_config(cli: Any, make_config: Any) -> None:
    make_config("tiers: {premium: {model: x, fallback: standrad}}\n")
    result, data = doctor_json(cli)
    assert result.exit_code == 2
    config = by_name(data)["config"]
    assert config["status"] == "fail"
    assert "tiers.premium.fallback" in config["detail"]
    assert {c["status"] for c in data["checks"][1:]} == {"skip"}


def test_lock_mismatch_and_broken_suite(cli: Any, make_config: Any) -> None:
    make_config()
    prompts = Path("prompts")
    prompts.mkdir()
    tpl = prompts / "hello.yaml"
    head = "name: hello\nversion: 1.0.0\nvariables: {who: {type: string}}\n"
    tpl.write_text(head + "template: Hello {{ who }}\n", encoding="utf-8")
    assert cli("render", "--lock").exit_code == 0
    result, data = doctor_json(cli, "--offline")
    assert result.exit_code == 0, result
    checks = by_name(data)
    assert checks["prompts.templates"]["status"] == "ok"
    assert checks["prompts.lock"]["status"] == "ok"
    assert checks["prompts.suites"]["status"] == "skip"
    tpl.write_text(head + "template: Hi {{ who }}\n", encoding="utf-8")
    (prompts / "x.test.yaml").write_text("suite: x\ncases: 3\n", encoding="utf-8")
    result, data = doctor_json(cli, "--offline")
    assert result.exit_code == 2
    checks = by_name(data)
    assert checks["prompts.lock"]["status"] == "fail"
    assert "hello@1.0.0" in checks["prompts.lock"]["detail"]
    assert checks["prompts.suites"]["status"] == "fail"


def test_offline_contacts_nothing(cli: Any, make_config: Any, server: FakeOpenAI) -> None:
    make_config()
    result, data = doctor_json(cli, "--offline")
    assert result.exit_code == 0, result
    checks = by_name(data)
    assert checks["provider.fake.endpoint"]["status"] == "skip"
    assert "--offline" in checks["provider.fake.endpoint"]["detail"]
    assert checks["tier.premium.model"]["status"] == "skip"
    assert server.requests == [] and server.requests_for("") == []


def test_built_in_defaults_and_json_logs(run_aicli: Any) -> None:
    result = run_aicli("doctor", "--offline", "--json", env={"OPENAI_API_KEY": TEST_KEY})
    assert result.exit_code == 0, result
    config = by_name(json.loads(result.stdout))["config"]
    assert "using the built-in defaults" in config["detail"]
    assert TEST_KEY not in result.stdout
    missing = run_aicli("doctor", "--offline", "--log-format", "json", "-c", "nope.yaml")
    assert missing.exit_code == 2
    assert "FAIL  config" in missing.stdout and "nope.yaml" in missing.stdout


def test_unusable_cache_folder_is_exit_3(cli: Any, make_config: Any, tmp_path: Path) -> None:
    make_config()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    result, data = doctor_json(cli, "--offline", env={"AICLI_CACHE_DIR": str(blocker / "cache")})
    assert result.exit_code == 3
    cache = by_name(data)["cache"]
    assert cache["status"] == "fail" and "AICLI_CACHE_DIR" in cache["hint"]
    result, data = doctor_json(cli, "--offline", env={"AICLI_CACHE_DIR": str(blocker)})
    assert by_name(data)["cache"]["detail"].endswith("exists but is not a folder")


def test_redis_cache_reachable_and_down(
    cli: Any, make_config: Any, redis_server: Any, redis_ns: str
) -> None:
    make_config(cache={"backend": "redis", "url": redis_server.url, "namespace": redis_ns})
    result, data = doctor_json(cli, "--offline")
    assert result.exit_code == 0, result
    cache = by_name(data)["cache"]
    assert cache["status"] == "ok" and cache["detail"].startswith("redis cache at ")
    assert "reachable, 0 entries" in cache["detail"]
    down = f"redis://127.0.0.1:{free_port()}/0"
    make_config(cache={"backend": "redis", "url": down, "namespace": redis_ns})
    result, data = doctor_json(cli, "--offline")
    assert result.exit_code == 3
    assert by_name(data)["cache"]["status"] == "fail"
