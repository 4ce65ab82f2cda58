"""Options every command shares (`--config`, `--debug`), defined once."""

from __future__ import annotations

import typer

CONFIG = typer.Option(
    None,
    "--config",
    "-c",
    help="Config file (else $AICLI_CONFIG, ./aicli.yaml, ~/.config/aicli/config.yaml, defaults).",
    show_default=False,
)
DEBUG = typer.Option(False, "--debug", help="Show tracebacks for errors.")
