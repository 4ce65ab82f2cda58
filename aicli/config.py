"""Configuration: find the YAML file, validate it strictly, resolve tiers.

Search order (first hit wins): --config, $AICLI_CONFIG, ./aicli.yaml,
$XDG_CONFIG_HOME/aicli/config.yaml, built-in defaults (aicli/defaults.yaml == config.example.yaml).
A user file replaces the built-in tiers when it has `tiers:`; the built-in providers `openai` and
`echo` always exist unless the file redefines them.

The settings are frozen dataclasses. A valid file is checked by config_check.py without pydantic
(its import alone is ~50 ms of every command's start-up); anything that check does not accept
goes to pydantic models generated from these same classes, which word the error.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from aicli import yamlsafe
from aicli.config_check import Limit, check, hints, is_settings
from aicli.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import ValidationError

DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")
BUILTIN = "built-in defaults"
REDACT_KINDS = ("email", "phone", "card", "iban", "secret")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Validation is strict: "200" is not a number and "yes" is not a boolean (ints still pass as
# floats); unknown keys are errors.


@dataclass(frozen=True, kw_only=True)
class Price:
    input_per_1m: Annotated[float, Limit(ge=0)] = 0.0
    output_per_1m: Annotated[float, Limit(ge=0)] = 0.0


@dataclass(frozen=True, kw_only=True)
class ProviderConfig:
    type: Literal["openai", "echo"] = "openai"
    base_url: str | None = None
    api_key_env: str | None = None
    local: bool = False  # a local server (Ollama, vLLM on localhost): prompts are not redacted


@dataclass(frozen=True, kw_only=True)
class TierSettings:
    """The keys `defaults` holds and every tier may override."""

    max_tokens: Annotated[int, Limit(gt=0)] | None = None
    temperature: Annotated[float, Limit(ge=0, le=2)] | None = None
    timeout_seconds: Annotated[float, Limit(gt=0)] | None = None
    max_retries: Annotated[int, Limit(ge=0, le=20)] | None = None
    cache_ttl: Annotated[int, Limit(ge=0)] | None = None
    rate_limit: Annotated[float, Limit(gt=0)] | None = None


@dataclass(frozen=True, kw_only=True)
class Defaults(TierSettings):
    max_tokens: Annotated[int, Limit(gt=0)] | None = 2000
    temperature: Annotated[float, Limit(ge=0, le=2)] | None = 0.3
    timeout_seconds: Annotated[float, Limit(gt=0)] | None = 30.0
    max_retries: Annotated[int, Limit(ge=0, le=20)] | None = 3
    cache_ttl: Annotated[int, Limit(ge=0)] | None = 3600
    rate_limit: Annotated[float, Limit(gt=0)] | None = None


@dataclass(frozen=True, kw_only=True)
class TierConfig(TierSettings):
    model: Annotated[str, Limit(min_len=1)]
    provider: str = "openai"
    fallback: list[str] = field(default_factory=list)  # a single name is made a list first
    price: Price = field(default_factory=Price)


@dataclass(frozen=True, kw_only=True)
class CacheConfig:
    dir: str | None = None
    size_limit_mb: Annotated[int, Limit(gt=0)] = 1024


@dataclass(frozen=True, kw_only=True)
class RedactConfig:
    enabled: bool = True
    kinds: list[Literal["email", "phone", "card", "iban", "secret"]] | None = None


@dataclass(frozen=True, kw_only=True)
class BudgetConfig:
    max_cost_usd: Annotated[float, Limit(ge=0)] | None = None


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """`aicli serve`: who gets in, limits, the daily budget, how long a stop may take."""

    tokens_env: str = "AICLI_SERVE_TOKENS"
    max_body_kb: Annotated[int, Limit(gt=0)] = 1024
    max_concurrency: Annotated[int, Limit(gt=0)] = 64
    daily_budget_usd: Annotated[float, Limit(ge=0)] | None = None
    shutdown_timeout: Annotated[float, Limit(ge=0)] = 30.0


@dataclass(frozen=True, kw_only=True)
class _File:
    """The file as written: every key optional, nothing unknown."""

    default_tier: str = "standard"
    prompts_dir: str = "prompts"
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    defaults: Defaults = field(default_factory=Defaults)
    tiers: dict[str, TierConfig] = field(default_factory=dict)
    cache: CacheConfig = field(default_factory=CacheConfig)
    redact: RedactConfig = field(default_factory=RedactConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)


class Config:
    """A validated configuration with every tier's settings resolved against `defaults`."""

    def __init__(self, data: _File, *, source: str, config_dir: Path) -> None:
        self.source = source
        self.config_dir = config_dir
        self.default_tier = data.default_tier
        self.prompts_dir = (config_dir / data.prompts_dir).resolve()
        self.providers = data.providers
        self.defaults = data.defaults
        self.cache = data.cache
        self.redact = data.redact
        self.budget = data.budget
        self.serve = data.serve
        inherited = {f.name: getattr(data.defaults, f.name) for f in dataclasses.fields(Defaults)}
        self.tiers: dict[str, TierConfig] = {
            name: dataclasses.replace(
                tier, **{k: v for k, v in inherited.items() if getattr(tier, k) is None}
            )
            for name, tier in data.tiers.items()
        }

    def tier(self, name: str) -> TierConfig:
        try:
            return self.tiers[name]
        except KeyError:
            raise ConfigError(
                f"unknown tier '{name}'",
                f"tiers in {self.source}: {', '.join(sorted(self.tiers)) or '(none)'}",
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
        return provider.base_url or "https://api.openai.com/v1"

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


def _find(explicit: str | Path | None) -> Path | None:
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"config file not found: {path}", "check the --config path or $AICLI_CONFIG"
            )
        return path
    if os.environ.get("AICLI_CONFIG"):
        return _find(os.environ["AICLI_CONFIG"])
    local = Path("aicli.yaml")
    if local.is_file():
        return local
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    user = Path(xdg) / "aicli" / "config.yaml"
    return user if user.is_file() else None


def _read_yaml(path: Path, label: str) -> dict[str, Any]:
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


def _explain(exc: ValidationError, label: str) -> ConfigError:
    errors = exc.errors()
    first = errors[0]
    path = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        allowed = _allowed_keys(first["loc"][:-1])
        what = f"unknown key (expected one of: {', '.join(allowed)})" if allowed else "unknown key"
    elif first["type"] == "literal_error":
        what = f"expected {first['ctx']['expected']}, got {first['input']!r}"
    else:
        what = f"{first['msg']}, got {_shown(first['input'])}"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return ConfigError(f"{label}: {path}: {what}{more}", "see config.example.yaml for every key")


def _allowed_keys(parent: tuple[Any, ...]) -> list[str]:
    """The keys the settings class at `parent` (a pydantic error location) accepts."""
    kind: Any = _File
    for part in parent:
        if getattr(kind, "__origin__", None) is dict:  # tiers.<name>, providers.<name>
            kind = kind.__args__[-1]
            continue
        fields = hints(kind) if is_settings(kind) else {}
        if part not in fields:
            return []
        kind = fields[part]
    return sorted(hints(kind)) if is_settings(kind) else []


def _shown(value: Any) -> str:
    """A rejected value as the error shows it; a value that looks like a secret stays hidden."""
    if isinstance(value, str):
        from aicli.redact import Redactor

        if Redactor(["secret"]).redact(value) != value:
            return "a value that looks like a secret (not shown)"
    return repr(value)


def _check_references(cfg: Config, label: str) -> None:
    def fail(path: str, what: str) -> ConfigError:
        return ConfigError(f"{label}: {path}: {what}", "see config.example.yaml for every key")

    tiers = sorted(cfg.tiers)
    if cfg.default_tier not in cfg.tiers:
        raise fail("default_tier", f"unknown tier '{cfg.default_tier}' (tiers: {', '.join(tiers)})")
    for name, tier in cfg.tiers.items():
        if tier.provider not in cfg.providers:
            raise fail(
                f"tiers.{name}.provider",
                f"unknown provider '{tier.provider}'"
                f" (providers: {', '.join(sorted(cfg.providers))})",
            )
        for target in tier.fallback:
            if target not in cfg.tiers:
                raise fail(
                    f"tiers.{name}.fallback",
                    f"unknown tier '{target}' (tiers: {', '.join(tiers)})",
                )
    for name, provider in cfg.providers.items():
        if provider.api_key_env and not _ENV_NAME.fullmatch(provider.api_key_env):
            raise fail(
                f"providers.{name}.api_key_env",
                "must be the NAME of an environment variable (like OPENAI_API_KEY), not the key"
                " itself (the value is not shown)",
            )
        if provider.type == "openai" and not provider.api_key_env and not provider.local:
            raise fail(
                f"providers.{name}.api_key_env",
                "required for an openai-type provider (the NAME of the env var holding the key);"
                " set `local: true` for a keyless local server",
            )
    if not _ENV_NAME.fullmatch(cfg.serve.tokens_env):
        raise fail(
            "serve.tokens_env",
            "must be the NAME of an environment variable (like AICLI_SERVE_TOKENS), not a token"
            " (the value is not shown)",
        )
    _check_cycles(cfg, fail)


def _check_cycles(cfg: Config, fail: Any) -> None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for nxt in cfg.tiers[name].fallback:
            if state.get(nxt) == 1:
                cycle = " -> ".join([*path[path.index(nxt) :], nxt])
                raise fail(f"tiers.{name}.fallback", f"fallback cycle {cycle}")
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[name] = 2

    for name in sorted(cfg.tiers):
        if name not in state:
            visit(name, [name])


def load_config(path: str | Path | None = None) -> Config:
    """Find, read and validate the configuration; raise ConfigError (exit 2) on any mistake."""
    builtin = _read_yaml(DEFAULTS_FILE, BUILTIN)
    found = _find(path)
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
    parsed = _validate(_one_or_many_fallbacks(data), label)
    cfg = Config(parsed, source=label, config_dir=folder)
    _check_references(cfg, label)
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
            tier = {
                **tier,
                "fallback": [] if value is None else [value] if isinstance(value, str) else value,
            }
        fixed[name] = tier
    return {**data, "tiers": fixed}


def _validate(data: dict[str, Any], label: str) -> _File:
    """Settings from the file's data; a ConfigError naming the first problem when invalid."""
    parsed = check(_File, data)
    if parsed is not None:
        return parsed
    from pydantic import ValidationError as Invalid

    from aicli.config_check import pydantic_model

    try:
        model = pydantic_model(_File).model_validate(data)
    except Invalid as exc:
        raise _explain(exc, label) from None
    # pydantic took what the quick check did not: build from its normalised values
    parsed = check(_File, model.model_dump(exclude_unset=True))
    if parsed is None:
        raise ConfigError(f"{label}: the configuration could not be read", "report this bug")
    return parsed
