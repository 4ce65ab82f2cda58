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
from aicli.errors import UsageError
from aicli.types import ToolCall, Usage

# Bump when the key's inputs change: old entries then simply stop matching. 2: the key is the
# whole body sent to the provider (tools, stop, top_p, ...), not a hand-picked list of fields.
KEY_VERSION = 2
ENTRY_VERSION = 1
# Body fields that do not change the answer: who asked, and how it is delivered or stored.
NOT_IN_KEY = frozenset({"user", "stream", "stream_options", "store", "metadata"})


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
    tool_calls: list[ToolCall] | None = None
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None

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
            tool_calls=tool_calls_of(data.get("tool_calls")),
            finish_reason=_typed(data, "finish_reason", str, optional=True),
            logprobs=_typed(data, "logprobs", dict, optional=True),
        )


def tool_calls_of(value: Any) -> list[ToolCall] | None:
    """Stored tool calls, checked field by field (a tampered entry is a miss, never a crash)."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError("field 'tool_calls' is not a list")
    calls: list[ToolCall] = []
    for call in value:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise ValueError("a stored tool call has no function")
        calls.append(
            {
                "id": _typed(call, "id", str),
                "type": _typed(call, "type", str),
                "function": {
                    "name": _typed(function, "name", str),
                    "arguments": _typed(function, "arguments", str),
                },
            }
        )
    return calls


def _typed(data: dict[str, Any], name: str, kind: Any, optional: bool = False) -> Any:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):  # a bool is never a count or time
        raise ValueError(f"field {name!r} is missing or has the wrong type")
    return value


def cache_key(*, base_url: str, body: dict[str, Any], template_checksum: str | None) -> str:
    """SHA-256 hex of exactly the body a provider is sent, in canonical JSON, minus the fields
    that do not change the answer (NOT_IN_KEY), with the endpoint and the template's checksum;
    never the API key. UsageError for a body nested too deeply to hash."""
    payload = {
        "v": KEY_VERSION,
        "base_url": (base_url or "").rstrip("/"),
        "body": {k: v for k, v in body.items() if k not in NOT_IN_KEY},
        "template_checksum": template_checksum,
    }
    try:
        text = json.dumps(
            _canonical(payload), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
    except (RecursionError, ValueError):
        raise UsageError("the request is nested too deeply to be keyed") from None
    return sha256_hex(text.encode("utf-8", "surrogatepass"))


def _canonical(value: Any) -> Any:
    """The same value for the same meaning: 1 and 1.0 are one number (temperature: 1 or 1.0)."""
    kind = type(value)
    if kind is str:  # the most common by far: checked first (a cache hit's start-up)
        return value
    if kind is dict:
        return {k if type(k) is str else str(k): _canonical(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    return value
