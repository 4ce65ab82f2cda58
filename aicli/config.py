"""Configuration: find the YAML file, validate it strictly, resolve tiers (the Config).

Search order (first hit wins): --config, $AICLI_CONFIG, ./aicli.yaml,
$XDG_CONFIG_HOME/aicli/config.yaml, built-in defaults (aicli/defaults.yaml == config.example.yaml).
A user file replaces the built-in tiers when it has `tiers:`; the built-in providers `openai` and
`echo` always exist unless the file redefines them.

The settings classes are in settings.py. A valid file is checked by config_schema.py without
pydantic (its import alone is ~50 ms of every command's start-up); whatever that check does not
accept goes to pydantic models made from the same classes, whose errors config_check.py words.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aicli.config_check import (
    Mistake,
    cycle_mistake,
    first_error,
    reference_mistakes,
    schema_mistakes,
)
from aicli.config_schema import check
from aicli.errors import ConfigError, did_you_mean
from aicli.settings import ConfigFile, ProviderConfig, TierConfig

if TYPE_CHECKING:
    from aicli.types import Request

DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")
# The same settings as JSON, written by scripts/gen_defaults_json.py (a test keeps the two
# equal): reading them needs no YAML parser, so a command run without a config file never
# imports PyYAML (~8 ms of start-up).
DEFAULTS_JSON = DEFAULTS_FILE.with_suffix(".json")
BUILTIN = "built-in defaults"


class Config:
    """A validated configuration with every tier's settings resolved against `defaults`."""

    def __init__(self, data: ConfigFile, *, source: str, config_dir: Path) -> None:
        self.source = source
        self.origin = "built-in defaults"  # why this file: --config, $AICLI_CONFIG, ...
        self.config_dir = config_dir
        self.default_tier = data.default_tier
        self.prompts_dir = (config_dir / data.prompts_dir).resolve()
        self.providers = data.providers
        self.defaults = data.defaults
        self.cache = data.cache
        self.redact = data.redact
        self.budget = data.budget
        self.cooldown = data.cooldown
        self.serve = data.serve
        inherited = dataclasses.asdict(data.defaults)
        self.tiers: dict[str, TierConfig] = {
            name: dataclasses.replace(
                tier, **{k: v for k, v in inherited.items() if getattr(tier, k) is None}
            )
            for name, tier in data.tiers.items()
        }

    def tier_for(self, request: Request) -> str:
        """The tier a request asks for, else default_tier (a name: `tier()` checks it)."""
        return request.tier or self.default_tier

    def tier(self, name: str) -> TierConfig:
        try:
            return self.tiers[name]
        except KeyError:
            raise ConfigError(
                f"unknown tier '{name}'",
                f"tiers in {self.source}: {', '.join(sorted(self.tiers)) or '(none)'}"
                f"{did_you_mean(name, self.tiers)} (aicli tiers lists them)",
            ) from None

    def provider(self, name: str) -> ProviderConfig:
        return self.providers[name]

    def base_url(self, provider_name: str) -> str:
        """The endpoint for a provider; $OPENAI_BASE_URL overrides the `openai` provider's."""
        provider = self.providers[provider_name]
        if provider.type == "echo":
            return "echo:"
        if provider_name == "openai" and os.environ.get("OPENAI_BASE_URL"):
            return os.environ["OPENAI_BASE_URL"]
        if not provider.base_url:  # validation requires one: never a silent default endpoint
            raise ConfigError(f"provider '{provider_name}' has no base_url")
        return provider.base_url

    def fallback_chain(self, name: str) -> list[str]:
        """The tier itself, then its fallbacks depth-first, each tier at most once."""
        chain: list[str] = []

        def visit(tier_name: str) -> None:
            if tier_name in chain:
                return
            chain.append(tier_name)
            for nxt in self.tier(tier_name).fallback:
                visit(nxt)

        visit(name)
        return chain


def find_config(explicit: str | Path | None = None) -> tuple[Path | None, str]:
    """The config file in use and why it was chosen (None: the built-in defaults)."""
    if explicit:
        return _existing(explicit, "--config"), "--config"
    if os.environ.get("AICLI_CONFIG"):
        return _existing(os.environ["AICLI_CONFIG"], "$AICLI_CONFIG"), "$AICLI_CONFIG"
    local = Path("aicli.yaml")
    if local.is_file():
        return local, "./aicli.yaml in the current folder"
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    user = Path(xdg) / "aicli" / "config.yaml"
    if user.is_file():
        return user, "the user config file, $XDG_CONFIG_HOME/aicli/config.yaml"
    return None, BUILTIN


def _existing(given: str | Path, via: str) -> Path:
    path = Path(given).expanduser()
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (from {via})", f"check {via}")
    return path


def _read_yaml(path: Path, label: str) -> dict[str, Any]:
    from aicli import yamlsafe

    try:
        text = yamlsafe.read_text(path)
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read the file: {exc.strerror}") from None
    try:
        data = yamlsafe.load(text)
    except yamlsafe.YamlProblem as exc:
        where = f" line {exc.line}, column {exc.column}:" if exc.line else ""
        raise ConfigError(f"{label}:{where} {exc.problem}", "fix the YAML at that line") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{label}: expected a mapping of settings at the top level, got {type(data).__name__}"
        )
    return data


def _reject_literal_keys(data: dict[str, Any], label: str) -> None:
    cache = data.get("cache")
    url = cache.get("url") if isinstance(cache, dict) else None
    if isinstance(url, str) and _has_password(url):
        raise ConfigError(
            f"{label}: cache.url: passwords must not be written in config files (not shown)",
            "remove it from cache.url and put the full URL in the env var that cache.url_env"
            " names (default AICLI_REDIS_URL)",
        )
    providers = data.get("providers")
    if not isinstance(providers, dict):
        return
    for name, provider in providers.items():
        if isinstance(provider, dict) and "api_key" in provider:
            raise ConfigError(
                f"{label}: providers.{name}.api_key: keys must not be written in config files;"
                " use api_key_env",
                "remove it and set `api_key_env: SOME_ENV_VAR`, then export SOME_ENV_VAR",
            )


def _has_password(url: str) -> bool:
    from urllib.parse import urlsplit

    from aicli.scrub import url_secrets

    try:
        return urlsplit(url.strip()).password is not None or bool(url_secrets(url.strip()))
    except ValueError:
        return "@" in url  # unparsable: refuse anything that could hide a credential


def load_config(path: str | Path | None = None) -> Config:
    """Find, read and validate the configuration; raise ConfigError (exit 2) on any mistake."""
    builtin: dict[str, Any] = json.loads(DEFAULTS_JSON.read_text(encoding="utf-8"))
    found, why = find_config(path)
    if found is None:
        data, label, folder = builtin, BUILTIN, Path.cwd()
    else:
        label = str(found)
        data = _read_yaml(found, label)
        folder = found.resolve().parent
        _reject_literal_keys(data, label)
        if "tiers" not in data:
            data = {**data, "tiers": builtin["tiers"]}
            data.setdefault("default_tier", builtin["default_tier"])
        providers = data.get("providers")
        if providers is None or isinstance(providers, dict):
            data = {**data, "providers": {**builtin["providers"], **(providers or {})}}
    mistakes = reference_mistakes(data, list(builtin["tiers"]))
    parsed = check(ConfigFile, _one_or_many_fallbacks(data))
    if parsed is None:  # not plainly valid: pydantic decides and words what is wrong
        parsed = _validate(data, mistakes, label)
    if mistakes:
        raise first_error(mistakes, label)
    cfg = Config(parsed, source=label, config_dir=folder)
    cycle = cycle_mistake(data, {name: tier.fallback for name, tier in cfg.tiers.items()})
    if cycle is not None:
        raise first_error([cycle], label)
    cfg.origin = why
    return cfg


def _one_or_many_fallbacks(data: dict[str, Any]) -> dict[str, Any]:
    """`fallback: economy` means `fallback: [economy]`; `fallback: null` means none."""
    tiers = data.get("tiers")
    if not isinstance(tiers, dict):
        return data
    fixed = {}
    for name, tier in tiers.items():
        if isinstance(tier, dict) and "fallback" in tier:
            value = tier["fallback"]
            value = [] if value is None else [value] if isinstance(value, str) else value
            tier = {**tier, "fallback": value}
        fixed[name] = tier
    return {**data, "tiers": fixed}


def _validate(data: dict[str, Any], mistakes: list[Mistake], label: str) -> ConfigFile:
    from pydantic import ValidationError as Invalid

    from aicli.config_schema import pydantic_model

    try:
        model = pydantic_model(ConfigFile).model_validate(_one_or_many_fallbacks(data))
    except Invalid as exc:
        raise first_error(schema_mistakes(exc, data) + mistakes, label) from None
    parsed = check(ConfigFile, model.model_dump(exclude_unset=True))  # pydantic's normalised values
    if parsed is None:
        raise ConfigError(f"{label}: the settings could not be read", "this is a bug in aicli")
    return parsed  # type: ignore[no-any-return]
