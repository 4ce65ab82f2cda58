"""The stand-in for a tier's provider in a batch run: a call's answer is a future a batch fills.

What the batch cannot answer (a failed or expired line, a batch that failed as a whole, one
still running at --batch-timeout) raises a failure that sends the call through the tier's own
provider, the usual path with its retries, reservation and price, unless --batch-only."""

from __future__ import annotations

from typing import Any

from aicli.batch.scheduler import BatchScheduler
from aicli.providers.base import DeltaSink, ProviderAnswer, ProviderCall, ProviderFailure
from aicli.providers.openai import OpenAIProvider


class BatchProvider:
    """Answers a tier's calls through the run's BatchScheduler, at the batch price."""

    gated = False  # no per-tier concurrency gate or rate limit: one batch holds every call
    batch = True  # answers cost the tier's batch_price

    def __init__(self, direct: OpenAIProvider, scheduler: BatchScheduler, *, only: bool) -> None:
        self.name = direct.name
        self.direct = direct  # the usual path, for what a batch does not answer
        self.scheduler = scheduler
        self.only = only  # --batch-only: what a batch does not answer is an error

    async def complete(self, call: ProviderCall, on_delta: DeltaSink | None) -> ProviderAnswer:
        if call.key is None or call.tier is None:
            return await self.direct.complete(call, on_delta)  # nothing to name it by
        settled = await self.scheduler.answer(
            call.key, call.tier, self.name, call.model, chat_body(call)
        )
        if settled.body is not None:
            from openai._models import construct_type
            from openai.types.chat import ChatCompletion

            try:
                response = construct_type(type_=ChatCompletion, value=settled.body)
                answer = self.direct._answer(response, call.model, 0)
            except ProviderFailure as failure:
                settled.error = failure.message
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                settled.error = f"malformed result line ({type(exc).__name__})"
            else:
                answer.batched = True
                return answer
        why = f"provider '{self.name}': the batch did not answer ({settled.error})"
        if self.scheduler.stopped is not None:  # the run stopped: no call of any kind now
            raise ProviderFailure(why, retryable=False, attempts=0)
        if self.only:
            raise ProviderFailure(
                why, retryable=False, attempts=0, hint="run without --batch-only to let"
                " unanswered requests take the usual path",
            )  # fmt: skip
        raise ProviderFailure(why, retryable=True, attempts=0, resend=True)

    async def aclose(self) -> None:
        await self.direct.aclose()


def chat_body(call: ProviderCall) -> dict[str, Any]:
    """The chat request body a batch line carries: what a direct call would post."""
    body: dict[str, Any] = {"model": call.model, "messages": call.messages}
    if call.max_tokens is not None:
        body["max_tokens"] = call.max_tokens
    if call.temperature is not None:
        body["temperature"] = call.temperature
    if call.seed is not None:
        body["seed"] = call.seed
    if call.schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": call.schema, "strict": False},
        }
    return body
