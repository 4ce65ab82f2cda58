"""`aicli tiers` and `aicli config path | show`: inheritance resolved, keys never shown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.fake_openai import FakeOpenAI
from tests.helpers import TEST_KEY, TEST_KEY_ENV

REPO = Path(__file__).resolve().parent.parent


def test_tiers_json_resolves_inheritance_and_chain(
    cli: Any, make_config: Any, server: FakeOpenAI
) -> None:
    make_config(tiers={"premium": {"cache_ttl": 60, "fallback": ["standard", "echo"]}})
    result = cli("tiers", "--json")
    assert result.exit_code == 0, result
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    premium = rows["premium"]
    assert premium["cache_ttl"] == 60  # its own
    assert premium["rate_limit"] == 6000 and premium["timeout_seconds"] == 2  # from defaults
    assert premium["max_tokens"] == 2000  # from the built-in defaults of `defaults`
    assert premium["fallback_chain"] == ["premium", "standard", "economy", "echo"]
    assert premium["base_url"] == server.base_url and premium["provider"] == "fake"
    assert premium["price"] == {"input_per_1m": 2.5, "output_per_1m": 10.0}
    assert rows["standard"]["default"] is True and rows["premium"]["default"] is False
    assert rows["echo"]["base_url"] is None


def test_tiers_text_table(cli: Any, make_config: Any) -> None:
    make_config()
    result = cli("tiers")
    assert result.exit_code == 0, result
    header, *lines = result.stdout.splitlines()
    assert header.split()[:3] == ["tier", "provider", "model"]
    standard = next(line for line in lines if line.startswith("standard"))
    assert "standard *" in standard and "standard > economy" in standard
    assert "$0.15 / $0.6" in standard and "6000/min" in standard


def test_tiers_with_an_invalid_config_is_exit_2(cli: Any, make_config: Any) -> None:
    make_config("tiers: {a: {model: m, provider: nowhere}}\ndefault_tier: a\n")
    result = cli("tiers")
    assert result.exit_code == 2 and "tiers.a.provider" in result.stderr


def test_config_path_says_which_file_and_why(
    cli: Any, make_config: Any, isolate: Any, monkeypatch: Any
) -> None:
    none = cli("config", "path")
    assert none.exit_code == 0 and none.stdout == ""
    assert "built-in defaults" in none.stderr
    local = make_config()
    result = cli("config", "path")
    assert result.stdout.strip() == str(local.resolve())
    assert "./aicli.yaml" in result.stderr
    other = make_config(path="elsewhere/ci.yaml")
    monkeypatch.setenv("AICLI_CONFIG", str(other))
    assert cli("config", "path").stdout.strip() == str(other.resolve())
    assert "$AICLI_CONFIG" in cli("config", "path").stderr
    flagged = cli("--config", str(local), "config", "path")
    assert flagged.stdout.strip() == str(local.resolve()) and "--config" in flagged.stderr


def test_config_show_is_the_effective_config_without_keys(
    cli: Any, make_config: Any, server: FakeOpenAI, monkeypatch: Any
) -> None:
    make_config(
        providers={"fake": {"base_url": server.base_url.replace("//", "//user:pw-secret@")}}
    )
    result = cli("config", "show")
    assert result.exit_code == 0, result
    data = yaml.safe_load(result.stdout)
    assert data["tiers"]["economy"]["rate_limit"] == 6000  # inherited from defaults
    assert data["tiers"]["economy"]["max_tokens"] == 2000
    assert data["providers"]["fake"]["api_key_env"] == TEST_KEY_ENV
    assert "***@127.0.0.1" in data["providers"]["fake"]["base_url"]
    assert TEST_KEY not in result.output and "pw-secret" not in result.output


def test_config_show_defaults_is_the_shipped_example(cli: Any) -> None:
    result = cli("config", "show", "--defaults")
    assert result.exit_code == 0
    example = (REPO / "config.example.yaml").read_text(encoding="utf-8")
    assert result.stdout == example.rstrip("\n") + "\n"
