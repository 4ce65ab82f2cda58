"""A deadline for each whole HTTP attempt: headers and body, streamed or not, end by its timeout.

httpx's timeouts bound each network operation, so a server that drips a byte just before every
read timeout holds a request forever. `DeadlineClient.send` (the one method the openai SDK calls
for every attempt) puts the attempt's own timeout on the whole exchange; when it passes, the
attempt fails with the ordinary `ReadTimeout`, so the SDK retries and the engine falls back as
for any other timeout. Imported only with the SDK.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import openai

from aicli.providers.base import HttpTransport

# A provider's whole reply, decoded. An answer at the largest max_tokens with logprobs is a few
# MB; more is a broken or hostile server, and reading on would only fill the memory.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024


class ResponseTooLarge(httpx2.ReadError):
    """A reply past MAX_RESPONSE_BYTES: read no further (the tier falls back like a broken
    connection)."""


def _too_large(request: httpx2.Request) -> ResponseTooLarge:
    limit = MAX_RESPONSE_BYTES // (1024 * 1024)
    return ResponseTooLarge(f"the reply was larger than {limit} MB", request=request)


async def _read_bounded(response: httpx2.Response, request: httpx2.Request) -> None:
    """`response.aread()` that stops past MAX_RESPONSE_BYTES of decoded body (a compressed
    reply is counted as it unpacks, so a small gzip bomb is stopped too)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        raise _too_large(request)
    parts, size = [], 0
    async for part in response.aiter_bytes():
        size += len(part)
        if size > MAX_RESPONSE_BYTES:
            raise _too_large(request)
        parts.append(part)
    # What aread() itself stores; httpx reads `_content` for .content, .text and .json().
    response._content = b"".join(parts)


def attempt_seconds(request: httpx2.Request, default: httpx2.Timeout) -> float | None:
    """The attempt's time limit: the largest of its httpx timeouts (the SDK sets them all)."""
    timeout = request.extensions.get("timeout") or default.as_dict()
    values = [float(v) for v in timeout.values() if v is not None]
    return max(values) if values else None


def _timed_out(request: httpx2.Request, seconds: float) -> httpx2.ReadTimeout:
    return httpx2.ReadTimeout(
        f"no complete answer within {seconds:g} s (timeout_seconds)", request=request
    )


def _honest(exc: httpx2.ConnectTimeout, request: httpx2.Request) -> httpx2.TransportError:
    """The error a transport's ConnectTimeout stands for. The SDK's aiohttp mapping (its vendored
    httpx_aiohttp) calls every refused or dropped connection a ConnectTimeout, which the SDK
    reports as a timeout; one not caused by a timeout is a connection failure, as httpx says."""
    if exc.__cause__ is None or isinstance(exc.__cause__, TimeoutError):
        return exc
    return httpx2.ConnectError(str(exc), request=request)


class _DeadlineStream(httpx2.AsyncByteStream):
    """A response body that raises ReadTimeout once the attempt's deadline has passed."""

    def __init__(
        self, inner: Any, deadline: float, request: httpx2.Request, seconds: float
    ) -> None:
        self._inner = inner
        self._deadline = deadline
        self._request = request
        self._seconds = seconds
        self._size = 0  # bytes so far: a stream is bounded like a whole reply

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self._inner.__aiter__()
        while True:
            try:
                with anyio.fail_after(max(0.0, self._deadline - anyio.current_time())):
                    chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise _timed_out(self._request, self._seconds) from None
            except httpx2.ConnectTimeout as exc:
                raise _honest(exc, self._request) from exc.__cause__
            self._size += len(chunk)
            if self._size > MAX_RESPONSE_BYTES:
                raise _too_large(self._request)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class _Deadline(httpx2.AsyncClient):
    """One deadline per attempt (see the module docstring), over whichever client it is mixed
    into: the SDK's default (httpx) or its aiohttp one."""

    async def send(
        self, request: httpx2.Request, *, stream: bool = False, **kwargs: Any
    ) -> httpx2.Response:
        seconds = attempt_seconds(request, self.timeout)
        if seconds is None:
            try:
                return await super().send(request, stream=stream, **kwargs)
            except httpx2.ConnectTimeout as exc:
                raise _honest(exc, request) from exc.__cause__
        deadline = anyio.current_time() + seconds
        response: httpx2.Response | None = None
        try:
            # One cancel scope for headers and body: the SDK reads a whole answer at once.
            with anyio.fail_after(seconds):
                response = await super().send(request, stream=True, **kwargs)
                if not stream:
                    await _read_bounded(response, request)
        except BaseException as exc:
            if response is not None:  # the body was cut short: never back into the pool
                await response.aclose()
            if isinstance(exc, TimeoutError):
                raise _timed_out(request, seconds) from None
            if isinstance(exc, httpx2.ConnectTimeout):
                raise _honest(exc, request) from exc.__cause__
            raise
        if stream:  # a stream is read later, chunk by chunk: each read keeps the deadline
            response.stream = _DeadlineStream(response.stream, deadline, request, seconds)
        return response


class DeadlineClient(_Deadline, openai.DefaultAsyncHttpxClient):
    """The SDK's default client (httpx), with one deadline per attempt."""


class AioDeadlineClient(_Deadline, openai.DefaultAioHttpClient):
    """The SDK's aiohttp client (`openai[aiohttp]`), with one deadline per attempt."""


def deadline_client(transport: HttpTransport) -> type[httpx2.AsyncClient]:
    """The client class for a transport; aiohttp only when it is installed (aicli-prod[serve]
    brings it), else the SDK's default, which every install has."""
    if transport == "aiohttp" and importlib.util.find_spec("aiohttp") is not None:
        return AioDeadlineClient
    return DeadlineClient
