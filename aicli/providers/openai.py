"""The OpenAI-compatible provider, on the official `openai` SDK (which owns retries and backoff).

This module is imported only when a call goes to the network, so `--help`, `render` and cache
hits never pay for the SDK's import.
"""

from __future__ import annotations

import contextvars
import logging
import os
from dataclasses import dataclass
from typing import Any

import httpx2
import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from aicli.errors import MissingKeyError
from aicli.providers import retries
from aicli.providers.base import (
    DeltaSink,
    FailureKind,
    HttpTransport,
    ProviderAnswer,
    ProviderCall,
    ProviderFailure,
    ResponseObserver,
)
from aicli.providers.deadline import ResponseTooLarge
from aicli.providers.tool_calls import StreamedToolCalls, dumped, finish_reason, parse_tool_calls
from aicli.safetext import StreamKeys, answer_field, answer_text, safe_line
from aicli.scrub import register_secret, without_credentials
from aicli.settings import ProviderConfig
from aicli.types import FinishEvent, TextDelta, Usage

log = logging.getLogger(__name__)
retries.install()


@dataclass
class _Progress:
    """How far one call got: HTTP requests made (retries included), and whether any part of the
    answer already reached the caller (then it is neither retried on another tier nor cached)."""

    requests: int = 0
    emitted: bool = False


# The current call's progress; the SDK's event hooks run in the caller's task, so they see it.
_progress: contextvars.ContextVar[_Progress | None] = contextvars.ContextVar(
    "aicli_progress", default=None
)
# Who wants each HTTP response's status and headers (the engine's adaptive concurrency): the
# SDK retries 429s itself, so only a hook on the client sees every one of them.
_observer: contextvars.ContextVar[ResponseObserver | None] = contextvars.ContextVar(
    "aicli_observer", default=None
)


async def _on_request(request: Any) -> None:
    progress = _progress.get()
    if progress is not None:
        progress.requests += 1
    await retries.note_request(request)


async def _on_response(response: Any) -> None:
    await retries.note_response(response)
    observer = _observer.get()
    if observer is not None:
        observer(response.status_code, response.headers)


# `chat.completions.create` walks ~40 typed parameters to transform them before each call
# (~0.2 ms, the largest per-call cost of a suite run), and leaves aicli's plain-JSON body as it
# was. So the call goes through the client's own `post`: the same URL, headers, auth, retries,
# errors and response types, without the walk (tests/test_provider_wire.py compares the two).
CHAT_PATH = "/chat/completions"


class OpenAIProvider:
    def __init__(
        self,
        name: str,
        cfg: ProviderConfig,
        base_url: str,
        *,
        pool_size: int = 0,
        transport: HttpTransport = "httpx",
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.base_url = base_url
        self.shown_url = without_credentials(base_url)  # for messages: no credential of the URL
        self.pool_size = pool_size  # calls in flight at once (-j): keep that many connections
        self.transport = transport
        self._client: openai.AsyncOpenAI | None = None
        # One client per (timeout, retries), all sharing one connection pool: with_options()
        # builds a whole client, too slow to do for every call.
        self._variants: dict[tuple[float, int], openai.AsyncOpenAI] = {}
        self._get_client()  # now, so SDK start-up is not counted in the first call's latency

    def _api_key(self) -> str:
        env = self.cfg.api_key_env
        if not env:
            return "not-needed"  # a keyless local server
        key = os.environ.get(env, "").strip()
        if not key:
            if self.cfg.local:
                return "not-needed"
            raise MissingKeyError(
                f"${env} is not set: provider '{self.name}' needs an API key",
                f"export {env}=... (or pick another tier, e.g. -t echo for offline use)",
            )
        register_secret(key)
        return key

    def _get_client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            from openai._base_client import (  # type: ignore[attr-defined]
                DEFAULT_CONNECTION_LIMITS as limits,
            )

            from aicli.providers.deadline import deadline_client

            keep = max(limits.max_keepalive_connections or 0, self.pool_size)
            self._client = openai.AsyncOpenAI(
                api_key=self._api_key(),
                base_url=self.base_url,
                # each HTTP attempt, body included, ends by timeout_seconds
                http_client=deadline_client(self.transport)(
                    event_hooks={"request": [_on_request], "response": [_on_response]},
                    limits=type(limits)(
                        max_connections=max(limits.max_connections or 0, keep),
                        max_keepalive_connections=keep,
                        keepalive_expiry=limits.keepalive_expiry,
                    ),
                ),
            )
        return self._client

    def _variant(self, timeout: float, retries: int) -> openai.AsyncOpenAI:
        client = self._variants.get((timeout, retries))
        if client is None:
            client = self._get_client().with_options(timeout=timeout, max_retries=retries)
            self._variants[(timeout, retries)] = client
        return client

    async def complete(self, call: ProviderCall, on_delta: DeltaSink | None) -> ProviderAnswer:
        client = self._variant(call.timeout_seconds, call.max_retries)
        body = dict(call.body)  # built once by providers.body.chat_body; the cache key hashes it
        progress = _Progress()
        token = _progress.set(progress)
        watching = _observer.set(call.on_response)
        try:
            try:
                return await self._once(client, body, call, on_delta, progress)
            except openai.BadRequestError:
                if not call.format_optional or "response_format" not in body or progress.emitted:
                    raise
                # Many models and local servers reject structured output; the engine validates
                # the answer against the schema anyway, so ask once more without it.
                log.info("%s refused response_format json_schema; retrying without", self.shown_url)
                del body["response_format"]
                return await self._once(client, body, call, on_delta, progress)
        except ProviderFailure:
            raise
        except openai.OpenAIError as exc:
            raise self._failure(exc, progress.requests, progress.emitted) from None
        except httpx2.TimeoutException:  # raised as is while a stream is read
            raise self._broken(
                "timed out", None, True, progress.requests, progress.emitted, "timeout"
            ) from None
        except httpx2.HTTPError as exc:
            what = f"connection failed ({safe_line(exc, 120)})"
            raise self._broken(
                what, None, True, progress.requests, progress.emitted, "connection"
            ) from None
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # an undecodable body
            what = f"malformed response: {safe_line(exc, 200)}"
            raise self._broken(
                what, None, True, progress.requests, progress.emitted, "malformed"
            ) from None
        finally:
            _progress.reset(token)
            _observer.reset(watching)

    async def _once(
        self,
        client: openai.AsyncOpenAI,
        body: dict[str, Any],
        call: ProviderCall,
        on_delta: DeltaSink | None,
        progress: _Progress,
    ) -> ProviderAnswer:
        if call.stream and on_delta is not None:
            return await self._stream(client, body, on_delta, progress)
        response = await client.post(CHAT_PATH, cast_to=ChatCompletion, body=body)
        return self._answer(response, call.model, progress.requests)

    async def _stream(
        self,
        client: openai.AsyncOpenAI,
        body: dict[str, Any],
        on_delta: DeltaSink,
        progress: _Progress,
    ) -> ProviderAnswer:
        parts: list[str] = []
        calls = StreamedToolCalls()
        usage: Usage | None = None
        finish: str | None = None
        logprobs: list[Any] = []
        model = body["model"]
        options = body.get("stream_options")
        options = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        stream = await client.post(
            CHAT_PATH,
            cast_to=ChatCompletion,
            body={**body, "stream": True, "stream_options": options},  # usage: the cost
            stream=True,
            stream_cls=openai.AsyncStream[ChatCompletionChunk],
        )
        keys = StreamKeys()  # what a server sends is untrusted: parsed here, cleaned here
        raw_model: object = None
        async for chunk in stream:
            if getattr(chunk, "usage", None):
                usage = _reported_usage(chunk.usage)
            if getattr(chunk, "model", None) and chunk.model != raw_model:  # once, not per chunk
                raw_model = chunk.model
                model = answer_field(raw_model) or model
            for choice in chunk.choices or []:
                delta = choice.delta
                text = keys.feed(delta.content or "") if delta else ""
                if text:
                    parts.append(text)
                    progress.emitted = True
                    on_delta(TextDelta(text))
                for piece in (getattr(delta, "tool_calls", None) or []) if delta else []:
                    event = calls.feed(piece)
                    progress.emitted = True
                    on_delta(event)
                content = getattr(getattr(choice, "logprobs", None), "content", None)
                if isinstance(content, list):
                    logprobs.extend(dumped(item) for item in content)
                finish = getattr(choice, "finish_reason", None) or finish
        text = keys.rest()
        if text:
            parts.append(text)
            progress.emitted = True
            on_delta(TextDelta(text))
        tool_calls = calls.result()
        finish = finish_reason(finish, tool_calls)
        on_delta(FinishEvent(finish))
        return ProviderAnswer(
            "".join(parts),
            usage,
            model,
            progress.requests,
            tool_calls=tool_calls,
            finish_reason=finish,
            logprobs={"content": logprobs} if logprobs else None,
        )

    def _answer(self, response: Any, model: str, attempts: int) -> ProviderAnswer:
        choices = getattr(response, "choices", None)
        choice = choices[0] if choices else None
        message = getattr(choice, "message", None)
        if message is None or not isinstance(getattr(message, "content", ""), (str, type(None))):
            raise ProviderFailure(
                f"malformed response from {self.shown_url}: no choices[0].message in the body",
                kind="malformed",
                fall_back=True,
                attempts=attempts,
            )
        usage_obj = getattr(response, "usage", None)
        usage = _reported_usage(usage_obj) if usage_obj is not None else None
        tool_calls = parse_tool_calls(getattr(message, "tool_calls", None))
        logprobs = getattr(choice, "logprobs", None)
        # the one place a whole answer is parsed: every field aicli passes on is cleaned here
        content = answer_text(message.content or "")
        shown_model = answer_field(getattr(response, "model", None) or "") or model
        return ProviderAnswer(
            content,
            usage,
            shown_model,
            attempts,
            tool_calls=tool_calls,
            finish_reason=finish_reason(getattr(choice, "finish_reason", None), tool_calls),
            logprobs=dumped(logprobs) if logprobs is not None else None,
        )

    def _failure(self, exc: openai.OpenAIError, attempts: int, emitted: bool) -> ProviderFailure:
        where = f"provider '{self.name}' ({self.shown_url})"
        if isinstance(exc, openai.AuthenticationError):
            env = self.cfg.api_key_env or "the provider's api_key_env"
            return ProviderFailure(
                f"{where} rejected the API key (401): check ${env}",
                kind="status",
                fall_back=False,
                attempts=attempts,
                status=401,
                hint=f"${env} holds the key aicli sent; make sure it is valid for {self.shown_url}",
            )
        kind: FailureKind
        if isinstance(exc, openai.APITimeoutError):
            what, status, kind = "timed out", None, "timeout"
        elif isinstance(exc, openai.APIConnectionError):
            # the SDK words every transport error "Connection error."; ours says what it was
            cause = exc.__cause__ if isinstance(exc.__cause__, ResponseTooLarge) else exc
            what, status, kind = f"connection failed ({safe_line(cause, 120)})", None, "connection"
        elif isinstance(exc, openai.APIStatusError):
            status, kind = exc.status_code, "status"
            detail = safe_line(_error_message(exc), 200)  # server text: one clean line
            what = f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
            failure = self._broken(what, status, _falls_back(status), attempts, emitted, kind)
            failure.detail = detail or None
            failure.code, failure.param = _error_field(exc, "code"), _error_field(exc, "param")
            return failure
        elif isinstance(exc, openai.APIResponseValidationError):
            what, status, kind = "malformed response", None, "malformed"
        else:
            what, status, kind = safe_line(exc, 200), None, "connection"
        return self._broken(what, status, _falls_back(status), attempts, emitted, kind)

    def _broken(
        self,
        what: str,
        status: int | None,
        fall_back: bool,
        attempts: int,
        emitted: bool,
        kind: FailureKind,
    ) -> ProviderFailure:
        """Any failure; once part of a stream was printed it ends the call (no second answer)."""
        if emitted:
            what = f"the stream broke off after part of the answer was printed ({what})"
        return ProviderFailure(
            f"provider '{self.name}' ({self.shown_url}): {what}",
            kind=kind,
            fall_back=fall_back and not emitted,
            attempts=attempts,
            status=status,
            hint="the partial answer was not cached; run it again" if emitted else None,
            partial_output=emitted,
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()  # the variants share its connection pool
            self._client = None
            self._variants.clear()


def _reported_usage(obj: Any) -> Usage | None:
    """The usage a server reported; negative counts are no usage at all (the engine then charges
    the whole reservation), never a refund that would let the budget be crossed."""
    usage = Usage.from_dict(obj.model_dump())
    if min(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) < 0:
        log.warning(
            "ignoring the negative token counts a server reported",
            extra={"event": "usage.invalid"},
        )
        return None
    return usage


def _falls_back(status: int | None) -> bool:
    """Whether the next tier should answer: no answer, a timeout, a conflict, 429 or 5xx."""
    return status is None or status in (408, 409, 429) or status >= 500


def _error_field(exc: openai.APIStatusError, name: str) -> str | None:
    """The provider error's `code` or `param`, as one clean short line (or None)."""
    body = exc.body
    err = body.get("error", body) if isinstance(body, dict) else None
    value = err.get(name) if isinstance(err, dict) else None
    return safe_line(value, 100) or None if isinstance(value, (str, int)) else None


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(getattr(exc, "message", "") or "")
