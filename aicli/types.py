"""The data that flows through aicli, defined once: Request, Result, Message, stream events."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypedDict

CacheMode = Literal["use", "off", "refresh", "only"]


class ToolFunction(TypedDict):
    """The function a tool call names, with its arguments as the JSON text the model wrote."""

    name: str
    arguments: str


class ToolCall(TypedDict):
    """One tool call in OpenAI's shape: `{"id", "type": "function", "function": {...}}`."""

    id: str
    type: str
    function: ToolFunction


class _MessageRole(TypedDict):
    role: str  # system | developer | user | assistant | tool (any other is refused upstream)


class Message(_MessageRole, total=False):
    """One chat message as it is sent to a provider. A template or the CLI makes only `role`
    and a string `content`; an OpenAI client may also send content parts, an assistant's
    `tool_calls`, a tool result's `tool_call_id`, a `name`, and fields aicli does not know,
    which travel unchanged."""

    content: str | list[dict[str, Any]] | None
    name: str
    tool_calls: list[ToolCall]
    tool_call_id: str
    refusal: str | None


def message_text(message: Message) -> str:
    """The message's text: string content or its text parts (what the echo provider and the
    usage estimate read)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


# ---- what a stream delivers, in order: text and tool-call pieces, then the finish reason ----


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer's text."""

    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of tool call `index`: its first piece carries `id` and `name`, every piece may
    carry more of its `arguments` (OpenAI's streamed tool-call deltas)."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True)
class FinishEvent:
    """Why the answer ended: stop, length, tool_calls, content_filter."""

    reason: str


StreamEvent = TextDelta | ToolCallDelta | FinishEvent
EventSink = Callable[[StreamEvent], None]


def text_sink(on_text: Callable[[str], None]) -> EventSink:
    """An EventSink for a caller that shows only text (the CLI)."""

    def sink(event: StreamEvent) -> None:
        if isinstance(event, TextDelta) and event.text:
            on_text(event.text)

    return sink


def answer_events(
    content: str, tool_calls: list[ToolCall] | None, finish_reason: str | None
) -> list[StreamEvent]:
    """A whole answer (a cache hit, a replay) as the events a stream of it delivers."""
    events: list[StreamEvent] = [TextDelta(content)] if content else []
    for index, call in enumerate(tool_calls or []):
        function = call["function"]
        events.append(ToolCallDelta(index, call["id"], function["name"], function["arguments"]))
    events.append(FinishEvent(finish_reason or ("tool_calls" if tool_calls else "stop")))
    return events


@dataclass(slots=True)
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
    # The rest of the provider's body, sent as given and keyed (an OpenAI client's tools, stop,
    # top_p, response_format, ... and fields aicli does not know); never model or messages.
    extra: dict[str, Any] = field(default_factory=dict)
    # Which field carries the token limit: newer OpenAI models take only max_completion_tokens.
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    front: Literal["cli", "http"] = "cli"  # whose words errors use: flags, or HTTP/JSON fields
    template: TemplateRef | None = None
    cache_mode: CacheMode = "use"
    redact: bool | None = None  # None: the config's redact.enabled
    fallback: bool = True  # False: only `tier` may answer (tier comparisons)
    # a suite case's run 1, 2, ... as 0, 1, ...: runs after the first are keyed apart
    repeat: int = 0
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
    batch_saved_usd: float = 0.0  # answered through a batch: the price difference it saved
    tool_calls: list[ToolCall] | None = None  # restored like content; not in to_json()
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None  # as the provider reported them, when asked for
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
