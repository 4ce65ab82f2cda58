"""Options every command shares (`--config`, `--log-format`, `--debug`), defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import typer

# The logs.LogFormat values, spelled here as Typer needs a literal type to offer a choice.
LogFormatChoice = Literal["text", "json"]

CONFIG = typer.Option(
    None,
    "--config",
    "-c",
    metavar="PATH",
    help="Config file (else $AICLI_CONFIG, ./aicli.yaml, ~/.config/aicli/config.yaml, defaults).",
    show_default=False,
)
DEBUG = typer.Option(False, "--debug", help="Show tracebacks for errors.")
LOG_FORMAT = typer.Option(
    None,
    "--log-format",
    metavar="text|json",
    help="stderr as text lines or one JSON object per line (else $AICLI_LOG_FORMAT, text).",
    show_default=False,
)


def pass_config_down(
    ctx: typer.Context, config: Path | None, log_format: str | None = None
) -> None:
    """`aicli --config X CMD` (and `aicli cache --config X stats`): X becomes every subcommand's
    default for its own --config, which still wins when given; the same for --log-format."""
    given = {"config": str(config) if config is not None else None, "log_format": log_format}
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        return

    def tree(command: Any) -> dict[str, Any]:
        commands = getattr(command, "commands", None)
        if commands:
            return {name: tree(sub) for name, sub in commands.items()}
        return dict(given)

    ctx.default_map = {**(ctx.default_map or {}), **tree(ctx.command)}
