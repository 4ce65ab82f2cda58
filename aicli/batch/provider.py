"""The stand-ins for a tier's provider in a batch run.

`BatchProvider` answers a batch tier's call with the answer its batch brought, or, in a round
that collects, takes the call into the batch and ends it at once. In the last round a call no
batch answered (a failed or expired line, a failed batch, one still running at
--batch-timeout) goes to the tier's own provider, the usual path with its retries, reservation
and price, unless --batch-only. `HeldProvider` stands in for a tier without batches while
rounds collect: its calls wait for the last round, so nothing is paid twice."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from aicli.batch.scheduler import BatchScheduler
from aicli.errors import BudgetError
from aicli.providers.base import (
    DeltaSink,
    Provider,
    ProviderAnswer,
    ProviderCall,
    ProviderFailure,
    Traits,
)
from aicli.providers.openai import OpenAIProvider

if TYPE_CHECKING:
    from aicli.config import Config

HELD = "held for the batch run's last round"


class BatchProvider:
    """A batch tier's provider in a batch run."""

    # No concurrency gate or rate limit (nothing goes out per call); reserved and billed at the
    # tier's batch price; an identical request elsewhere waits no longer than a normal call.
    traits = Traits(gated=False, batched=True)

    def __init__(
        self, cfg: Config, direct: OpenAIProvider, scheduler: BatchScheduler, *, only: bool
    ) -> None:
        self.cfg = cfg
        self.name = direct.name
        self.direct = direct  # the usual path, for what a batch does not answer
        self.scheduler = scheduler
        self.only = only  # --batch-only: what a batch does not answer is an error

    async def complete(self, call: ProviderCall, on_delta: DeltaSink | None) -> ProviderAnswer:
        key, tier = call.key, call.tier
        if key is None or tier is None:  # nothing to name it by: the usual path
            raise ProviderFailure(HELD, kind="batch", fall_back=True, attempts=0, resend=True)
        # One string per request for the state, the answers and `bought` of 50,000 requests.
        key = sys.intern(key)
        sched = self.scheduler
        settled = sched.answer(key)
        if settled is None:
            if sched.refused(key):
                raise BudgetError(
                    f"not submitted: a batch call to tier '{tier}' could pass the budget",
                    "raise --max-cost (or budget.max_cost_usd)",
                )
            if not sched.final:
                sched.collect(key, tier, self.name, call.model, dict(call.body), self._worst(call))
                raise ProviderFailure(HELD, kind="batch", fall_back=False, attempts=0)
            why = "no batch answered it"
        elif settled.body is not None:
            answer = self._answer(settled.body, call.model)
            if isinstance(answer, ProviderAnswer):
                sched.bought[key] = self._saved(tier, answer)
                return answer
            why = answer
        else:
            why = settled.error or "failed"
        if not sched.final:  # the last round sends it the usual way
            raise ProviderFailure(HELD, kind="batch", fall_back=False, attempts=0)
        message = f"provider '{self.name}': the batch did not answer ({why})"
        if self.only:
            raise ProviderFailure(
                message, kind="batch", fall_back=False, attempts=0,
                hint="run without --batch-only to let it take the usual path",
            )  # fmt: skip
        raise ProviderFailure(message, kind="batch", fall_back=True, attempts=0, resend=True)

    def _answer(self, body: dict[str, Any], model: str) -> ProviderAnswer | str:
        """A result line's chat completion, checked and cleaned as a direct answer is."""
        from openai._models import construct_type
        from openai.types.chat import ChatCompletion

        try:
            response = construct_type(type_=ChatCompletion, value=body)
            answer = self.direct._answer(response, model, 0)
        except ProviderFailure as failure:
            return failure.message
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return f"malformed result line ({type(exc).__name__})"
        answer.batched = True
        return answer

    def _saved(self, tier: str, answer: ProviderAnswer) -> float:
        from aicli.cost import batch_saving

        return 0.0 if answer.usage is None else batch_saving(answer.usage, self.cfg.tier(tier))

    def _worst(self, call: ProviderCall) -> float:
        from aicli.cost import worst_case_cost

        assert call.tier is not None
        price = self.cfg.tier(call.tier).price_for(True)
        body = call.body
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        rest = {k: v for k, v in body.items() if k not in ("model", "messages")}
        max_tokens = limit if isinstance(limit, int) else 0
        return worst_case_cost(call.messages, max_tokens, price, extra=rest)

    async def aclose(self) -> None:
        await self.direct.aclose()


class HeldProvider:
    """A tier without batches while rounds collect: its calls wait for the last round."""

    traits = Traits(gated=False)

    def __init__(self, name: str) -> None:
        self.name = name

    async def complete(self, call: ProviderCall, on_delta: DeltaSink | None) -> ProviderAnswer:
        raise ProviderFailure(HELD, kind="batch", fall_back=False, attempts=0)

    async def aclose(self) -> None:
        return None


__all__ = ["BatchProvider", "HeldProvider", "Provider"]
