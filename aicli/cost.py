"""Cost: prices times usage, worst-case bounds before a call, and the per-invocation budget."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from aicli.config import Price
from aicli.errors import BudgetError
from aicli.types import Message, Usage, message_text

log = logging.getLogger("aicli")

DEFAULT_MAX_TOKENS = 4096  # sent when neither the request nor the tier sets max_tokens
# The chat format's own tokens: role markers and separators per message, and the reply's start.
MESSAGE_OVERHEAD_TOKENS = 8
REPLY_OVERHEAD_TOKENS = 8
_HINT = "raise --max-cost (or budget.max_cost_usd), lower --max-tokens, or use a cheaper tier"


def cost_of(usage: Usage, price: Price) -> float:
    return (
        usage.prompt_tokens * price.input_per_1m + usage.completion_tokens * price.output_per_1m
    ) / 1_000_000


def estimate_tokens(text: str) -> int:
    """A deliberately generous token estimate (about 3 characters a token) with no tokenizer."""
    return max(1, math.ceil(len(text) / 3))


def estimate_usage(messages: list[Message], answer: str) -> Usage:
    """Usage for a provider that reports none (the echo provider, some local servers)."""
    prompt = sum(estimate_tokens(message_text(m)) + 4 for m in messages)
    completion = estimate_tokens(answer) if answer else 0
    return Usage(prompt, completion, prompt + completion)


def prompt_token_bound(
    messages: list[Message],
    schema: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> int:
    """Tokens the prompt cannot exceed, with no tokenizer: every token of a byte-level BPE or
    SentencePiece tokenizer stands for at least one UTF-8 byte, so the byte count bounds the
    text, plus the chat format's fixed tokens (and the --schema sent as response_format). A
    message with more than text (tool calls, parts) and the request's other fields (tools,
    response_format) count with their whole JSON, an over-estimate: money fails closed."""
    text = sum(_message_bytes(m) for m in messages)
    if schema is not None:
        text += len(json.dumps(schema).encode("utf-8"))
    if extra:
        text += len(json.dumps(extra, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    return text + MESSAGE_OVERHEAD_TOKENS * len(messages) + REPLY_OVERHEAD_TOKENS


def _message_bytes(message: Message) -> int:
    content = message.get("content")
    if isinstance(content, str) and len(message) == 2:  # role and text: the common case
        return len(content.encode("utf-8", "surrogatepass"))
    return len(json.dumps(message, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def worst_case_cost(
    messages: list[Message],
    max_tokens: int,
    price: Price,
    schema: dict[str, Any] | None = None,
    *,
    extra: dict[str, Any] | None = None,
) -> float:
    """What one call can cost at most: the prompt's token bound plus a full max_tokens answer."""
    prompt = prompt_token_bound(messages, schema, extra)
    return cost_of(Usage(prompt, max_tokens, prompt + max_tokens), price)


class Budget:
    """A hard cap for one invocation: each call reserves its worst case before it is sent, and
    settles with the usage that came back; the sum of reservations never passes the cap."""

    def __init__(self, max_cost_usd: float | None) -> None:
        self.cap = max_cost_usd
        self.spent = 0.0
        self.reserved = 0.0
        self.overrun = False  # a server reported more than the bound it was reserved for

    def reserve(self, amount: float, what: str) -> float:
        total = self.spent + self.reserved + amount
        if self.cap is not None and (self.overrun or total > self.cap + 1e-12):
            raise BudgetError(
                f"{what} could cost up to ${amount:.6f}, and ${self.spent:.6f} is already spent:"
                f" over the ${self.cap:.6f} budget; nothing more was sent",
                _HINT,
            )
        self.reserved += amount
        return amount

    def settle(self, reserved: float, actual: float, what: str = "a call") -> None:
        """Count what a call really cost; past its reservation, nothing more is spent."""
        self.reserved = max(0.0, self.reserved - reserved)
        self.spent += actual
        if self.cap is not None and actual > reserved + 1e-12:
            self.overrun = True  # stop: the bound did not hold for this server
            log.warning(
                "%s reported usage costing $%.6f, over the $%.6f bound reserved for it; no more"
                " calls will be made",
                what, actual, reserved,
                extra={"event": "budget.overrun", "cost_usd": actual, "reserved_usd": reserved},
            )  # fmt: skip

    def check_overrun(self) -> None:
        """Exit 4 after the fact when a server's reported usage pushed spending past the bound."""
        if self.overrun:
            raise BudgetError(
                f"the server reported more usage than was reserved: ${self.spent:.6f} counted"
                f" against the ${self.cap:.6f} budget; nothing more was sent",
                _HINT,
            )
