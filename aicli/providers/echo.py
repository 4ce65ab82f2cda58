"""The built-in offline provider: deterministic, no network; answers with the last user message."""

from __future__ import annotations

from aicli.providers.base import DeltaSink, ProviderAnswer, ProviderCall
from aicli.types import FinishEvent, TextDelta, message_text


class EchoProvider:
    def __init__(self, name: str) -> None:
        self.name = name

    async def complete(self, call: ProviderCall, on_delta: DeltaSink | None) -> ProviderAnswer:
        users = [message_text(m) for m in call.messages if m["role"] == "user"]
        content = users[-1] if users else ""
        if call.stream and on_delta is not None:
            for start in range(0, len(content), 64):
                on_delta(TextDelta(content[start : start + 64]))
            on_delta(FinishEvent("stop"))
        return ProviderAnswer(
            content=content, usage=None, model=call.model, attempts=1, finish_reason="stop"
        )

    async def aclose(self) -> None:
        return None
