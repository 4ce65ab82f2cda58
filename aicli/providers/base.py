"""The Provider protocol and the call/answer/failure types every provider speaks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aicli.types import Message, Usage

DeltaSink = Callable[[str], None]
# Sees the status and headers of every HTTP response of a call, retries included.
ResponseObserver = Callable[[int, Mapping[str, str]], None]


@dataclass
class ProviderCall:
    """One call to a provider: the model, messages and sampling settings."""

    model: str
    messages: list[Message]
    max_tokens: int | None
    temperature: float | None
    seed: int | None
    schema: dict[str, Any] | None
    timeout_seconds: float
    max_retries: int
    stream: bool = False
    on_response: ResponseObserver | None = None
    key: str | None = None  # the request's cache key (a batch line's custom_id)
    tier: str | None = None  # the tier it is sent for


@dataclass
class ProviderAnswer:
    """A provider's answer to one call."""

    content: str
    usage: Usage | None  # None when the server reported none
    model: str
    attempts: int  # HTTP requests made, retries included
    batched: bool = False  # answered through a batch: costs the tier's batch price


class ProviderFailure(Exception):
    """A provider call failed. `retryable` failures let the engine fall back to the next tier."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        attempts: int,
        status: int | None = None,
        hint: str | None = None,
        partial_output: bool = False,
        resend: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.attempts = attempts
        self.status = status
        self.hint = hint
        self.partial_output = partial_output  # streamed text already reached the user
        self.resend = resend  # a batch did not answer: send it to the tier's own provider


class Provider(Protocol):
    """What the engine calls. Traits a provider may set (read with getattr and a default):
    `gated` (True: calls pass the tier's concurrency gate and rate limit), `batch` (answers
    cost the tier's batch price), `direct` (the provider to send a call it could not answer)."""

    name: str

    async def complete(self, call: ProviderCall, on_delta: DeltaSink | None) -> ProviderAnswer:
        """Answer one call; stream deltas to on_delta when call.stream is set."""
        ...

    async def aclose(self) -> None: ...
