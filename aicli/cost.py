"""Cost: prices times usage, worst-case estimates before a call, and the per-invocation budget."""

from __future__ import annotations

import math

from aicli.config import Price
from aicli.errors import BudgetError
from aicli.types import Message, Usage


def cost_of(usage: Usage, price: Price) -> float:
    return (
        usage.prompt_tokens * price.input_per_1m + usage.completion_tokens * price.output_per_1m
    ) / 1_000_000


def estimate_tokens(text: str) -> int:
    """A deliberately generous token estimate (about 3 characters a token) with no tokenizer."""
    return max(1, math.ceil(len(text) / 3))


def estimate_usage(messages: list[Message], answer: str) -> Usage:
    """Usage for a provider that reports none (the echo provider, some local servers)."""
    prompt = sum(estimate_tokens(m["content"]) + 4 for m in messages)
    completion = estimate_tokens(answer) if answer else 0
    return Usage(prompt, completion, prompt + completion)


def worst_case_cost(messages: list[Message], max_tokens: int, price: Price) -> float:
    """What one call could cost at most: the estimated prompt plus a full-length answer."""
    prompt = sum(estimate_tokens(m["content"]) + 4 for m in messages)
    return cost_of(Usage(prompt, max_tokens, prompt + max_tokens), price)


class Budget:
    """A hard cap for one invocation: calls reserve their worst case first, then settle."""

    def __init__(self, max_cost_usd: float | None) -> None:
        self.cap = max_cost_usd
        self.spent = 0.0
        self.reserved = 0.0

    def reserve(self, amount: float, what: str) -> float:
        if self.cap is not None and self.spent + self.reserved + amount > self.cap + 1e-12:
            raise BudgetError(
                f"{what} could cost up to ${amount:.6f}, and ${self.spent:.6f} is already spent:"
                f" over the ${self.cap:.6f} budget; nothing more was sent",
                "raise --max-cost (or budget.max_cost_usd), lower --max-tokens, or use a cheaper"
                " tier",
            )
        self.reserved += amount
        return amount

    def settle(self, reserved: float, actual: float) -> None:
        self.reserved = max(0.0, self.reserved - reserved)
        self.spent += actual
