"""Configuration: search order, inheritance, strict validation and its error messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aicli.config import DEFAULTS_FILE, load_config
from aicli.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_example_config_is_the_builtin_defaults() -> None:
    example = REPO / "config.example.yaml"
    assert example.read_text() == DEFAULTS_FILE.read_text()
    # and it loads as a valid config equal to what aicli uses when no file is found
    from_file = load_config(example)
    builtin = load_config(None)
    assert builtin.source == "built-in defaults"
    assert from_file.tiers == builtin.tiers
    assert from_file.providers == builtin.providers
    assert from_file.default_tier == builtin.default_tier == "standard"
    assert builtin.tier("premium").fallback == ["standard"]
    assert builtin.fallback_chain("premium") == ["premium", "standard", "economy"]


def test_the_json_copy_of_the_defaults_is_current() -> None:
    import json
    import subprocess
    import sys

    from aicli import yamlsafe
    from aicli.config import DEFAULTS_JSON

    from_yaml = yamlsafe.load(DEFAULTS_FILE.read_text(encoding="utf-8"))
    from_json = json.loads(DEFAULTS_JSON.read_text(encoding="utf-8"))
    assert from_json == from_yaml and repr(from_json) == repr(from_yaml)  # 30 stays no 30.0
    script = REPO / "scripts" / "gen_defaults_json.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolate) -> None:
    def write(path: Path, default_tier: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({"default_tier": default_tier}))
        return path

    xdg = write(isolate.config_home / "aicli" / "config.yaml", "economy")
    assert load_config(None).source == str(xdg)
    local = write(Path("aicli.yaml"), "premium")
    assert load_config(None).default_tier == "premium"
    env_file = write(tmp_path / "env.yaml", "echo")
    monkeypatch.setenv("AICLI_CONFIG", str(env_file))
    assert load_config(None).default_tier == "echo"
    explicit = write(tmp_path / "explicit.yaml", "standard")
    assert load_config(explicit).source == str(explicit)
    assert local.exists()


def test_defaults_are_inherited_and_overridden(make_config) -> None:
    path = make_config(
        defaults={"max_tokens": 111, "temperature": 0.9},
        tiers={"economy": {"max_tokens": 5, "fallback": ["standard", "premium"]}},
    )
    # economy -> standard -> economy would cycle; make premium not fall back to keep it valid
    cfg_text = yaml.safe_load(path.read_text())
    cfg_text["tiers"]["standard"]["fallback"] = None
    cfg_text["tiers"]["premium"]["fallback"] = None
    path.write_text(yaml.safe_dump(cfg_text))
    cfg = load_config(path)
    assert cfg.tier("standard").max_tokens == 111
    assert cfg.tier("standard").temperature == 0.9
    assert cfg.tier("economy").max_tokens == 5
    assert cfg.tier("economy").fallback == ["standard", "premium"]
    assert cfg.tier("standard").timeout_seconds == 2  # from the test config's defaults


def test_prompts_dir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    cfg_file = tmp_path / "project" / "conf" / "aicli.yaml"
    cfg_file.parent.mkdir(parents=True)
    cfg_file.write_text("prompts_dir: ../my-prompts\n")
    assert load_config(cfg_file).prompts_dir == (tmp_path / "project" / "my-prompts").resolve()


def test_openai_base_url_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(None)
    assert cfg.base_url("openai") == "https://api.openai.com/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert cfg.base_url("openai") == "http://127.0.0.1:9/v1"


BAD_CONFIGS = [
    ("colour: blue\n", "colour: unknown key (expected one of: budget, cache, cooldown, default"),
    (
        "tiers: {a: {model: m, colour: red}}\ndefault_tier: a\n",
        "expected one of: batch_price, cache_ttl",
    ),
    ("defaults: {max_tokens: '200'}\n", "defaults.max_tokens: Input should be a valid integer"),
    ("redact: {enabled: 'yes'}\n", "redact.enabled: Input should be a valid boolean"),
    ("defaults: {timeout_seconds: true}\n", "defaults.timeout_seconds"),
    ("defaults: {max_tokens: lots}\n", "defaults.max_tokens"),
    ("tiers: {a: {model: m, provider: nowhere}}\ndefault_tier: a\n", "tiers.a.provider"),
    (
        "tiers: {a: {model: m, fallback: b}}\ndefault_tier: a\n",
        "tiers.a.fallback: unknown tier 'b'",
    ),
    (
        "tiers: {a: {model: m, fallback: b}, b: {model: m, fallback: [a]}}\ndefault_tier: a\n",
        "fallback cycle a -> b -> a",
    ),
    ("default_tier: missing\n", "default_tier: unknown tier 'missing'"),
    ("tiers: {a: {provider: echo}}\ndefault_tier: a\n", "tiers.a.model"),
    ("providers: {x: {type: carrier-pigeon}}\n", "providers.x.type"),
    ("redact: {kinds: [email, dna]}\n", "redact.kinds.1"),
    ("defaults: {temperature: 7}\n", "defaults.temperature"),
    ("providers: {openai: {api_key: sk-abc123}}\n", "use `api_key_env"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS)
def test_invalid_config_is_exit_2_with_file_and_key_path(cli, text: str, expected: str) -> None:
    Path("aicli.yaml").write_text(text)
    result = cli("generate", "-t", "echo", "hi")
    assert result.exit_code == 2, result
    assert result.stdout == ""
    first = result.stderr.splitlines()[0]
    assert first.startswith("aicli: error: aicli.yaml: ") or "aicli.yaml" in first, result
    assert expected.replace("`", "") in result.stderr.replace("`", ""), result
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) <= 2


def test_malformed_yaml_names_the_line(cli) -> None:
    Path("aicli.yaml").write_text("default_tier: standard\ntiers:\n  a: {model: [unclosed\n")
    result = cli("generate", "hi")
    assert result.exit_code == 2, result
    assert "aicli.yaml: line 3" in result.stderr or "aicli.yaml: line 4" in result.stderr, result
    assert "invalid YAML" in result.stderr


def test_missing_config_file_flag(cli) -> None:
    result = cli("generate", "--config", "nope.yaml", "hi")
    assert result.exit_code == 2
    assert "config file not found: nope.yaml" in result.stderr


def test_api_key_literal_never_echoed(cli) -> None:
    Path("aicli.yaml").write_text("providers: {openai: {api_key: sk-LITERALSECRET12345}}\n")
    result = cli("generate", "hi")
    assert result.exit_code == 2
    assert "sk-LITERALSECRET12345" not in result.output
    assert "api_key_env" in result.stderr


def test_unknown_tier_on_the_command_line(cli, make_config) -> None:
    make_config()
    result = cli("generate", "-t", "gold", "hi")
    assert result.exit_code == 2
    assert "unknown tier 'gold'" in result.stderr
    assert "premium" in result.stderr  # lists the tiers there are


def test_config_error_raises_configerror(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)
