"""Options the commands share (`--config`, `--log-format`, `--debug`, the cache flags), declared
once as `Annotated` aliases, and the one rule that turns the cache flags into a cache mode."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

# The logs.LogFormat values, spelled here as Typer needs a literal type to offer a choice.
LogFormatChoice = Literal["text", "json"]
# The cache modes of types.Request.cache_mode / RunOptions.cache_mode.
CacheMode = Literal["use", "off", "refresh", "only"]

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        metavar="PATH",
        help="Config file (else $AICLI_CONFIG, ./aicli.yaml, ~/.config/aicli/config.yaml, "
        "defaults).",
        show_default=False,
    ),
]
# `--json` where a command prints one object (the cache and batch subcommands); commands whose
# JSON has its own shape say so in their own help.
JsonObjectOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON object instead of text.")
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")]
LogFormatOpt = Annotated[
    LogFormatChoice | None,
    typer.Option(
        "--log-format",
        metavar="text|json",
        help="stderr as text lines or one JSON object per line (else $AICLI_LOG_FORMAT, text).",
        show_default=False,
    ),
]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the cache.")]
RefreshOpt = Annotated[
    bool, typer.Option("--refresh", help="Skip the cache read, write the answer.")
]


# --cache-only says what a miss becomes: a one-shot command fails, a suite case errs.
CacheOnlyOpt = Annotated[
    bool, typer.Option("--cache-only", help="Answer only from the cache (a miss is exit 3).")
]
CacheOnlyCaseOpt = Annotated[
    bool,
    typer.Option("--cache-only", help="Answer only from the cache (a miss is an api_error)."),
]


def cache_mode(no_cache: bool, refresh: bool = False, cache_only: bool = False) -> CacheMode:
    """The cache flags as one mode; more than one of them is a usage error (exit 2)."""
    given = [flag for flag, on in (("--no-cache", no_cache), ("--refresh", refresh),
                                   ("--cache-only", cache_only)) if on]  # fmt: skip
    if len(given) > 1:
        from aicli.errors import UsageError

        raise UsageError(f"{' and '.join(given)} exclude each other", "pick one of them")
    return "off" if no_cache else "refresh" if refresh else "only" if cache_only else "use"


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
