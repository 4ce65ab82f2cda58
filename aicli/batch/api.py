"""OpenAI's Batch API over the official SDK: upload, create, retrieve, cancel, list, results.

It borrows the tier's OpenAI provider's client (its key, base URL and connection pool); the SDK
retries uploads and creates that fail with a connection error, 408/409/429 or a 5xx, as it does
a call. Imported only by a batch run or `aicli batch`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai

from aicli.providers.openai import OpenAIProvider
from aicli.safetext import safe_line


class BatchAPIError(Exception):
    """A Batch API request failed after the SDK's retries; the message is one clean line."""


@dataclass
class BatchView:
    """What aicli reads of a batch object (server text, cleaned)."""

    id: str
    status: str
    counts: dict[str, int] = field(default_factory=dict)
    output_file_id: str | None = None
    error_file_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    errors: str = ""


class BatchAPI:
    """The Batch API of one provider."""

    def __init__(self, provider: OpenAIProvider, *, timeout_s: float = 60.0, retries: int = 3):
        self.provider = provider
        self.timeout_s = timeout_s
        self.retries = retries

    @property
    def client(self) -> openai.AsyncOpenAI:
        # asked each time: a round's engine closes the provider's client, which then makes anew
        return self.provider._variant(self.timeout_s, self.retries)

    async def upload(self, path: Path) -> str:
        try:
            with path.open("rb") as fh:
                made = await self.client.files.create(
                    file=(path.name, fh, "application/jsonl"), purpose="batch"
                )
        except openai.OpenAIError as exc:
            raise self._error("uploading the batch file", exc) from None
        return safe_line(made.id, 200)

    async def create(self, file_id: str, metadata: dict[str, str]) -> BatchView:
        try:
            made = await self.client.batches.create(
                input_file_id=file_id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                metadata=metadata,
            )
        except openai.OpenAIError as exc:
            raise self._error("creating the batch", exc) from None
        return view(made)

    async def retrieve(self, batch_id: str) -> BatchView:
        try:
            return view(await self.client.batches.retrieve(batch_id))
        except openai.OpenAIError as exc:
            raise self._error(f"reading batch {safe_line(batch_id, 80)}", exc) from None

    async def cancel(self, batch_id: str) -> BatchView:
        try:
            return view(await self.client.batches.cancel(batch_id))
        except openai.OpenAIError as exc:
            raise self._error(f"cancelling batch {safe_line(batch_id, 80)}", exc) from None

    async def find(self, metadata_key: str, value: str, limit: int = 1000) -> BatchView | None:
        """The newest batch whose metadata says `metadata_key: value` (a create whose reply was
        lost), looking at no more than `limit` batches."""
        try:
            seen = 0
            async for batch in self.client.batches.list(limit=100):
                seen += 1
                found = view(batch)
                if found.metadata.get(metadata_key) == value:
                    return found
                if seen >= limit:
                    break
        except openai.OpenAIError as exc:
            raise self._error("listing batches", exc) from None
        return None

    async def lines(self, file_id: str) -> AsyncIterator[bytes]:
        """A result file's lines, streamed: a large file is never held whole."""
        try:
            async with self.client.files.with_streaming_response.content(file_id) as response:
                async for line in response.iter_lines():
                    yield line.encode("utf-8", "surrogatepass")
        except openai.OpenAIError as exc:
            raise self._error(f"downloading {safe_line(file_id, 80)}", exc) from None

    def _error(self, what: str, exc: openai.OpenAIError) -> BatchAPIError:
        where = f"provider '{self.provider.name}' ({self.provider.shown_url})"
        status = getattr(exc, "status_code", None)
        detail = safe_line(getattr(exc, "message", "") or exc, 200)
        return BatchAPIError(
            f"{where}: {what} failed" + (f" (HTTP {status}: {detail})" if status else f": {detail}")
        )


def view(batch: Any) -> BatchView:
    counts_obj = getattr(batch, "request_counts", None)
    counts: dict[str, int] = {}
    if counts_obj is not None:
        for name in ("total", "completed", "failed"):
            value = getattr(counts_obj, name, None)
            if isinstance(value, int) and value >= 0:
                counts[name] = value
    meta = getattr(batch, "metadata", None) or {}
    errors_obj = getattr(batch, "errors", None)
    errors = ""
    data = getattr(errors_obj, "data", None) if errors_obj is not None else None
    if data:
        errors = "; ".join(safe_line(getattr(e, "message", "") or "", 120) for e in data[:3])
    return BatchView(
        id=safe_line(getattr(batch, "id", ""), 200),
        status=safe_line(getattr(batch, "status", "") or "unknown", 40),
        counts=counts,
        output_file_id=_opt(getattr(batch, "output_file_id", None)),
        error_file_id=_opt(getattr(batch, "error_file_id", None)),
        metadata={str(k): str(v) for k, v in dict(meta).items()} if isinstance(meta, dict) else {},
        errors=errors,
    )


def _opt(value: Any) -> str | None:
    return safe_line(value, 200) if isinstance(value, str) and value else None
