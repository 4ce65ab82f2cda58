"""Configuration: find the YAML file, validate it strictly, resolve tiers.

Search order (first hit wins): --config, $AICLI_CONFIG, ./aicli.yaml,
$XDG_CONFIG_HOME/aicli/config.yaml, built-in defaults (aicli/defaults.yaml == config.example.yaml).
A user file replaces the built-in tiers when it has `tiers:`; the built-in providers `openai` and
`echo` always exist unless the file redefines them.

The settings are frozen dataclasses. A valid file is checked by config_schema.py without pydantic
(its import alone is ~50 ms of every command's start-up); whatever that check does not accept
goes to pydantic models made from the same classes, which word the errors.
"""

# No `from __future__ import annotations`: the settings' annotations stay objects, so checking a
# file needs no typing.get_type_hints (it evaluates every annotation string, ~3 ms). Every
# settings class has a docstring: without one, @dataclass writes its signature as one (~0.1 ms).
import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from aicli.config_check import Mistake, cycle_mistake, position, reference_mistakes
from aicli.config_schema import Limit, check, hints, is_settings
from aicli.errors import ConfigError, close_matches, did_you_mean

if TYPE_CHECKING:
    from pydantic import ValidationError

    from aicli.types import Request

DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")
# The same settings as JSON, written by scripts/gen_defaults_json.py (a test keeps the two
# equal): reading them needs no YAML parser, so a command run without a config file never
# imports PyYAML (~8 ms of start-up).
DEFAULTS_JSON = DEFAULTS_FILE.with_suffix(".json")
BUILTIN = "built-in defaults"
REDACT_KINDS = ("email", "phone", "card", "iban", "secret")
MAX_TOKENS = 10_000_000  # far above any model's context; bounds cost estimates and requests
MAX_TTL = 10 * 365 * 86_400  # ten years
_KEY_PATH = re.compile(r"key|token|secret|passw", re.IGNORECASE)

# Validation is strict: "200" is not a number and "yes" is not a boolean (ints still pass as
# floats); .inf and .nan are no price, timeout or budget (and would print as invalid JSON);
# unknown keys are errors.


@dataclass(frozen=True, kw_only=True)
class Price:
    """A tier's price in USD per million tokens."""

    input_per_1m: Annotated[float, Limit(ge=0, le=1e6)] = 0.0
    """USD per million prompt tokens."""
    output_per_1m: Annotated[float, Limit(ge=0, le=1e6)] = 0.0
    """USD per million completion tokens."""


@dataclass(frozen=True, kw_only=True)
class ProviderConfig:
    """One endpoint: its API type, base URL, the variable holding its key."""

    type: Literal["openai", "echo"] = "openai"
    """`openai` (any OpenAI-compatible endpoint) or `echo` (offline: answers with the prompt)."""
    base_url: str | None = None
    """The endpoint, `http(s)://host[:port]/...`; required but for `type: echo`. `$OPENAI_BASE_URL`
    overrides the provider named `openai`."""
    api_key_env: str | None = None
    """The NAME of the env var holding the key, read at call time (a literal `api_key:` is
    refused)."""
    local: bool = False
    """A server on your own machine or network (Ollama, vLLM): prompts are sent unredacted, no key
    needed."""
    batch: bool = False
    """It speaks OpenAI's Batch API (`POST /files`, `/batches`, ...): `test-prompts --batch`
    sends this provider's calls in batches, at the tier's `batch_price`."""


@dataclass(frozen=True, kw_only=True)
class TierSettings:
    """The keys `defaults` holds and every tier may override."""

    max_tokens: Annotated[int, Limit(gt=0, le=MAX_TOKENS)] | None = None
    """Upper bound on the answer's tokens, always sent; `--max-cost` reserves a whole answer."""
    temperature: Annotated[float, Limit(ge=0, le=2)] | None = None
    """Sampling temperature, 0 to 2."""
    timeout_seconds: Annotated[float, Limit(gt=0, le=86_400)] | None = None
    """Deadline for each whole HTTP attempt (body and stream included)."""
    max_retries: Annotated[int, Limit(ge=0, le=20)] | None = None
    """Retries of timeouts, connection errors, 408/409/429 and 5xx, by the openai SDK."""
    cache_ttl: Annotated[int, Limit(ge=0, le=MAX_TTL)] | None = None
    """Seconds an answer stays fresh in the cache; 0: never cache this tier."""
    rate_limit: Annotated[float, Limit(gt=0, le=1e6)] | None = None
    """Client-side cap in requests per minute, per tier; null: none (a 429 slows a tier anyway)."""


@dataclass(frozen=True, kw_only=True)
class Defaults(TierSettings):
    """`defaults`: what a tier inherits unless it sets its own."""

    max_tokens: Annotated[int, Limit(gt=0, le=MAX_TOKENS)] | None = 2000
    temperature: Annotated[float, Limit(ge=0, le=2)] | None = 0.3
    timeout_seconds: Annotated[float, Limit(gt=0, le=86_400)] | None = 30.0
    max_retries: Annotated[int, Limit(ge=0, le=20)] | None = 3
    cache_ttl: Annotated[int, Limit(ge=0, le=MAX_TTL)] | None = 3600
    rate_limit: Annotated[float, Limit(gt=0, le=1e6)] | None = None  # no client-side cap unless set


@dataclass(frozen=True, kw_only=True)
class TierConfig(TierSettings):
    """One tier: a model on a provider, its fallbacks and price."""

    model: Annotated[str, Limit(min_len=1)]
    """The model name sent to the provider (`-m` overrides it for one call)."""
    provider: str = "openai"
    """The provider (a key of `providers`) that serves the model."""
    fallback: list[str] = field(default_factory=list)
    """The tier, or list of tiers, tried when this one fails (depth first, each once)."""
    price: Price = field(default_factory=Price)
    """The price that turns reported usage into `cost_usd`; without one a tier costs $0 (with a
    warning under a budget)."""
    batch_price: Price | None = None
    """The price of an answer through the Batch API (`test-prompts --batch`); default: half of
    `price`."""

    def price_for(self, batched: bool) -> Price:
        """The price of a call, direct or through a batch (default: half the direct price)."""
        if not batched:
            return self.price
        if self.batch_price is not None:
            return self.batch_price
        return Price(
            input_per_1m=self.price.input_per_1m / 2, output_per_1m=self.price.output_per_1m / 2
        )

    def capped(self, asked: int | None) -> int | None:
        """A caller's max_tokens under this tier: fewer than the tier allows, never more."""
        if asked is None or self.max_tokens is None:
            return asked
        return min(asked, self.max_tokens)


@dataclass(frozen=True, kw_only=True)
class CacheConfig:
    """`cache`: the backend (disk or Redis), where it lives, its limits."""

    backend: Literal["disk", "redis"] = "disk"
    """`disk` or `redis` (`pip install 'aicli-prod[redis]'`); `$AICLI_CACHE_BACKEND` overrides."""
    dir: str | None = None
    """disk: the cache folder; null: `$XDG_CACHE_HOME/aicli` (`~/.cache/aicli`). `$AICLI_CACHE_DIR`
    overrides."""
    size_limit_mb: Annotated[int, Limit(gt=0, le=100_000_000)] = 1024
    """disk: least recently used answers are evicted past this size."""
    url: Annotated[str, Limit(min_len=1, pattern=r"^(?:redis|rediss|unix)://")] | None = None
    """redis: e.g. `redis://cache.internal:6379/0`; a password here is refused (use `url_env`)."""
    url_env: Annotated[str, Limit(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = "AICLI_REDIS_URL"
    """redis: the NAME of an env var with the full URL (password, `rediss://`); wins over `url`.
    Default `$AICLI_REDIS_URL`."""
    namespace: Annotated[str, Limit(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = "aicli"
    """Key prefix (`<namespace>:v1:...`): several projects can share one Redis or cache folder."""
    stale_for: Annotated[int, Limit(ge=0)] = 604800
    """redis: seconds an expired answer is kept as a stale fallback."""
    timeout_seconds: Annotated[float, Limit(gt=0, le=60)] = 1.0
    """redis: bound on each Redis operation; a dead Redis is skipped after one warning."""


@dataclass(frozen=True, kw_only=True)
class RedactConfig:
    """`redact`: what is replaced by placeholders before a prompt leaves."""

    enabled: bool = True
    """Replace e-mails, phones, cards, IBANs and secrets with placeholders before a prompt leaves
    (`--no-redact`: off for one call)."""
    kinds: list[Literal["email", "phone", "card", "iban", "secret"]] | None = None
    """Which kinds to redact (`email`, `phone`, `card`, `iban`, `secret`); null: all."""


@dataclass(frozen=True, kw_only=True)
class BudgetConfig:
    """`budget`: the most one invocation may spend."""

    max_cost_usd: Annotated[float, Limit(ge=0, le=1e9)] | None = None
    """Hard cap in USD for one invocation (`--max-cost` overrides); null: none."""


@dataclass(frozen=True, kw_only=True)
class CooldownConfig:
    """`cooldown`: when a tier that keeps failing is skipped, and how soon it is tried again."""

    failures: Annotated[int, Limit(gt=0, le=1000)] = 3
    """Provider faults in a row that trip a tier's cooldown: connection errors, timeouts, HTTP 5xx
    and 429 (never an empty or off-schema answer, or another 4xx: the request made those)."""
    seconds: Annotated[float, Limit(ge=0, le=86_400)] = 30.0
    """How long a tripped tier is skipped; a probe that fails starts it again, one that answers
    ends it at once."""
    probe_seconds: Annotated[float, Limit(gt=0, le=86_400)] | None = 2.0
    """Meanwhile one call this often tries the tier (half-open); if it answers, the tier is back
    at once. `null`: no probes, the tier waits out `seconds`."""


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """`aicli serve`: who gets in, limits, the daily budget, how long a stop may take."""

    tokens_env: str = "AICLI_SERVE_TOKENS"
    """The NAME of an env var with comma-separated bearer tokens (default `$AICLI_SERVE_TOKENS`);
    unset or empty: no auth, loopback only."""
    max_body_kb: Annotated[int, Limit(gt=0)] = 1024
    """Larger request bodies get 413."""
    max_concurrency: Annotated[int, Limit(gt=0)] = 64
    """Requests in flight per worker; beyond it 429 with `Retry-After`."""
    daily_budget_usd: Annotated[float, Limit(ge=0, le=1e6)] | None = None
    """Spend cap per UTC day across workers (and replicas sharing a Redis cache); past it 429
    `insufficient_quota`; null: none. At most $1M: the shared counter counts nano-dollars
    exactly."""
    budget_when_unavailable: Literal["refuse", "local"] = "refuse"
    """When the shared spend counter cannot be reached (Redis down): `refuse` paid calls (503
    `budget_unavailable` with `Retry-After`), or `local`: each worker may spend its share of what
    was left (`daily_budget_usd / budget_local_share` at most), added to the counter once it is
    back. Cache hits and price-0 tiers answer either way."""
    budget_local_share: Annotated[float, Limit(ge=1, le=1e6)] = 4.0
    """With `budget_when_unavailable: local`, the share of the daily budget one worker may spend
    while the counter is unreachable: `daily_budget_usd / budget_local_share`."""
    shutdown_timeout: Annotated[float, Limit(ge=0)] = 30.0
    """Seconds SIGTERM waits for requests in flight (streams too)."""
    body_timeout_seconds: Annotated[float, Limit(gt=0, le=3600)] = 10.0
    """Seconds a request body may take to arrive after its headers; slower gets 408."""
    keep_alive_seconds: Annotated[float, Limit(gt=0, le=3600)] = 5.0
    """Seconds an idle connection is kept open, and the most a new connection may take to send
    its headers; then it is closed."""


@dataclass(frozen=True, kw_only=True)
class _File:
    """The file as written: every key optional, nothing unknown."""

    default_tier: str = "standard"
    """The tier used when `-t/--tier` is not given."""
    prompts_dir: str = "prompts"
    """Prompt templates and suites, relative to the config file's folder."""
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    """OpenAI-compatible endpoints by name; `openai` and `echo` are built in."""
    defaults: Defaults = field(default_factory=Defaults)
    """What every tier inherits unless it sets its own."""
    tiers: dict[str, TierConfig] = field(default_factory=dict)
    """Named tiers; a file with `tiers:` replaces all the built-in ones."""
    cache: CacheConfig = field(default_factory=CacheConfig)
    """Where answers are cached."""
    redact: RedactConfig = field(default_factory=RedactConfig)
    """What is replaced before a prompt leaves."""
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    """The most one invocation may spend."""
    cooldown: CooldownConfig = field(default_factory=CooldownConfig)
    """When a tier whose provider keeps failing is skipped, and how it is probed to come back."""
    serve: ServeConfig = field(default_factory=ServeConfig)
    """`aicli serve` (`pip install 'aicli-prod[serve]'`)."""


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
        self.cooldown = data.cooldown
        self.serve = data.serve
        inherited = dataclasses.asdict(data.defaults)
        self.tiers: dict[str, TierConfig] = {
            name: dataclasses.replace(
                tier, **{k: v for k, v in inherited.items() if getattr(tier, k) is None}
            )
            for name, tier in data.tiers.items()
        }

    def tier_for(self, request: "Request") -> str:
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


def _schema_mistakes(exc: "ValidationError", data: dict[str, Any]) -> list[Mistake]:
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
    parsed = check(_File, _one_or_many_fallbacks(data))
    if parsed is None:  # not plainly valid: pydantic decides and words what is wrong
        parsed = _validate(data, mistakes, label)
    if mistakes:
        raise _first(mistakes, label)
    cfg = Config(parsed, source=label, config_dir=folder)
    cycle = cycle_mistake(data, {name: tier.fallback for name, tier in cfg.tiers.items()})
    if cycle is not None:
        raise _first([cycle], label)
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


def _validate(data: dict[str, Any], mistakes: list[Mistake], label: str) -> _File:
    from pydantic import ValidationError as Invalid

    from aicli.config_schema import pydantic_model

    try:
        model = pydantic_model(_File).model_validate(_one_or_many_fallbacks(data))
    except Invalid as exc:
        raise _first(_schema_mistakes(exc, data) + mistakes, label) from None
    parsed = check(_File, model.model_dump(exclude_unset=True))  # pydantic's normalised values
    if parsed is None:
        raise ConfigError(f"{label}: the settings could not be read", "this is a bug in aicli")
    return parsed  # type: ignore[no-any-return]
