"""Cost: prices times usage, worst-case bounds before a call, how money is written in messages,
the SpendLimit protocol every spending cap speaks, and the per-invocation budget."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from typing import Any, Protocol

from aicli.errors import BudgetError
from aicli.settings import Price, TierConfig
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


def batch_saving(usage: Usage, tier: TierConfig) -> float:
    """What answering through a batch saved against the tier's direct price, for this usage."""
    return max(0.0, cost_of(usage, tier.price) - cost_of(usage, tier.price_for(True)))


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


def usd(amount: float) -> str:
    """Money as a message shows it: its significant digits kept ($0.001, $0.0000001, $2.32),
    never rounded to a cent or to six places."""
    if amount == 0:
        return "$0.00"
    sign, amount = ("-", -amount) if amount < 0 else ("", amount)
    # six significant digits, at least cents, at most nano-dollars and below
    places = min(15, max(2, 5 - math.floor(math.log10(amount))))
    text = f"{amount:.{places}f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"{sign}${whole}.{cents.ljust(2, '0')}"


class Ticket:
    """What one reservation holds back; each limit's own ticket says more (its day, its id)."""

    def __init__(self, usd: float) -> None:
        self.usd = usd


class SpendLimit(Protocol):
    """A spending limit: `reserve` a call's worst case before it is sent (refusing with a
    BudgetError when the limit would be passed), then `settle` the ticket to what the call
    really cost, or `release` it when nothing was sent. `settle` and `release` never raise: a
    limit that cannot record them now does so later, exactly once."""

    @property
    def capped(self) -> bool:
        """Whether it limits anything (an unpriced tier is then worth a warning)."""

    async def reserve(self, amount_usd: float, what: str) -> Ticket: ...

    async def settle(self, ticket: Ticket, actual_usd: float, what: str) -> None: ...

    async def release(self, ticket: Ticket) -> None: ...


async def reserve_all(
    limits: Sequence[SpendLimit], amount_usd: float, what: str
) -> list[tuple[SpendLimit, Ticket]]:
    """Reserve on every limit, in order; when one refuses (or fails), release the others."""
    taken: list[tuple[SpendLimit, Ticket]] = []
    try:
        for limit in limits:
            taken.append((limit, await limit.reserve(amount_usd, what)))
    except BaseException:
        await release_all(taken)
        raise
    return taken


async def settle_all(
    tickets: Sequence[tuple[SpendLimit, Ticket]], actual: float, what: str
) -> None:
    for limit, ticket in tickets:
        await limit.settle(ticket, actual, what)


async def release_all(tickets: Sequence[tuple[SpendLimit, Ticket]]) -> None:
    for limit, ticket in reversed(tickets):
        await limit.release(ticket)


class Budget:
    """A hard cap for one invocation (or one service request): each call reserves its worst
    case before it is sent, and settles with the usage that came back; the sum of reservations
    never passes the cap. One process, one event loop: no lock is needed between the steps."""

    def __init__(self, max_cost_usd: float | None) -> None:
        self.cap = max_cost_usd
        self.spent = 0.0
        self.reserved = 0.0
        self.overrun = False  # a server reported more than the bound it was reserved for

    @property
    def capped(self) -> bool:
        return self.cap is not None

    async def reserve(self, amount_usd: float, what: str) -> Ticket:
        total = self.spent + self.reserved + amount_usd
        if self.cap is not None and (self.overrun or total > self.cap + 1e-12):
            held = f" and {usd(self.reserved)} reserved by calls in flight" if self.reserved else ""
            raise BudgetError(
                f"{what} could cost up to {usd(amount_usd)}; {usd(self.spent)} is already spent"
                f"{held}: over the {usd(self.cap)} budget; nothing more was sent",
                _HINT,
            )
        self.reserved += amount_usd
        return Ticket(amount_usd)

    async def release(self, ticket: Ticket) -> None:
        self.reserved = max(0.0, self.reserved - ticket.usd)

    async def settle(self, ticket: Ticket, actual_usd: float, what: str = "a call") -> None:
        """Count what a call really cost; past its reservation, nothing more is spent."""
        reserved = ticket.usd
        self.reserved = max(0.0, self.reserved - reserved)
        self.spent += actual_usd
        if self.cap is not None and actual_usd > reserved + 1e-12:
            self.overrun = True  # stop: the bound did not hold for this server
            log.warning(
                "%s reported usage costing %s, over the %s bound reserved for it; no more"
                " calls will be made",
                what, usd(actual_usd), usd(reserved),
                extra={"event": "budget.overrun", "cost_usd": actual_usd, "reserved_usd": reserved},
            )  # fmt: skip

    def check_overrun(self) -> None:
        """Exit 4 after the fact when a server's reported usage pushed spending past the bound."""
        if self.overrun:
            assert self.cap is not None
            raise BudgetError(
                f"the server reported more usage than was reserved: {usd(self.spent)} counted"
                f" against the {usd(self.cap)} budget; nothing more was sent",
                _HINT,
            )
