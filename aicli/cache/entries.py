"""What the cache stores: the cache key of a request and the CacheEntry JSON of its answer.

Both backends hold exactly this JSON text (never pickle), so a Redis and a disk cache are
interchangeable and a tampered store can at worst produce a miss.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from aicli.digest import sha256_hex
from aicli.types import Message, Usage

KEY_VERSION = 1  # bump when the key's inputs change: old entries then simply stop matching
ENTRY_VERSION = 1


@dataclass
class CacheEntry:
    """One cached answer, exactly what a hit (or a stale answer) needs to become a Result."""

    content: str
    model_used: str
    provider: str
    tier: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    created: float = field(default_factory=time.time)  # epoch seconds
    expires: float | None = None  # epoch seconds; None: never expires
    template_checksum: str | None = None

    def expired(self, now: float | None = None) -> bool:
        return self.expires is not None and (time.time() if now is None else now) >= self.expires

    def to_dict(self) -> dict[str, Any]:
        return {"version": ENTRY_VERSION, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: object) -> CacheEntry:
        """Parse stored text; anything that is not an entry's JSON raises ValueError."""
        if not isinstance(raw, str):
            raise ValueError(f"stored value is {type(raw).__name__}, not JSON text")
        try:
            return cls.from_dict(json.loads(raw))
        except RecursionError:
            raise ValueError("nested too deeply") from None

    @classmethod
    def from_dict(cls, data: Any) -> CacheEntry:
        """Build an entry from `to_dict()` output; anything malformed raises ValueError."""
        if not isinstance(data, dict):
            raise ValueError(f"expected an object, got {type(data).__name__}")
        usage = data.get("usage")
        if not isinstance(usage, dict):
            raise ValueError("field 'usage' is not an object")
        num = (int, float)
        expires = _typed(data, "expires", num, optional=True)
        return cls(
            content=_typed(data, "content", str),
            model_used=_typed(data, "model_used", str),
            provider=_typed(data, "provider", str),
            tier=_typed(data, "tier", str),
            usage=Usage(
                *(
                    _typed(usage, k, int)
                    for k in ("prompt_tokens", "completion_tokens", "total_tokens")
                )
            ),
            cost_usd=float(_typed(data, "cost_usd", num)),
            latency_ms=float(_typed(data, "latency_ms", num)),
            created=float(_typed(data, "created", num)),
            expires=None if expires is None else float(expires),
            template_checksum=_typed(data, "template_checksum", str, optional=True),
        )


def _typed(data: dict[str, Any], name: str, kind: Any, optional: bool = False) -> Any:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):  # a bool is never a count or time
        raise ValueError(f"field {name!r} is missing or has the wrong type")
    return value


def cache_key(
    *,
    base_url: str,
    model: str,
    messages: list[Message],
    max_tokens: int | None,
    temperature: float | None,
    seed: int | None,
    schema: dict[str, Any] | None,
    template_checksum: str | None,
) -> str:
    """SHA-256 hex of everything that changes the answer, and nothing else (never the API key)."""
    payload = {
        "v": KEY_VERSION,
        "base_url": (base_url or "").rstrip("/"),
        "model": model,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "max_tokens": None if max_tokens is None else int(max_tokens),
        "temperature": None if temperature is None else float(temperature),  # 1 and 1.0 agree
        "seed": None if seed is None else int(seed),
        "schema": schema,
        "template_checksum": template_checksum,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return sha256_hex(text.encode("utf-8"))
