"""Rate limits and cooldowns per tier (retries and backoff themselves are the openai SDK's)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiolimiter import AsyncLimiter


class TierLimiters:
    """One client-side leaky bucket per tier: `rate_limit` requests per minute."""

    def __init__(self) -> None:
        self._limiters: dict[str, AsyncLimiter] = {}

    def get(self, tier: str, per_minute: float) -> AsyncLimiter:
        limiter = self._limiters.get(tier)
        if limiter is None:
            from aiolimiter import AsyncLimiter

            # Bursts of up to one second's worth keep small runs snappy without exceeding the rate.
            burst = max(1.0, per_minute / 60)
            limiter = AsyncLimiter(burst, 60 * burst / per_minute)
            self._limiters[tier] = limiter
        return limiter


class Cooldowns:
    """Skip a tier for a while after it failed several calls in a row (as LiteLLM's router does).

    Within one invocation (a suite of hundreds of cases) a dead endpoint then costs its timeouts
    a few times, not once per case.
    """

    def __init__(self, threshold: int = 3, seconds: float = 30.0) -> None:
        self.threshold = threshold
        self.seconds = seconds
        self._failures: dict[str, int] = {}
        self._until: dict[str, float] = {}

    def cooling(self, tier: str) -> bool:
        return self._until.get(tier, 0.0) > time.monotonic()

    def failed(self, tier: str) -> None:
        self._failures[tier] = self._failures.get(tier, 0) + 1
        if self._failures[tier] >= self.threshold:
            self._until[tier] = time.monotonic() + self.seconds

    def succeeded(self, tier: str) -> None:
        self._failures.pop(tier, None)
        self._until.pop(tier, None)
