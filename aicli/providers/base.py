"""The Provider protocol and the call/answer/failure types every provider speaks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from aicli.types import EventSink, Message, ToolCall, Usage

DeltaSink = EventSink  # a stream's typed events: text, tool-call pieces, the finish reason
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
    # Answers through a batch (test-prompts --batch): reserved and billed at the tier's
    # batch_price. A provider object may carry its own `traits` (a batch run's stand-ins do).
    batched: bool = False


@dataclass
class ProviderCall:
    """One call to a provider: the body to send (providers.body.chat_body) and how to send it."""

    body: dict[str, Any]
    timeout_seconds: float
    max_retries: int
    stream: bool = False
    on_response: ResponseObserver | None = None
    key: str | None = None  # the request's cache key (a batch line's custom_id)
    tier: str | None = None  # the tier it is sent for
    # The body's response_format came from a schema aicli checks itself: a server that refuses
    # structured output may be asked once more without it.
    format_optional: bool = False

    @property
    def model(self) -> str:
        return str(self.body["model"])

    @property
    def messages(self) -> list[Message]:
        return cast("list[Message]", self.body["messages"])


@dataclass
class ProviderAnswer:
    """A provider's answer to one call."""

    content: str
    usage: Usage | None  # None when the server reported none
    model: str
    attempts: int  # HTTP requests made, retries included
    batched: bool = False  # answered through a batch: costs the tier's batch price
    tool_calls: list[ToolCall] | None = None
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


# What went wrong, said by whoever saw it: "connection" (no answer at all), "timeout", "status"
# (an HTTP error: `status` says which), "malformed" (a body that is not a chat completion),
# "empty" (an answer with no text), "schema" (an answer that breaks the request's JSON Schema).
# "batch": a batch run's call that a batch did not answer (yet): says nothing of the provider
# The HTTP client under the SDK: httpx (its default) or aiohttp (the SDK's DefaultAioHttpClient,
# the `openai[aiohttp]` extra that aicli-prod[serve] installs). The service takes aiohttp: at 64
# calls in flight its C parser and pool make a cache miss cost about a fifth less CPU than
# httpx's h11 and pool scan (scripts/bench_serve.py). A one-shot CLI keeps httpx: aiohttp's
# import would add to its start-up.
HttpTransport = Literal["httpx", "aiohttp"]

FailureKind = Literal["connection", "timeout", "status", "malformed", "empty", "schema", "batch"]
_PROVIDER_FAULTS = frozenset({"connection", "timeout", "malformed"})


class ProviderFailure(Exception):
    """A provider call failed. `fall_back`: the engine tries the next tier of the chain (else
    the request ends here: a refused request, or a stream already part printed)."""

    def __init__(
        self,
        message: str,
        *,
        kind: FailureKind,
        fall_back: bool,
        attempts: int,
        status: int | None = None,
        hint: str | None = None,
        partial_output: bool = False,
        resend: bool = False,
        detail: str | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.fall_back = fall_back
        self.attempts = attempts
        self.status = status
        self.hint = hint
        self.partial_output = partial_output  # streamed text already reached the user
        self.resend = resend  # a batch did not answer: send it to the tier's own provider
        # The provider's own error (message, code, param), cleaned: what a 4xx for the request
        # tells the service's caller, without aicli's provider names or URLs.
        self.detail, self.code, self.param = detail, code, param

    @property
    def provider_unhealthy(self) -> bool:
        """Whether this failure says the provider is unwell (so it counts toward the tier's
        cooldown): no connection, a timeout, a broken body, HTTP 5xx, 408 or 429. An answer the
        request itself made unusable (empty, off-schema, a 4xx for that request) says the
        provider is up: one caller must not be able to switch a tier off for the others."""
        if self.kind == "status":
            return self.status is not None and (self.status >= 500 or self.status in (408, 429))
        return self.kind in _PROVIDER_FAULTS


def request_refused(status: int | None) -> bool:
    """Whether an HTTP status says the request itself was refused (400, 413, 422, ...), not
    the key (401, 403), the model's name (404) or the provider's load (408, 409, 429)."""
    not_the_request = (401, 403, 404, 408, 409, 429)
    return status is not None and 400 <= status < 500 and status not in not_the_request


class Provider(Protocol):
    """What the engine calls. Traits a provider may set (read with getattr and a default):
    `gated` (True: calls pass the tier's concurrency gate and rate limit), `batch` (answers
    cost the tier's batch price), `direct` (the provider to send a call it could not answer)."""

    name: str

    async def complete(self, call: ProviderCall, on_delta: DeltaSink | None) -> ProviderAnswer:
        """Answer one call; stream deltas to on_delta when call.stream is set."""
        ...

    async def aclose(self) -> None: ...
