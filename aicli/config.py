"""Configuration: find the YAML file, validate it strictly with pydantic, resolve tiers.

Search order (first hit wins): --config, $AICLI_CONFIG, ./aicli.yaml,
$XDG_CONFIG_HOME/aicli/config.yaml, built-in defaults (aicli/defaults.yaml == config.example.yaml).
A user file replaces the built-in tiers when it has `tiers:`; the built-in providers `openai` and
`echo` always exist unless the file redefines them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aicli import yamlsafe
from aicli.config_check import Mistake, cycle_mistake, position, reference_mistakes
from aicli.errors import ConfigError, close_matches, did_you_mean

DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")
BUILTIN = "built-in defaults"
REDACT_KINDS = ("email", "phone", "card", "iban", "secret")
_KEY_PATH = re.compile(r"key|token|secret|passw", re.IGNORECASE)


class _Strict(BaseModel):
    # strict: "200" is not a number and "yes" is not a boolean (ints still pass as floats);
    # .inf and .nan are no price, timeout or budget (and would print as invalid JSON)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Price(_Strict):
    input_per_1m: float = Field(0.0, ge=0, le=1e6)
    output_per_1m: float = Field(0.0, ge=0, le=1e6)


class ProviderConfig(_Strict):
    type: Literal["openai", "echo"] = "openai"
    base_url: str | None = None
    api_key_env: str | None = None
    local: bool = False  # a local server (Ollama, vLLM on localhost): prompts are not redacted

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value and value.strip():  # a missing or empty one is the "required" check's
            problem = url_problem(value)
            if problem:
                raise ValueError(problem)
        return value


def url_problem(url: str) -> str | None:
    """Why `url` cannot be an endpoint (None when it can): http(s), a host, a valid port."""
    from urllib.parse import urlsplit

    if not url.isprintable() or any(c.isspace() for c in url):
        return "a URL must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "a URL must look like http(s)://host[:port]/path"
    if port == 0:
        return "port 0 is not a port to connect to"
    return None


MAX_TOKENS = 10_000_000  # far above any model's context; bounds cost estimates and requests


class TierSettings(_Strict):
    """The keys `defaults` holds and every tier may override."""

    max_tokens: int | None = Field(None, gt=0, le=MAX_TOKENS)
    temperature: float | None = Field(None, ge=0, le=2)
    timeout_seconds: float | None = Field(None, gt=0, le=86_400)
    max_retries: int | None = Field(None, ge=0, le=20)
    cache_ttl: int | None = Field(None, ge=0, le=10 * 365 * 86_400)
    rate_limit: float | None = Field(None, gt=0, le=1e6)


class Defaults(TierSettings):
    max_tokens: int | None = Field(2000, gt=0, le=MAX_TOKENS)
    temperature: float | None = Field(0.3, ge=0, le=2)
    timeout_seconds: float | None = Field(30.0, gt=0, le=86_400)
    max_retries: int | None = Field(3, ge=0, le=20)
    cache_ttl: int | None = Field(3600, ge=0, le=10 * 365 * 86_400)
    rate_limit: float | None = Field(100.0, gt=0, le=1e6)


class TierConfig(TierSettings):
    model: str = Field(min_length=1)
    provider: str = "openai"
    fallback: list[str] = Field(default_factory=list)
    price: Price = Field(default_factory=Price)

    @field_validator("fallback", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if value is None:
            return []
        return [value] if isinstance(value, str) else value


class CacheConfig(_Strict):
    backend: Literal["disk", "redis"] = "disk"
    dir: str | None = None
    size_limit_mb: int = Field(1024, gt=0, le=100_000_000)
    url: str | None = Field(None, min_length=1)
    url_env: str | None = Field("AICLI_REDIS_URL", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    namespace: str = Field("aicli", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    stale_for: int = Field(604800, ge=0)
    timeout_seconds: float = Field(1.0, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        return value


class RedactConfig(_Strict):
    enabled: bool = True
    kinds: list[Literal["email", "phone", "card", "iban", "secret"]] | None = None


class BudgetConfig(_Strict):
    max_cost_usd: float | None = Field(None, ge=0, le=1e9)


class ServeConfig(_Strict):
    """`aicli serve`: who gets in, limits, the daily budget, how long a stop may take."""

    tokens_env: str = "AICLI_SERVE_TOKENS"
    max_body_kb: int = Field(1024, gt=0)
    max_concurrency: int = Field(64, gt=0)
    daily_budget_usd: float | None = Field(None, ge=0)
    shutdown_timeout: float = Field(30.0, ge=0)


class _File(_Strict):
    """The file as written: every key optional, nothing unknown."""

    default_tier: str = "standard"
    prompts_dir: str = "prompts"
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    tiers: dict[str, TierConfig] = Field(default_factory=dict)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    redact: RedactConfig = Field(default_factory=RedactConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)


class Config:
    """A validated configuration with every tier's settings resolved against `defaults`."""

    def __init__(self, data: _File, *, source: str, config_dir: Path) -> None:
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
        self.serve = data.serve
        inherited = data.defaults.model_dump()
        self.tiers: dict[str, TierConfig] = {
            name: tier.model_copy(
                update={k: v for k, v in inherited.items() if getattr(tier, k) is None}
            )
            for name, tier in data.tiers.items()
        }

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

    try:
        return urlsplit(url.strip()).password is not None
    except ValueError:
        return "@" in url  # unparsable: refuse anything that could hide a credential


def _schema_mistakes(exc: ValidationError, data: dict[str, Any]) -> list[Mistake]:
    mistakes = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            what = (
                f"unknown key (expected one of: {', '.join(allowed)})" if allowed else "unknown key"
            )
            near = close_matches(str(loc[-1]), allowed, n=1)
            what += f"; did you mean '{near[0]}'?" if near else ""
        elif err["type"] == "literal_error":
            what = f"expected {err['ctx']['expected']}, got {_shown(err['input'], path)}"
        else:
            what = f"{err['msg']}, got {_shown(err['input'], path)}"
        mistakes.append(Mistake(position(data, loc), path, what))
    return mistakes


def _first(mistakes: list[Mistake], label: str) -> ConfigError:
    """The mistake a reader of the file meets first."""
    first = min(mistakes)
    more = f" (and {len(mistakes) - 1} more problem(s))" if len(mistakes) > 1 else ""
    return ConfigError(f"{label}: {first.path}: {first.what}{more}", first.hint)


def _allowed_keys(parent: tuple[Any, ...]) -> list[str]:
    """The keys the model at `parent` (a pydantic error location) accepts."""
    model: Any = _File
    for part in parent:
        if getattr(model, "__origin__", None) is dict:  # tiers.<name>, providers.<name>
            model = model.__args__[-1]
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return []
        model = fields[part].annotation
    fields = getattr(model, "model_fields", None)
    return sorted(fields) if fields else []


def _shown(value: Any, path: str) -> str:
    """A rejected value as the error shows it, never one that may be a key: not at a key-like
    path (a key pasted into `api_key_env` as a list or as digits), not one that looks like one."""
    if _KEY_PATH.search(path):
        return f"a {type(value).__name__} (not shown: it may be a key)"
    from aicli.redact import Redactor

    text = repr(value)
    if Redactor(["secret"]).redact(text) != text:
        return "a value that looks like a secret (not shown)"
    return text if len(text) <= 80 else f"{text[:77]}..."


def load_config(path: str | Path | None = None) -> Config:
    """Find, read and validate the configuration; raise ConfigError (exit 2) on any mistake."""
    builtin = _read_yaml(DEFAULTS_FILE, BUILTIN)
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
    try:
        parsed = _File.model_validate(data)
    except ValidationError as exc:
        raise _first(_schema_mistakes(exc, data) + mistakes, label) from None
    if mistakes:
        raise _first(mistakes, label)
    cfg = Config(parsed, source=label, config_dir=folder)
    cycle = cycle_mistake(data, {name: tier.fallback for name, tier in cfg.tiers.items()})
    if cycle is not None:
        raise _first([cycle], label)
    cfg.origin = why
    return cfg
