"""The Typer app: registers the commands and turns click usage errors into `aicli: error:` lines.

Imports nothing heavy: each command imports the core it needs inside its own function, so
`aicli --help` stays fast.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from aicli import __version__
from aicli.cli import cache as cache_cmd
from aicli.cli import config as config_cmd
from aicli.cli import doctor as doctor_cmd
from aicli.cli import generate as generate_cmd
from aicli.cli import options
from aicli.cli import render as render_cmd
from aicli.cli import test_prompts as test_prompts_cmd
from aicli.cli import tiers as tiers_cmd
from aicli.cli.output import error, log_format_from


def _click_exceptions() -> tuple[Any, Any]:
    """Typer >= 0.2x vendors click as typer._click; older releases use click itself."""
    try:
        from typer._click import exceptions
    except ImportError:  # pragma: no cover - depends on the installed Typer
        from click import exceptions  # type: ignore[no-redef]
    no_args = getattr(exceptions, "NoArgsIsHelpError", exceptions.UsageError)
    return exceptions.ClickException, no_args


class _Group(TyperGroup):
    """Report bad flags as one `aicli: error:` line plus a hint, exit 2."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        for stream in (sys.stdout, sys.stderr):
            # An ASCII or cp1252 terminal gets `?` for a character it lacks, not a crash.
            with contextlib.suppress(AttributeError, ValueError):
                stream.reconfigure(errors="replace")  # type: ignore[union-attr]
        from aicli.logs import configure

        # Before parsing, so that even a usage error follows --log-format / $AICLI_LOG_FORMAT.
        configure(log_format_from(sys.argv[1:] if args is None else args))
        ClickException, NoArgsIsHelpError = _click_exceptions()
        Exit, Abort = typer.Exit, typer.Abort

        try:
            rv = super().main(
                args=args,
                prog_name=prog_name or "aicli",
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
        except NoArgsIsHelpError as exc:
            sys.stderr.write(exc.format_message() + "\n")
            rv = 2
        except ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            where = ctx.command_path if ctx is not None else "aicli"
            error(exc.format_message(), f"see '{where} --help'")
            rv = exc.exit_code
        except Exit as exc:
            rv = exc.exit_code
        except Abort:
            error("aborted")
            rv = 1
        except KeyboardInterrupt:
            error("interrupted")
            rv = 130
        if not standalone_mode:
            return rv
        sys.exit(rv or 0)


app = typer.Typer(
    cls=_Group,
    name="aicli",
    help="Take AI prompts from prototype to production: tiered models with fallbacks, a disk "
    "cache, cost control, versioned prompt templates and prompt regression tests.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"aicli {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    config: Path | None = options.CONFIG,
    log_format: options.LogFormatChoice | None = options.LOG_FORMAT,
) -> None:
    """aicli: tiered models, a disk cache, cost control, prompt templates and prompt tests."""
    options.pass_config_down(ctx, config, log_format)


app.command("generate")(generate_cmd.generate)
app.command("render")(render_cmd.render)
app.command("test-prompts")(test_prompts_cmd.test_prompts)
app.add_typer(cache_cmd.cache_app, name="cache")
app.command("tiers")(tiers_cmd.tiers)
app.add_typer(config_cmd.config_app, name="config")
app.command("doctor")(doctor_cmd.doctor)


def main() -> None:
    app()
