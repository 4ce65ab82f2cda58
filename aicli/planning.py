"""What each tier of a request's fallback chain would be sent: redaction, model, parameters, key.

The engine asks for a plan before it looks anything up, so the cache key, the recording key and
the request a provider gets are all one body (providers.body.chat_body), with the messages
redacted unless the tier's provider is local."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aicli.config import Config
from aicli.cost import DEFAULT_MAX_TOKENS
from aicli.errors import UsageError
from aicli.settings import TierConfig
from aicli.types import Message, Request

if TYPE_CHECKING:
    from aicli.redact import Redactor


@dataclass
class Plan:
    """One tier of the fallback chain, with exactly what would be sent to it."""

    name: str
    tier: TierConfig
    model: str
    messages: list[Message]
    key: str
    redacted: bool
    body: dict[str, Any]  # exactly what the provider is sent (before `stream`); `key` hashes it


def make_redactor(cfg: Config, request: Request) -> Redactor | None:
    """The request's redactor, or None when redaction is off for it."""
    enabled = cfg.redact.enabled if request.redact is None else request.redact
    if not enabled:
        return None
    from aicli.redact import Redactor

    return Redactor(cfg.redact.kinds)


def max_tokens_for(request: Request, tier: TierConfig) -> int:
    """Always a number: the answer's cost must be bounded before the call."""
    return request.max_tokens or tier.max_tokens or DEFAULT_MAX_TOKENS


def temperature_for(request: Request, tier: TierConfig) -> float | None:
    return request.temperature if request.temperature is not None else tier.temperature


def repeat_key(key: str, repeat: int) -> str:
    """The key of a suite case's run `repeat + 1`: each repeat is its own cache and recording
    entry, so a second run of a suite costs nothing. Run 1 keeps the request's own key, so
    caches and recordings made before repeats were keyed still match."""
    if repeat <= 0:
        return key
    from aicli.digest import sha256_hex

    return sha256_hex(f"{key}/repeat/{repeat}".encode())


def plan_request(cfg: Config, request: Request, redactor: Redactor | None) -> list[Plan]:
    """One Plan per tier the request may be answered by, first tier first."""
    from aicli.cache import cache_key
    from aicli.providers.body import chat_body

    first = cfg.tier_for(request)
    redacted: list[Message] | UsageError | None = None  # redacted once, when a tier needs it
    plans = []
    chain = cfg.fallback_chain(first) if request.fallback else [first]
    for position, name in enumerate(chain):
        tier = cfg.tier(name)
        model = request.model if (request.model and position == 0) else tier.model
        use_redacted = redactor is not None and not cfg.provider(tier.provider).local
        messages = request.messages
        if use_redacted and redactor is not None:
            if redacted is None:
                try:
                    redacted = redactor.redact_messages(request.messages)
                except UsageError as refused:  # a shape redaction cannot read
                    redacted = refused
            if isinstance(redacted, UsageError):
                if position == 0:
                    raise redacted
                continue  # never sent unredacted: this fallback tier is left out
            messages = redacted
        body = chat_body(
            model=model,
            messages=messages,
            max_tokens=max_tokens_for(request, tier),
            max_tokens_field=request.max_tokens_field,
            temperature=temperature_for(request, tier),
            seed=request.seed,
            schema=request.schema,
            extra=request.extra,
        )
        key = cache_key(
            base_url=cfg.base_url(tier.provider),
            body=body,
            template_checksum=request.template.checksum if request.template else None,
        )
        key = repeat_key(key, request.repeat)  # a separate input: run 1 keeps its key
        plans.append(Plan(name, tier, model, messages, key, use_redacted, body))
    return plans
