"""Turns what a user gives (a prompt, piped text, a template and its variables) into a Request.

Shared by both front doors: `aicli generate` and the service's `POST /generate` build their
requests here, so a template renders, a system prompt applies and a schema is checked the same
way for both.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aicli.errors import UsageError
from aicli.types import Message, Request

if TYPE_CHECKING:
    from aicli.config import Config
    from aicli.templates import Template, TemplateStore


class TemplateLookup(Protocol):
    """What build_request needs of a store: NAME[@VERSION] -> the template."""

    def get(self, ref: str) -> Template: ...


@dataclass
class PromptInput:
    """What the user asked for, before any template is rendered."""

    prompt: str | None = None  # with a template: the caller decides whether it becomes `input`
    stdin_text: str | None = None  # piped text; without a template it goes before the prompt
    template: str | None = None  # NAME[@VERSION]
    variables: dict[str, Any] = field(default_factory=dict)  # already merged by the caller
    system: str | None = None  # replaces the template's system prompt when given
    tier: str | None = None
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    seed: int | None = None
    schema: dict[str, Any] | None = None
    schema_label: str = "schema"  # how errors name where the schema came from


def build_request(
    cfg: Config, given: PromptInput, *, store: TemplateLookup | None = None
) -> Request:
    """Render the template (or join the texts) and check the schema; UsageError/TemplateError
    (exit 2, HTTP 400) for anything the user must fix. `store`: a long-lived store (the
    service's); without it the prompts folder is read now (the CLI reads it once per run)."""
    template_ref = None
    tier = given.tier
    if given.template:
        from aicli.templates import TemplateStore, render

        tpl = (store or TemplateStore(cfg.prompts_dir)).get(given.template)
        rendered = render(tpl, given.variables)
        messages = rendered.messages()
        if given.system is not None:
            messages = [m for m in messages if m["role"] != "system"]
            messages.insert(0, {"role": "system", "content": given.system})
        template_ref = rendered.template
        tier = tier or tpl.tier
    else:
        messages = _plain_messages(given)
    if given.schema is not None:
        _check_schema(given.schema, given.schema_label)
    return Request(
        messages=messages,
        tier=tier,
        model=given.model,
        max_tokens=given.max_tokens,
        temperature=given.temperature,
        seed=given.seed,
        schema=given.schema,
        template=template_ref,
    )


def _plain_messages(given: PromptInput) -> list[Message]:
    parts = [p.rstrip("\n") for p in (given.stdin_text, given.prompt) if p is not None]
    if not parts or not any(p.strip() for p in parts):
        raise UsageError(
            "no prompt: give PROMPT as an argument or pipe text on stdin",
            'aicli generate "Summarize this" < notes.txt   (see aicli generate --help)',
        )
    messages: list[Message] = [{"role": "system", "content": given.system}] if given.system else []
    messages.append({"role": "user", "content": "\n\n".join(parts)})
    return messages


def _check_schema(schema: Any, label: str) -> None:
    from aicli.jsontext import check_schema

    problem = check_schema(schema)
    if problem:
        raise UsageError(f"{label}: not a valid JSON Schema: {problem}")


class TemplateSource:
    """One TemplateStore for a long-lived process (the service), read again only when a file
    under the prompts folder (the lock included) changes. The folder is looked at (names,
    sizes and times only) at most once per `recheck_s`; call `current` off the event loop."""

    def __init__(self, prompts_dir: Path, *, recheck_s: float = 1.0) -> None:
        self.prompts_dir = Path(prompts_dir)
        self.recheck_s = recheck_s
        self._lock = threading.Lock()
        self._store: TemplateStore | None = None
        self._stamp: tuple[tuple[str, int, int], ...] = ()
        self._checked = float("-inf")

    def current(self) -> TemplateStore:
        from aicli.templates import TemplateStore

        with self._lock:  # one reload at a time; readers of the old store keep their copy
            now = time.monotonic()
            if self._store is not None and now - self._checked < self.recheck_s:
                return self._store
            self._checked = now
            stamp = _folder_stamp(self.prompts_dir)
            if self._store is None or stamp != self._stamp:
                store = TemplateStore(self.prompts_dir)
                store.problems()  # read and built now, in this thread, not by the first render
                self._store, self._stamp = store, stamp
            return self._store


def _folder_stamp(root: Path) -> tuple[tuple[str, int, int], ...]:
    """Every file and folder under `root` with its size and modification time: a change to
    any template, include or the lock changes this."""
    found: list[tuple[str, int, int]] = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in [*sorted(files), ""]:  # "": the folder itself (a file added or removed)
            path = os.path.join(folder, name) if name else folder
            try:
                st = os.stat(path)
            except OSError:
                continue
            found.append((path, st.st_mtime_ns, st.st_size))
    return tuple(found)
