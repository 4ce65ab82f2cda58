"""The service's daily spending cap: a SpendLimit over the day's ledger (aicli.ledger), shared by
every worker and replica.

Money fails closed: with the ledger unreachable a paid call is refused (BudgetUnavailable, 503)
unless `serve.budget_when_unavailable: local` (each worker spends a share of what was left).
What could not be written (settlements, local spend) is kept and replayed, once, when the ledger
answers again; a worker that sees the ledger lost the day (a Redis restart) adds back what it
had written.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aicli.cost import Ticket, usd
from aicli.errors import BudgetUnavailable, CacheError, QuotaError
from aicli.ledger import (
    LEDGER_RETRY_S,
    NANO,
    CacheLedger,
    Ledger,
    LedgerState,
    cost_nano,
    new_id,
    reserve_nano,
    utc_day,
)

if TYPE_CHECKING:
    from aicli.cache import ResponseCache
    from aicli.config import Config

log = logging.getLogger(__name__)


def daily_quota(cfg: Config, cache: ResponseCache) -> DailyQuota:
    """The service's quota on its cache, as the config sets it (no cap: the spend is counted)."""
    serve = cfg.serve
    return DailyQuota(
        serve.daily_budget_usd,
        CacheLedger(cache),
        when_unavailable=serve.budget_when_unavailable,
        local_share=serve.budget_local_share,
    )


class QuotaTicket(Ticket):
    def __init__(self, amount_usd: float, day: str, ident: str, nano: int, local: bool) -> None:
        super().__init__(amount_usd)
        self.day, self.id, self.nano, self.local = day, ident, nano, local


@dataclass(frozen=True)
class _Op:
    """A settlement still to be written to the ledger (replay: spend made locally)."""

    day: str
    ticket: str
    nano: int
    replay: bool = False


class DailyQuota:
    """The daily cap as a SpendLimit (cap None: no cap, the day's spend is still counted)."""

    def __init__(
        self,
        cap_usd: float | None,
        ledger: Ledger,
        *,
        when_unavailable: str = "refuse",
        local_share: float = 4.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cap_usd = cap_usd
        self._cap = None if cap_usd is None else cost_nano(cap_usd)
        self.ledger = ledger
        self.local_mode = when_unavailable == "local"
        self.local_share = local_share
        self._clock = clock
        self._pending: deque[_Op] = deque()  # in order; written by _replay, exactly once each
        self._replaying = False
        self._seen: dict[str, int] = {}  # spent + reserved as the ledger last reported it
        self._epoch: dict[str, str] = {}  # the day's epoch as the ledger last reported it
        self._written: dict[str, int] = {}  # spend this worker wrote into that epoch
        self._local_reserved: dict[str, int] = {}  # tickets held locally, not in the ledger
        self._local_unsynced: dict[str, int] = {}  # local spend not yet queued for replay
        self._unreserved: dict[str, int] = {}  # spend with no reservation (no cap), not written
        self._local_warned = False

    @property
    def capped(self) -> bool:
        return self._cap is not None

    def today(self) -> str:
        return utc_day(self._clock())

    # ---- SpendLimit ----------------------------------------------------------------------------

    async def reserve(self, amount_usd: float, what: str) -> Ticket:
        day, nano = self.today(), reserve_nano(amount_usd)
        if self._cap is None or nano == 0:  # nothing to hold: a free call never waits on Redis
            return QuotaTicket(amount_usd, day, "", 0, local=False)
        await self._replay()
        ident = new_id()
        if not self.ledger.available:
            return self._reserve_locally(day, ident, nano, amount_usd, what)
        try:
            state = await self.ledger.reserve(day, ident, nano, self._cap)
        except BaseException as exc:
            # It may still reach the store (a paused Redis runs it when it wakes): release it
            # for sure. The ledger ignores a reservation whose ticket was released first.
            self._pending.append(_Op(day, ident, 0))
            if not isinstance(exc, CacheError):
                raise
            return self._reserve_locally(day, ident, nano, amount_usd, what)
        self._saw(day, state)
        self._local_warned = False  # back: a later outage warns again
        if not state.taken:
            raise QuotaError(
                f"{what} could cost up to {usd(amount_usd)}; today's spend is"
                f" {usd(state.spent / NANO)} and calls in flight hold {usd(state.reserved / NANO)},"
                " against the"
                f" {usd(self._cap / NANO)} daily budget (serve.daily_budget_usd)",
                "try again tomorrow (UTC), lower max_tokens, or use a cheaper tier",
            )
        return QuotaTicket(amount_usd, day, ident, nano, local=False)

    async def settle(self, ticket: Ticket, actual_usd: float, what: str = "a call") -> None:
        """Count what the call really cost: the ledger then holds today's true spend, so a call
        that cost more than its bound makes the cap refuse sooner."""
        assert isinstance(ticket, QuotaTicket)
        nano = cost_nano(actual_usd)
        if ticket.nano and nano > ticket.nano:
            log.warning(
                "a call cost %s, over the %s reserved for it (the provider reported more usage"
                " than the bound); today's budget counts what it cost",
                usd(actual_usd), usd(ticket.nano / NANO),
                extra={"event": "quota.overrun", "cost_usd": actual_usd,
                       "reserved_usd": ticket.nano / NANO},
            )  # fmt: skip
        await self._settle(ticket, nano)

    async def release(self, ticket: Ticket) -> None:
        assert isinstance(ticket, QuotaTicket)
        await self._settle(ticket, 0)

    async def _settle(self, ticket: QuotaTicket, nano: int) -> None:
        day = ticket.day
        if ticket.local:
            self._local_reserved[day] = max(0, self._local_reserved.get(day, 0) - ticket.nano)
            self._local_unsynced[day] = self._local_unsynced.get(day, 0) + nano
        elif ticket.id:
            self._pending.append(_Op(day, ticket.id, nano))
        elif nano:  # summed, not queued one by one: a long outage keeps memory flat
            self._unreserved[day] = self._unreserved.get(day, 0) + nano
        await self._replay()

    # ---- the ledger, and what waits for it -----------------------------------------------------

    def _saw(self, day: str, state: LedgerState, written: int = 0) -> None:
        """Remember what the ledger said; if it lost the day (a restart: a new epoch), add back
        what this worker had written to it, once (every live worker does the same)."""
        if state.epoch:
            known = self._epoch.get(day)
            if known is not None and known != state.epoch:
                lost = self._written.pop(day, 0)
                if lost:
                    self._pending.append(_Op(day, new_id(), lost, replay=True))
            self._epoch[day] = state.epoch
        self._written[day] = self._written.get(day, 0) + written
        self._seen[day] = state.spent + state.reserved

    async def _replay(self) -> None:
        """Write what waits (settlements, then local spend), oldest first, while the ledger
        answers. Each op keeps its ticket id until written: a retry is never counted twice."""
        if self._replaying or not self.ledger.available:
            return
        for day, nano in self._local_unsynced.items():
            if nano:
                self._pending.append(_Op(day, new_id(), nano, replay=True))
                self._local_unsynced[day] = 0
        for day, nano in self._unreserved.items():
            if nano:
                self._pending.append(_Op(day, new_id(), nano))
                self._unreserved[day] = 0
        if not self._pending:
            return
        self._replaying = True
        try:
            while self._pending:
                op = self._pending[0]
                try:
                    state = await self.ledger.settle(op.day, op.ticket, op.nano)
                except CacheError:
                    return  # kept: the next call (or shutdown) tries again
                self._pending.popleft()
                self._saw(op.day, state, op.nano)  # written now, or before (a lost reply)
                if op.replay:
                    log.warning(
                        "added %s to the shared budget counter: spent while it was unreachable,"
                        " or held before it restarted empty",
                        usd(op.nano / NANO),
                        extra={"event": "quota.replayed", "cost_usd": op.nano / NANO},
                    )
        finally:
            self._replaying = False

    async def keep_replaying(self, every_s: float = LEDGER_RETRY_S) -> None:
        """Run for the service's life: what waits is written when the ledger is back, even if
        no request comes to carry it (cancel the task to stop)."""
        import asyncio

        while True:
            await asyncio.sleep(every_s)
            if (
                self._pending
                or any(self._local_unsynced.values())
                or any(self._unreserved.values())
            ):
                await self._replay()

    def unwritten_usd(self) -> float:
        """Spend this process knows of that the ledger does not hold yet."""
        queued = sum(op.nano for op in self._pending)
        local = sum(self._local_unsynced.values()) + sum(self._unreserved.values())
        return (queued + local) / NANO

    async def aclose(self) -> None:
        """At shutdown: one last try to write what waits; what cannot be written is logged."""
        await self._replay()
        lost = self.unwritten_usd()
        if lost:
            log.error(
                "%s spent today could not be added to the shared budget counter (unreachable)",
                usd(lost),
                extra={"event": "quota.unwritten", "cost_usd": lost},
            )

    async def spent_today(self) -> LedgerState | None:
        """Today's counters from the ledger (None when it cannot be read), after a replay."""
        await self._replay()
        day = self.today()
        if not self.ledger.available:
            return None
        try:
            state = await self.ledger.read(day)
            self._saw(day, state)
            if self._pending:  # the store restarted empty: what this worker wrote goes back
                await self._replay()
                state = await self.ledger.read(day)
                self._saw(day, state)
        except CacheError:
            return None
        return state

    # ---- while the ledger is unreachable -------------------------------------------------------

    def local_allowance_nano(self, day: str) -> int:
        """What this worker may spend while the ledger is unreachable: its share of what was
        left when it last saw the ledger, never more than daily_budget_usd / budget_local_share."""
        assert self._cap is not None
        left = self._cap - self._seen.get(day, 0)
        return max(0, math.floor(min(self._cap, left) / self.local_share))

    def _local_used_nano(self, day: str) -> int:
        queued = sum(op.nano for op in self._pending if op.replay and op.day == day)
        return self._local_reserved.get(day, 0) + self._local_unsynced.get(day, 0) + queued

    def _reserve_locally(
        self, day: str, ident: str, nano: int, amount_usd: float, what: str
    ) -> QuotaTicket:
        """Refuse (503), or hold nano on this worker's own share. Why the store failed is in
        the `cache.unavailable` log line, not in what a client reads (it names the host)."""
        retry = self.ledger.retry_after_s()
        if not self.local_mode:
            raise BudgetUnavailable(
                f"{what} was not sent: today's spend cannot be counted, the shared counter is"
                " unreachable, and serve.daily_budget_usd caps it",
                "retry later; cached answers and free tiers still answer",
                retry_after_s=retry,
            )
        allowance, used = self.local_allowance_nano(day), self._local_used_nano(day)
        if used + nano > allowance:
            raise BudgetUnavailable(
                f"{what} could cost up to {usd(amount_usd)}; the shared budget counter is"
                " unreachable, and this worker's share while it is"
                f" ({usd(allowance / NANO)}) holds {usd(used / NANO)} spent or reserved",
                "retry later; cached answers and free tiers still answer",
                retry_after_s=retry,
            )
        if not self._local_warned:
            self._local_warned = True
            log.warning(
                "the shared budget counter is unreachable; this worker spends at most %s of"
                " today's budget on its own until it is back",
                usd(allowance / NANO),
                extra={"event": "quota.local", "cost_usd": allowance / NANO},
            )
        self._local_reserved[day] = self._local_reserved.get(day, 0) + nano
        return QuotaTicket(amount_usd, day, ident, nano, local=True)
