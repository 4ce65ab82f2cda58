"""The decisions of one request's walk down its tier chain, without I/O: what is looked up where,
what is a hit, which tier is called, the stale fallback, what is counted, when to give up.

The engine has two adapters that only do the I/O these steps ask for: `Engine._hit_now` reads
without an event loop (the start-up of a CLI cache hit) and hands over at the first `Call` or
`GiveUp`; `Engine._run` reads and calls on the loop. The decisions being here once, the two
cannot disagree about an answer (tests/test_tier_walk.py holds them to it).

    walk = TierWalk(request, plans, replay=...)
    while not isinstance(step := walk.next(), (Answer, GiveUp)):
        if isinstance(step, Read): walk.found(<step.plan.key looked up in step.source>)
        else: walk.called(<step.plan called, or None>, shared=...)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from aicli.errors import NoAnswerError
from aicli.types import Request

if TYPE_CHECKING:
    from aicli.cache import CacheEntry
    from aicli.calling import ChainRun
    from aicli.planning import Plan

Source = Literal["replay", "cache"]
# hit: a fresh cached answer; stale: an expired one, when nothing better came; shared: an
# identical request in flight paid for it; called: this request paid; replayed: recorded
Kind = Literal["hit", "stale", "shared", "called", "replayed"]


def looked_up_in(request: Request, *, replay: bool) -> Source | None:
    """Where the tiers' answers are looked up before they are called: the recording with
    --replay (whatever the cache flags), the cache unless --refresh/--no-cache/--repeat runs
    2..N, else nowhere (the walk starts with a call)."""
    if replay:
        return "replay"
    return "cache" if request.cache_mode in ("use", "only") else None


@dataclass(frozen=True)
class Read:
    """Look the tier's answer up in `source`; pass what was found to `TierWalk.found`."""

    index: int
    plan: Plan
    source: Source


@dataclass(frozen=True)
class Call:
    """Call the tier (unless its cooldown holds it back); pass the answer to `TierWalk.called`.
    The answer is written to the cache unless it is --no-cache'd; `flight`: the call is shared
    with identical requests in flight (not with --refresh, nor --repeat runs 2..N: they want
    their own call)."""

    index: int
    plan: Plan
    flight: bool


@dataclass(frozen=True)
class Answer:
    """The request's answer: `entry`, from tier `plans[index]`."""

    index: int
    plan: Plan
    entry: CacheEntry
    kind: Kind
    counts: Literal["hit", "miss"] | None  # the cache counter it adds to, if any

    @property
    def cached(self) -> bool:
        """Whether it was paid before this request (so costs nothing now)."""
        return self.kind in ("hit", "stale", "shared")

    @property
    def stale(self) -> bool:
        return self.kind == "stale"

    @property
    def streams(self) -> bool:
        """Whether its text is still to be streamed: a call streamed it as it came."""
        return self.kind != "called"


@dataclass(frozen=True)
class GiveUp:
    """No tier answered. why: no recorded answer (--replay), nothing fresh or stale in the cache
    (--cache-only, nothing is called), or every tier called failed or was cooling."""

    why: Literal["replay", "cache-only", "calls"]
    counts: Literal["miss"] | None  # the cache counter it adds to, if any


Step = Read | Call | Answer | GiveUp


class TierWalk:
    """One request's walk: each tier in order is looked up (if `looked_up_in` says where) and
    then called (unless --replay or --cache-only: nothing is called), until one answers. A fresh
    entry is the hit; the first expired one is kept and served only when no tier answers."""

    def __init__(self, request: Request, plans: list[Plan], *, replay: bool) -> None:
        self.request, self.plans = request, plans
        self.source = looked_up_in(request, replay=replay)
        self.calls = not replay and request.cache_mode != "only"
        # whether the cache is used at all (read, written, counted): not by a replay
        self.uses_cache = not replay and request.cache_mode != "off"
        self._index = 0
        self._looked = False  # whether plans[_index] was looked up
        self._stale: Answer | None = None
        self._answer: Answer | None = None

    def next(self) -> Step:
        """What to do now; the same step until `found` or `called` says how it went."""
        if self._answer is not None:
            return self._answer
        while self._index < len(self.plans):
            plan = self.plans[self._index]
            if self.source is not None and not self._looked:
                return Read(self._index, plan, self.source)
            if self.calls:
                return Call(self._index, plan, flight=self.request.cache_mode == "use")
            self._advance()
        if self._stale is not None:
            return self._stale
        if self.source == "replay":
            return GiveUp("replay", None)
        return GiveUp("calls" if self.calls else "cache-only", self._miss())

    def found(self, entry: CacheEntry | None) -> None:
        """What the last `Read` found: None, or an entry (expired or not)."""
        step = self.next()
        assert isinstance(step, Read), step
        self._looked = True
        if entry is None:
            return
        if step.source == "replay":  # a recording answers as recorded, however old
            self._answer = Answer(step.index, step.plan, entry, "replayed", None)
        elif not entry.expired():
            self._answer = Answer(step.index, step.plan, entry, "hit", "hit")
        elif self._stale is None:  # the first expired entry is the fallback, in tier order
            self._stale = Answer(step.index, step.plan, entry, "stale", "hit")

    def called(self, entry: CacheEntry | None, *, shared: bool = False) -> None:
        """How the last `Call` went: its answer (`shared`: another request in flight paid for
        it), or None when it failed or the tier was cooling (the next tier is up)."""
        step = self.next()
        assert isinstance(step, Call), step
        if entry is None:
            self._advance()
        elif shared:
            self._answer = Answer(step.index, step.plan, entry, "shared", "hit")
        else:
            self._answer = Answer(step.index, step.plan, entry, "called", self._miss())

    def _miss(self) -> Literal["miss"] | None:
        """An answer not found in a cache that was read is its miss (one per request)."""
        return "miss" if self.source == "cache" else None

    def _advance(self) -> None:
        self._index, self._looked = self._index + 1, False


def no_answer(why: Literal["cache-only", "calls"], request: Request, plans: list[Plan],
              run: ChainRun) -> NoAnswerError:  # fmt: skip
    """The error for a `GiveUp` from the cache or the calls (a replay's names what changed)."""
    if why == "cache-only":
        return NoAnswerError(
            "not in the cache: --cache-only found no answer for this request"
            f" (tiers looked up: {', '.join(p.name for p in plans)})",
            "run it once without --cache-only to fill the cache",
        )
    return NoAnswerError(
        f"no answer from tiers {', '.join(run.tried)}: {run.last_error}",
        run.last_hint
        or (
            "check the endpoint and your network, or use --cache-only / -t echo"
            if request.front == "cli"
            else "the providers behind this tier failed; try again later"
        ),
    )
