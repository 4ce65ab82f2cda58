"""Replay answers from a recording (`--replay`): the ReplayStore, and why a request missed.

A miss names what changed since the recording (a tier, a template's text, the prompt, the
endpoint or the model), compared where the recording's `asked` says what its requests were made
of (recording.py writes it).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aicli.errors import UsageError
from aicli.recording import parse_line
from aicli.types import TemplateRef

if TYPE_CHECKING:
    from aicli.cache import CacheEntry

_HINT = "record it again with --record, or fix the line (one JSON object per line)"
log = logging.getLogger("aicli")


class ReplayStore:
    """Answers only from a recording. The file is read on first use (or by `load()`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise UsageError(
                f"--replay {path}: no such file", "make one with: aicli test-prompts --record FILE"
            )
        self._entries: dict[str, CacheEntry] | None = None
        self._facts: dict[str, _Facts] = {}  # key -> what its request was made of
        self._lock = threading.Lock()

    def load(self) -> ReplayStore:
        """Read and check the whole file now (the CLI calls this to fail before any case runs)."""
        with self._lock:
            if self._entries is None:
                self._entries = self._read()
        return self

    def _read(self) -> dict[str, CacheEntry]:
        entries: dict[str, CacheEntry] = {}
        try:
            with open(self.path, "rb") as fh:
                for lineno, raw in enumerate(fh, start=1):
                    if not raw.strip():
                        continue
                    try:
                        key, entry = parse_line(raw)
                    except ValueError as exc:
                        if not raw.endswith(b"\n") and not fh.read(1):  # torn by a killed run
                            log.warning(
                                "--replay %s:%d: skipping a torn last line (an interrupted"
                                " recording); record it again to fill it in",
                                self.path, lineno,
                                extra={"event": "replay.torn", "path": str(self.path)},
                            )  # fmt: skip
                            break
                        raise UsageError(
                            f"--replay {self.path}:{lineno}: not a valid recording line: {exc}",
                            _HINT,
                        ) from None
                    entries[key] = entry  # last line wins
                    self._facts[key] = _facts_of(json.loads(raw), entry)
        except OSError as exc:
            raise UsageError(f"--replay {self.path}: cannot read: {exc.strerror}") from None
        return entries

    def get(self, key: str) -> CacheEntry | None:
        entries = self._entries if self._entries is not None else self.load()._entries
        assert entries is not None
        return entries.get(key)

    def __len__(self) -> int:
        self.load()
        return len(self._entries or {})

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def keys(self) -> list[str]:
        self.load()
        return list(self._entries or {})

    def why_missing(
        self, tier: str, asked: dict[str, str], template: TemplateRef | None
    ) -> tuple[str, str]:
        """(cause, hint) of a miss for a request to `tier` made of `asked`: what differs from
        the recorded requests, compared where the recording says what they were made of."""
        self.load()
        on_tier = [f for f in self._facts.values() if f.tier == tier]
        again = "record it again with --record"
        if not on_tier:
            return f"the recording has no answer from tier '{tier}'", f"{again} -t {tier}"
        if template is not None:
            on_tier = [f for f in on_tier if f.template == template.name]
            if not on_tier:
                return (
                    f"the recording has no answer made with {template.name} on tier '{tier}'",
                    f"{again} -t {tier}",
                )
            named = {f.checksum for f in on_tier}
            if template.checksum not in named:
                was = ", ".join(sorted(c or "?" for c in named))
                return (
                    f"template {template.name}@{template.version} changed since the recording"
                    f" (checksum {template.checksum}, recorded {was})",
                    f"{again} (the template's new text changes every request made with it)",
                )
        known = [f for f in on_tier if f.asked]
        if not known:  # an older recording: it does not say what its requests were made of
            return (
                "the prompt, the model or the endpoint differs from the recording's",
                f"{again} (a changed variable, template, model or $OPENAI_BASE_URL changes keys)",
            )
        same_prompt = [f for f in known if f.asked.get("prompt") == asked.get("prompt")]
        if not same_prompt:
            return (
                "the prompt changed: no recorded request to this tier sent this text"
                " (a suite variable, the suite's prompt or the template's text differs)",
                f"{again} to record the new prompt",
            )
        endpoints = {f.asked.get("endpoint") for f in same_prompt}
        if asked.get("endpoint") not in endpoints:
            return (
                f"tier '{tier}' now sends to another endpoint than the recording's",
                f"use the recording's base_url (is $OPENAI_BASE_URL set?), or {again}",
            )
        models = sorted({f.asked.get("model") or "?" for f in same_prompt})
        if asked.get("model") not in models:
            return (
                f"tier '{tier}' now asks model {asked.get('model')}, the recording asked "
                + ", ".join(models),
                f"use the recording's model, or {again}",
            )
        return (
            "a setting sent with the prompt changed (max_tokens, temperature, seed or --schema)",
            f"use the recording's settings, or {again}",
        )


@dataclass(frozen=True)
class _Facts:
    tier: str
    template: str | None
    checksum: str | None
    asked: dict[str, str]


def _facts_of(data: dict[str, Any], entry: CacheEntry) -> _Facts:
    template: dict[str, Any] = data.get("template") or {}
    if not isinstance(template, dict):
        template = {}
    asked = data.get("asked")
    facts = (
        {k: v for k, v in asked.items() if isinstance(k, str) and isinstance(v, str)}
        if isinstance(asked, dict)
        else {}
    )
    name = template.get("name") if isinstance(template.get("name"), str) else None
    return _Facts(entry.tier, name, entry.template_checksum, facts)
