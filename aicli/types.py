"""The data that flows through aicli, defined once: Request, Result, Usage, TemplateRef."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

CacheMode = Literal["use", "off", "refresh", "only"]
Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}


@dataclass
class Usage:
    """Tokens of one answer, as the provider reported them (or as estimated)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Usage:
        data = data or {}
        prompt = int(data.get("prompt_tokens") or 0)
        completion = int(data.get("completion_tokens") or 0)
        total = int(data.get("total_tokens") or (prompt + completion))
        return cls(prompt, completion, total)


@dataclass(frozen=True)
class TemplateRef:
    """Which template (and exactly which content) produced a request's messages."""

    name: str
    version: str
    checksum: str


@dataclass
class Request:
    """One model request, as the CLI or the suite runner hands it to the engine."""

    messages: list[Message]
    tier: str | None = None  # None: the config's default_tier
    model: str | None = None  # overrides the tier's model, same provider
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    schema: dict[str, Any] | None = None  # JSON Schema the answer must satisfy
    template: TemplateRef | None = None
    cache_mode: CacheMode = "use"
    redact: bool | None = None  # None: the config's redact.enabled
    fallback: bool = True  # False: only `tier` may answer (tier comparisons)
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class Result:
    """What the engine returns for a Request; `generate --json` prints `to_json()`."""

    content: str
    tier: str
    model_used: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    request_id: str = ""
    cached: bool = False
    stale: bool = False
    fallback_used: bool = False
    attempts: int = 0
    template: TemplateRef | None = None
    provider: str = ""
    tiers_tried: list[str] = field(default_factory=list)
    redactions: dict[str, int] = field(default_factory=dict)  # kind -> count, never values
    cache_key: str = ""
    recorded_cost_usd: float | None = None  # --replay: what the answer cost when recorded

    @property
    def tokens_used(self) -> int:
        return self.usage.total_tokens

    def log_fields(self) -> dict[str, Any]:
        """The fields of a `request` log line (CLI -v and serve): no prompt, answer or key."""
        return {
            "request_id": self.request_id,
            "tier": self.tier,
            "model": self.model_used,
            "cached": self.cached,
            "stale": self.stale,
            "fallback_used": self.fallback_used,
            "attempts": self.attempts,
            "latency_ms": round(self.latency_ms, 1),
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "cost_usd": round(self.cost_usd, 8),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "content": self.content,
            "cached": self.cached,
            "stale": self.stale,
            "model_used": self.model_used,
            "tier": self.tier,
            "provider": self.provider,
            "tokens_used": self.tokens_used,
            "usage": asdict(self.usage),
            "cost_usd": round(self.cost_usd, 8),
            "latency_ms": round(self.latency_ms, 1),
            "request_id": self.request_id,
            "fallback_used": self.fallback_used,
            "attempts": self.attempts,
            "tiers_tried": list(self.tiers_tried),
            "template": asdict(self.template) if self.template else None,
            "redactions": dict(self.redactions),
        }
