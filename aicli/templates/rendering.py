"""Turning a template plus variables into the messages a model receives."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aicli.errors import TemplateError
from aicli.templates.guards import MAX_OUTPUT
from aicli.templates.model import Template
from aicli.templates.sandbox import analyze, render_text
from aicli.templates.variables import validate_variables
from aicli.types import Message, TemplateRef


@dataclass(frozen=True)
class Rendered:
    """A rendered prompt: optional system text, the user prompt, and which template made it."""

    system: str | None
    prompt: str
    template: TemplateRef | None

    def messages(self) -> list[Message]:
        out: list[Message] = []
        if self.system:
            out.append({"role": "system", "content": self.system})
        out.append({"role": "user", "content": self.prompt})
        return out


_UNDEFINED_HINT = "names and attributes a template uses must exist (strict undefined)"


def _limit(context: dict[str, Any]) -> int:
    """Output bound: 1 MB, or twice the variables' size when a big input is passed in."""
    try:
        size = len(json.dumps(context, ensure_ascii=False, default=str))
    except (TypeError, ValueError):
        size = 0
    return max(MAX_OUTPUT, 2 * size)


def render(tpl: Template, variables: dict[str, Any]) -> Rendered:
    """Validate the variables, then render system and prompt in the sandbox.

    Trailing whitespace is dropped from both; a system prompt that renders blank becomes None.
    """
    context = validate_variables(tpl, variables)
    limit = _limit(context)
    system = None
    if tpl.system is not None:
        system = render_text(
            tpl.system,
            context,
            label="<aicli:system>",
            includes=tpl.includes,
            limit=limit,
            where=f"{tpl.label}: system",
            undefined_hint=_UNDEFINED_HINT,
        ).rstrip()
    prompt = render_text(
        tpl.template,
        context,
        label="<aicli:template>",
        includes=tpl.includes,
        limit=limit,
        where=f"{tpl.label}: template",
        undefined_hint=_UNDEFINED_HINT,
    ).rstrip()
    if not prompt.strip():
        raise TemplateError(f"{tpl.label}: the rendered prompt is empty")
    return Rendered(system or None, prompt, tpl.ref)


def render_inline(
    source: str, variables: dict[str, Any], *, base_dir: Path, system: str | None = None
) -> Rendered:
    """Render a suite's inline `prompt:` (and optional `system:`); template=None.

    There are no declared variables, so only strict undefined applies. Includes are resolved
    inside `base_dir` with the same rules as for templates.
    """
    where = "inline prompt"
    includes = dict(_inline_includes(source, system, base_dir))
    context = dict(variables)
    limit = _limit(context)
    hint = "give every name the prompt uses in the case's `vars:`"
    rendered_system = None
    if system is not None:
        rendered_system = render_text(
            system,
            context,
            label="<aicli:inline-system>",
            includes=includes,
            limit=limit,
            where=f"{where}: system",
            undefined_hint=hint,
        ).rstrip()
    prompt = render_text(
        source,
        context,
        label="<aicli:inline>",
        includes=includes,
        limit=limit,
        where=where,
        undefined_hint=hint,
    ).rstrip()
    if not prompt.strip():
        raise TemplateError(f"{where}: the rendered prompt is empty")
    return Rendered(rendered_system or None, prompt, None)


@functools.lru_cache(maxsize=64)
def _inline_includes(
    source: str, system: str | None, base_dir: Path
) -> tuple[tuple[str, str], ...]:
    """Parse and vet an inline prompt once, not once per case of its suite."""
    sources = {"": source} if system is None else {"": source, "system": system}
    includes, _ = analyze(sources, base_dir, "inline prompt")
    return tuple(includes.items())
