"""Options every command shares (`--config`, `--debug`), defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

CONFIG = typer.Option(
    None,
    "--config",
    "-c",
    metavar="PATH",
    help="Config file (else $AICLI_CONFIG, ./aicli.yaml, ~/.config/aicli/config.yaml, defaults).",
    show_default=False,
)
DEBUG = typer.Option(False, "--debug", help="Show tracebacks for errors.")


def pass_config_down(ctx: typer.Context, config: Path | None) -> None:
    """`aicli --config X CMD` (and `aicli cache --config X stats`): X becomes every subcommand's
    default for its own --config, which still wins when given."""
    if config is None:
        return

    def tree(command: Any) -> dict[str, Any]:
        commands = getattr(command, "commands", None)
        if commands:
            return {name: tree(sub) for name, sub in commands.items()}
        return {"config": str(config)}

    ctx.default_map = {**(ctx.default_map or {}), **tree(ctx.command)}
