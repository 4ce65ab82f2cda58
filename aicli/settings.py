"""The settings classes: every key a config file may hold, with its type, bounds, default and
description (the docstring under the field, which docs/config-reference.md is generated from).

The settings are frozen dataclasses. config_schema.py checks a file against them without
pydantic (its import alone is ~50 ms of every command's start-up); config.py loads a file into
them and resolves each tier against `defaults`.
"""

# No `from __future__ import annotations`: the settings' annotations stay objects, so checking a
# file needs no typing.get_type_hints (it evaluates every annotation string, ~3 ms). Every
# settings class has a docstring: without one, @dataclass writes its signature as one (~0.1 ms).
from dataclasses import dataclass, field
from typing import Annotated, Literal

from aicli.config_schema import Limit

MAX_TOKENS = 10_000_000  # far above any model's context; bounds cost estimates and requests
MAX_TTL = 10 * 365 * 86_400  # ten years

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
class ConfigFile:
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
