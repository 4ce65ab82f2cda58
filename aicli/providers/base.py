"""The Provider protocol and the call/answer/failure types every provider speaks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

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


@dataclass
class ProviderAnswer:
    """A provider's answer to one call."""

    content: str
    usage: Usage | None  # None when the server reported none
    model: str
    attempts: int  # HTTP requests made, retries included


# What went wrong, said by whoever saw it: "connection" (no answer at all), "timeout", "status"
# (an HTTP error: `status` says which), "malformed" (a body that is not a chat completion),
# "empty" (an answer with no text), "schema" (an answer that breaks the request's JSON Schema).
FailureKind = Literal["connection", "timeout", "status", "malformed", "empty", "schema"]
_PROVIDER_FAULTS = frozenset({"connection", "timeout", "malformed"})


class ProviderFailure(Exception):
    """A provider call failed. `retryable` failures let the engine fall back to the next tier."""

    def __init__(
        self,
        message: str,
        *,
        kind: FailureKind,
        retryable: bool,
        attempts: int,
        status: int | None = None,
        hint: str | None = None,
        partial_output: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.retryable = retryable
        self.attempts = attempts
        self.status = status
        self.hint = hint
        self.partial_output = partial_output  # streamed text already reached the user

    @property
    def provider_unhealthy(self) -> bool:
        """Whether this failure says the provider is unwell (so it counts toward the tier's
        cooldown): no connection, a timeout, a broken body, HTTP 5xx, 408 or 429. An answer the
        request itself made unusable (empty, off-schema, a 4xx for that request) says the
        provider is up: one caller must not be able to switch a tier off for the others."""
        if self.kind == "status":
            return self.status is not None and (self.status >= 500 or self.status in (408, 429))
        return self.kind in _PROVIDER_FAULTS


class Provider(Protocol):
    name: str

    async def complete(self, call: ProviderCall, on_delta: DeltaSink | None) -> ProviderAnswer:
        """Answer one call; stream deltas to on_delta when call.stream is set."""
        ...

    async def aclose(self) -> None: ...
