"""Shell completion of aicli's own names: tiers (-t), templates (-T, render NAME), suite paths.

Each callback reads the config the command line names (--config, else the usual search), never
raises and never writes: a broken config just completes nothing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from aicli.config import Config


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No log line may reach the terminal while the shell is completing."""
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _config(ctx: typer.Context) -> Config | None:
    from aicli.config import load_config

    path = None
    node: Any = ctx
    while node is not None and path is None:  # `aicli --config X generate -t <TAB>` too
        path = (node.params or {}).get("config")
        node = node.parent
    try:
        return load_config(path)
    except Exception:
        return None


def tier_names(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    with _quiet():
        cfg = _config(ctx)
        if cfg is None:
            return []
        return [
            (name, f"{tier.model} ({tier.provider})")
            for name, tier in cfg.tiers.items()
            if name.startswith(incomplete)
        ]


def template_names(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """NAME, or NAME@VERSION once an `@` is typed."""
    with _quiet():
        cfg = _config(ctx)
        if cfg is None:
            return []
        try:
            from aicli.templates import TemplateStore

            templates = TemplateStore(cfg.prompts_dir, check_lock=False).all()
        except Exception:
            return []
        items: dict[str, str] = {}
        for tpl in templates:
            key = tpl.key if "@" in incomplete else tpl.name
            items[key] = tpl.description or ""
        return [(k, v) for k, v in sorted(items.items()) if k.startswith(incomplete)]


def suite_paths(ctx: typer.Context, incomplete: str) -> list[str]:
    """Suite files (*.test.yaml) and the folders holding them, under prompts_dir."""
    with _quiet():
        cfg = _config(ctx)
        if cfg is None or not cfg.prompts_dir.is_dir():
            return []
        try:
            from aicli.suites.load import discover_suite_files

            files = discover_suite_files([], cfg.prompts_dir)
        except Exception:
            return []
        found: set[str] = set()
        for file in files:
            shown = _relative(file)
            found.add(shown)
            parent = Path(shown).parent
            while str(parent) not in ("", "."):
                found.add(str(parent) + "/")
                parent = parent.parent
        return sorted(p for p in found if p.startswith(incomplete))


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
