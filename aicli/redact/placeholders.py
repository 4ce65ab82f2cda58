"""Placeholders: one request's value <-> `[KIND_N]` mapping, its restore, and streamed restore."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from aicli.redact.patterns import (
    KINDS,
    MAX_DIGITS,
    Detection,
    check_kinds,
    compiled_patterns,
    detect,
    earliest_longest,
)
from aicli.redact.walk import copy_with_slots
from aicli.types import FinishEvent, StreamEvent, TextDelta, ToolCallDelta

if TYPE_CHECKING:
    from collections.abc import Iterable

    from aicli.types import Message


class Redactor:
    """One request's redactions: the same value always gets the same placeholder."""

    def __init__(self, kinds: Iterable[str] | None = None) -> None:
        self.kinds = check_kinds(kinds)
        self._placeholder_of: dict[str, str] = {}
        self._original_of: dict[str, str] = {}
        self._reserved: set[str] = set()
        self._counts: dict[str, int] = {}
        self._last_number: dict[str, int] = {}

    def __repr__(self) -> str:  # never the values, even in a debugger or a traceback
        return f"Redactor(kinds={sorted(self.kinds)}, counts={self.counts})"

    @property
    def mapping_is_empty(self) -> bool:
        """Nothing replaced yet. A Redactor itself is always truthy: `if redactor:` means "on"."""
        return not self._original_of

    @property
    def counts(self) -> dict[str, int]:
        """Kind -> number of distinct values replaced, in KINDS order, only kinds that occurred."""
        return {k: self._counts[k] for k in KINDS if k in self._counts}

    def redact(self, text: str) -> str:
        """Replace every detected value, and every value this request already hid elsewhere
        (`my password is hunter2` after `password=hunter2`), by its placeholder."""
        if not self.kinds or not text:
            return text
        self._reserve(text)
        return self._replace(text, self._learn(text))

    def redact_messages(self, messages: list[Message]) -> list[Message]:
        """Copies of the messages with every text in them redacted: content and its text parts,
        tool results, tool-call arguments (UsageError for a shape it cannot read)."""
        copies, slots = copy_with_slots(messages)
        texts = [slot.text for slot in slots]
        for text in texts:
            self._reserve(text)
        # Learn every value first (a later message may reveal one), detecting each text once.
        found = [self._learn(t) if t and self.kinds else None for t in texts]
        for slot, text, seen in zip(slots, texts, found, strict=True):
            if seen is not None:
                slot.set(self._replace(text, seen))
        return copies

    def _replace(self, text: str, found: list[Detection]) -> str:
        """`text` with `found` and every value hidden elsewhere in this request replaced."""
        found = list(found)
        for value, placeholder in self._placeholder_of.items():
            if len(value) >= 4:
                kind = placeholder[1 : placeholder.rindex("_")].lower()
                i = text.find(value)
                while i != -1:
                    found.append(Detection(kind, i, i + len(value), value))
                    i = text.find(value, i + len(value))
        parts: list[str] = []
        pos = 0
        for d in earliest_longest(found):
            parts += [text[pos : d.start], self._placeholder(d.kind, d.value)]
            pos = d.end
        parts.append(text[pos:])
        return "".join(parts)

    def restore(self, text: str) -> str:
        if not self._original_of or "[" not in text:
            return text
        original = self._original_of
        return compiled_patterns().placeholder.sub(
            lambda m: original.get(m.group(), m.group()), text
        )

    def stream_restorer(self) -> StreamRestorer:
        return StreamRestorer(self)

    def event_restorer(self) -> EventRestorer:
        return EventRestorer(self)

    def _reserve(self, text: object) -> None:
        """Placeholder look-alikes already in the input are never issued, so never restored."""
        if isinstance(text, str) and "[" in text:
            for m in compiled_patterns().placeholder.finditer(text):
                if m.group() not in self._original_of:
                    self._reserved.add(m.group())

    def _learn(self, text: str) -> list[Detection]:
        """Detect the values in `text` and give each a placeholder, in order of appearance."""
        found = detect(text, self.kinds)
        for d in found:
            self._placeholder(d.kind, d.value)
        return found

    def _placeholder(self, kind: str, value: str) -> str:
        known = self._placeholder_of.get(value)
        if known is not None:
            return known
        n = self._last_number.get(kind, 0)
        while True:
            n += 1
            placeholder = f"[{kind.upper()}_{n}]"
            if placeholder not in self._reserved:
                break
        self._last_number[kind] = n
        self._counts[kind] = self._counts.get(kind, 0) + 1
        self._placeholder_of[value] = placeholder
        self._original_of[placeholder] = value
        return placeholder


class StreamRestorer:
    """Restores placeholders in streamed text, holding back one that a chunk boundary split."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._pending = ""

    def feed(self, chunk: str) -> str:
        text = self._pending + chunk
        cut = text.rfind("[")
        if cut == -1 or not _could_be_placeholder(text[cut + 1 :]):
            cut = len(text)
        self._pending = text[cut:]
        return self._redactor.restore(text[:cut])

    def flush(self) -> str:
        text, self._pending = self._pending, ""
        return self._redactor.restore(text)


class EventRestorer:
    """Restores placeholders in a stream's text and in each tool call's arguments, holding the
    finish event back until what was held back is out."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._text = StreamRestorer(redactor)
        self._calls: dict[int, StreamRestorer] = {}
        self._finish: FinishEvent | None = None

    def feed(self, event: StreamEvent) -> list[StreamEvent]:
        if isinstance(event, TextDelta):
            text = self._text.feed(event.text)
            return [TextDelta(text)] if text else []
        if isinstance(event, ToolCallDelta):
            restorer = self._calls.setdefault(event.index, StreamRestorer(self._redactor))
            args = restorer.feed(event.arguments)
            if args or event.id is not None or event.name is not None:
                return [ToolCallDelta(event.index, event.id, event.name, args)]
            return []
        self._finish = event
        return []

    def flush(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        text = self._text.flush()
        if text:
            out.append(TextDelta(text))
        for index, restorer in sorted(self._calls.items()):
            args = restorer.flush()
            if args:
                out.append(ToolCallDelta(index, arguments=args))
        if self._finish is not None:
            out.append(self._finish)
            self._finish = None
        return out


def _could_be_placeholder(body: str) -> bool:
    """Whether `[` + body is the unfinished start of some `[KIND_N]`."""
    for kind in KINDS:
        name = kind.upper() + "_"
        if name.startswith(body):
            return True
        digits = body[len(name) :]
        if body.startswith(name) and len(digits) <= MAX_DIGITS and re.fullmatch(r"[0-9]+", digits):
            return True
    return False
