"""Per-tier rate limits, adaptive concurrency on 429s, and cooldowns (a half-open breaker).

Retries and backoff themselves are the openai SDK's; this decides how many calls go out at once.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

    from aiolimiter import AsyncLimiter

    from aicli.providers.base import ProviderFailure

log = logging.getLogger("aicli")

MAX_PAUSE_SECONDS = 60.0  # never hold new calls longer than this on a server's say-so
ALMOST_SPENT = 0.05  # x-ratelimit-remaining at or under this share of the limit: slow down


class TierLimiters:
    """One client-side leaky bucket per tier: `rate_limit` requests per minute."""

    def __init__(self) -> None:
        self._limiters: dict[str, AsyncLimiter] = {}
        self._told: set[str] = set()

    def get(self, tier: str, per_minute: float) -> AsyncLimiter:
        limiter = self._limiters.get(tier)
        if limiter is None:
            from aiolimiter import AsyncLimiter

            # Bursts of up to one second's worth keep small runs snappy without exceeding the rate.
            burst = max(1.0, per_minute / 60)
            limiter = AsyncLimiter(burst, 60 * burst / per_minute)
            self._limiters[tier] = limiter
        return limiter

    async def acquire(self, tier: str, per_minute: float) -> None:
        """Wait for the tier's bucket; the first time that means waiting, say so (once)."""
        limiter = self.get(tier, per_minute)
        if tier not in self._told and not limiter.has_capacity():
            self._told.add(tier)
            log.warning(
                f"waiting: tiers.{tier}.rate_limit is {per_minute:g}/min (client-side; raise or"
                " remove it in the config when the key is yours alone)"
            )
        await limiter.acquire()


class AdaptiveConcurrency:
    """How many calls may be in flight toward one tier: up to `ceiling` (-j), fewer on 429s.

    A 429 halves the limit (once per round: 429s of calls started before the last cut do not
    cut again) and holds new calls for its Retry-After; `limit` successes in a row add one back.
    When x-ratelimit-remaining-requests/-tokens say the quota is almost spent, new calls are
    spaced to the rate at which it refills, before the server has to refuse any.
    """

    def __init__(self, tier: str, ceiling: int) -> None:
        self.tier = tier
        self.ceiling = max(1, ceiling)
        self.limit = self.ceiling
        self.in_flight = 0
        self.throttled = 0  # 429s seen
        self._round = 0
        self._successes = 0
        self._paused_until = 0.0  # no new call before this (Retry-After, spent token quota)
        self._spacing = 0.0  # seconds between starts while the request quota is almost spent
        self._next_start = 0.0
        self._waiters: list[asyncio.Future[None]] = []

    async def acquire(self) -> int:
        """Wait for a slot; returns the round the call started in (pass it to `observe`)."""
        import asyncio  # not at the top: a CLI cache hit imports this module, never asyncio

        while True:
            now = time.monotonic()
            pause = max(self._paused_until, self._next_start) - now
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            if self.in_flight < self.limit:
                self.in_flight += 1
                self._next_start = now + self._spacing
                return self._round
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:  # cancelled: hand a wake-up it may have taken to the next
                self._waiters.remove(waiter)
                self._wake()
                raise
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def release(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        self._wake()

    def _wake(self) -> None:
        free = self.limit - self.in_flight
        for waiter in self._waiters[: max(0, free)]:
            if not waiter.done():
                waiter.set_result(None)

    def observe(self, started: int, status: int, headers: Mapping[str, str]) -> None:
        """One HTTP response of a call that started in round `started`."""
        if status == 429:
            self.throttled += 1
            self._cut(started)
            self._pause(_seconds(headers.get("retry-after")))
            return
        if status >= 400:
            return
        self._quota(headers)
        self._successes += 1
        if self.limit < self.ceiling and self._successes >= self.limit:
            self.limit += 1
            self._successes = 0
            self._wake()

    def _quota(self, headers: Mapping[str, str]) -> None:
        spacing = 0.0
        for kind in ("requests", "tokens"):
            remaining = _number(headers.get(f"x-ratelimit-remaining-{kind}"))
            total = _number(headers.get(f"x-ratelimit-limit-{kind}"))
            reset = _seconds(headers.get(f"x-ratelimit-reset-{kind}"))
            if remaining is None or not total or not reset or remaining > total * ALMOST_SPENT:
                continue
            refill = max(1.0, total - remaining) / reset  # per second, as the provider refills
            if kind == "requests":  # one start per refilled request
                spacing = 1 / refill
            else:  # a call's token cost is unknown: wait until the margin has refilled
                self._pause((total * ALMOST_SPENT - remaining + 1) / refill)
            if self._spacing == 0.0:
                log.info(
                    f"tier '{self.tier}': only {remaining:g} of {total:g} {kind} left in the"
                    " provider's quota; spacing calls until it refills"
                )
        self._spacing = spacing

    def _cut(self, started: int) -> None:
        self._successes = 0
        if started != self._round:
            return  # this call started before the last cut, which already accounted for it
        self._round += 1
        before, self.limit = self.limit, max(1, self.limit // 2)
        if self.limit != before:
            log.info(
                f"tier '{self.tier}': the provider answered 429 (rate limited); {self.limit}"
                f" calls at once now (was {before})"
            )

    def _pause(self, seconds: float | None) -> None:
        if seconds:
            until = time.monotonic() + min(seconds, MAX_PAUSE_SECONDS)
            self._paused_until = max(self._paused_until, until)


class TierConcurrency:
    """One AdaptiveConcurrency per tier, all with the same ceiling."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self._tiers: dict[str, AdaptiveConcurrency] = {}

    def get(self, tier: str) -> AdaptiveConcurrency:
        gate = self._tiers.get(tier)
        if gate is None:
            gate = self._tiers[tier] = AdaptiveConcurrency(tier, self.ceiling)
        return gate

    @property
    def throttled(self) -> int:
        return sum(g.throttled for g in self._tiers.values())


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _seconds(value: str | None) -> float | None:
    """A Retry-After (seconds) or x-ratelimit-reset value (`1s`, `6m0s`, `20ms`) in seconds."""
    if not value:
        return None
    plain = _number(value.strip())
    if plain is not None:
        return max(0.0, plain)
    parts = _DURATION.findall(value.strip())
    if not parts:
        return None  # an HTTP date: the SDK honours it for its own retry; no pause here
    return sum(float(n) * _UNIT[unit] for n, unit in parts)


class Cooldowns:
    """A circuit breaker per tier: skip a tier for a while after it failed several calls in a
    row (as LiteLLM's router does), letting one call through now and then to see it recover.

    Only failures that say the provider is unwell count (ProviderFailure.provider_unhealthy):
    connection errors, timeouts, HTTP 5xx and 429. An answer the request itself made unusable
    (empty, off-schema, a 4xx for that request) shows the provider is up, so it ends the streak
    like a success: no caller can switch a tier off for the others.

    While a tier is cooling (open), one call every `probe_seconds` is let through (half-open);
    its success closes the breaker at once, so a short blip costs seconds of fallback, not
    `seconds`. After `seconds` without a successful probe the tier is tried by every call again.
    Within one invocation (a suite of hundreds of cases) a dead endpoint costs its timeouts a
    few times, not once per case; in the service, no caller waits for a probe to finish.
    """

    def __init__(
        self,
        threshold: int = 3,
        seconds: float = 30.0,
        probe_seconds: float | None = 2.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = max(1, threshold)
        self.seconds = seconds
        self.probe_seconds = probe_seconds  # None: no probes, the tier waits out `seconds`
        self._clock = clock
        self._failures: dict[str, int] = {}
        self._until: dict[str, float] = {}  # open until (clock)
        self._next_probe: dict[str, float] = {}

    def cooling(self, tier: str) -> bool:
        """Whether the tier's breaker is open (probes aside)."""
        until = self._until.get(tier)
        if until is None:
            return False
        if until <= self._clock():  # served its time: closed, with a clean slate
            self._reset(tier)
            return False
        return True

    def admit(self, tier: str) -> bool:
        """Whether a call may go to the tier now: always while closed; while open, one call per
        probe interval (the probe)."""
        if not self.cooling(tier):
            return True
        if self.probe_seconds is None:
            return False
        now = self._clock()
        if now < self._next_probe.get(tier, 0.0):
            return False
        self._next_probe[tier] = now + self.probe_seconds  # the next probe, not sooner
        log.info(
            "tier '%s' is cooling down; letting one call through to see if it is back", tier,
            extra={"event": "tier.probe", "tier": tier},
        )  # fmt: skip
        return True

    def failed(self, tier: str, failure: ProviderFailure | None = None) -> None:
        """A call to the tier failed; only a provider fault counts (None: count it)."""
        if failure is not None and not failure.provider_unhealthy:
            self.succeeded(tier)  # the provider answered: it is up
            return
        now = self._clock()
        self._failures[tier] = self._failures.get(tier, 0) + 1
        if self._failures[tier] >= self.threshold:
            if tier not in self._until:
                log.info(
                    "tier '%s' failed %d calls in a row; skipping it for up to %g s (probing"
                    " every %s)", tier, self._failures[tier], self.seconds,
                    "-" if self.probe_seconds is None else f"{self.probe_seconds:g} s",
                    extra={"event": "tier.cooldown", "tier": tier},
                )  # fmt: skip
            self._until[tier] = now + self.seconds
            if self.probe_seconds is not None:
                self._next_probe[tier] = max(
                    self._next_probe.get(tier, 0.0), now + self.probe_seconds
                )

    def succeeded(self, tier: str) -> None:
        if tier in self._until:
            log.info(
                "tier '%s' answered again; its cooldown is over", tier,
                extra={"event": "tier.recovered", "tier": tier},
            )  # fmt: skip
        self._reset(tier)

    def _reset(self, tier: str) -> None:
        self._failures.pop(tier, None)
        self._until.pop(tier, None)
        self._next_probe.pop(tier, None)
