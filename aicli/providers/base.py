"""The Provider protocol and the call/answer/failure types every provider speaks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aicli.types import Message, Usage

DeltaSink = Callable[[str], None]
# Sees the status and headers of every HTTP response of a call, retries included.
ResponseObserver = Callable[[int, Mapping[str, str]], None]


@dataclass(frozen=True)
class Traits:
    """What the engine must know of a provider type, asked instead of its name."""

    # Calls pass the tier's concurrency gate and rate limit, and may cost money (a tier with no
    # price is then worth a warning when a budget is set). Off for the offline echo provider.
    gated: bool = True
    remote: bool = True  # calls go over the network (the openai SDK is needed)
    # How long identical requests wait for this provider's call in flight (single-flight)
    # before making their own; None: the tier's timeout_seconds.
    flight_wait_s: float | None = None


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


@dataclass
class ProviderAnswer:
    """A provider's answer to one call."""

    content: str
    usage: Usage | None  # None when the server reported none
    model: str
    attempts: int  # HTTP requests made, retries included


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
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.attempts = attempts
        self.status = status
        self.hint = hint
        self.partial_output = partial_output  # streamed text already reached the user


class Provider(Protocol):
    name: str

    async def complete(self, call: ProviderCall, on_delta: DeltaSink | None) -> ProviderAnswer:
        """Answer one call; stream deltas to on_delta when call.stream is set."""
        ...

    async def aclose(self) -> None: ...
