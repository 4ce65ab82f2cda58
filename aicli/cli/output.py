"""Everything the CLI prints: stdout results, stderr messages, `aicli: error:` lines, exit codes.

stdout carries only results; warnings, summaries and errors go to stderr. Colour only on a TTY
with NO_COLOR unset.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from collections.abc import Iterator
from typing import IO, Any

import typer

from aicli.errors import AicliError


def is_tty(stream: IO[str] | None = None) -> bool:
    stream = stream or sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def use_color(stream: IO[str] | None = None) -> bool:
    return is_tty(stream) and "NO_COLOR" not in os.environ


def read_piped_stdin() -> str | None:
    """Piped stdin's text (None when empty, or on a TTY: never wait for a keyboard)."""
    from aicli.errors import UsageError

    if sys.stdin is None or is_tty(sys.stdin):
        return None
    try:
        text = sys.stdin.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read stdin: {exc}", "pipe UTF-8 text into aicli") from None
    return text if text.strip() else None


def out(text: str, end: str = "\n") -> None:
    """Write a result to stdout."""
    sys.stdout.write(text + end)
    sys.stdout.flush()


def print_json(obj: Any) -> None:
    out(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def info(text: str) -> None:
    """A progress or summary line on stderr."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def warn(text: str) -> None:
    info(f"aicli: warning: {text}")


def error(message: str, hint: str | None = None) -> None:
    info(f"aicli: error: {message}")
    if hint:
        info(f"  hint: {hint}")


def stderr_console() -> Any:
    """A rich Console on stderr (imported lazily: rich is only needed for tables and bars)."""
    from rich.console import Console

    return Console(stderr=True, no_color=not use_color(sys.stderr), highlight=False)


def stdout_console() -> Any:
    from rich.console import Console

    return Console(
        file=sys.stdout, no_color=not use_color(sys.stdout), highlight=False, soft_wrap=True
    )


@contextlib.contextmanager
def handle_errors(debug: bool = False) -> Iterator[None]:
    """Turn an AicliError (or any crash) into one error line and the documented exit code."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except AicliError as exc:
        from aicli.security import scrub

        if debug:
            info(scrub(traceback.format_exc()))
        error(scrub(exc.message), scrub(exc.hint) if exc.hint else None)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        error("interrupted", None)
        raise typer.Exit(130) from None
    except BrokenPipeError:
        # The reader went away (`aicli ... | head`): not an error worth a message.
        with contextlib.suppress(Exception):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        raise typer.Exit(0) from None
    except Exception as exc:
        from aicli.security import scrub

        if debug:
            info(scrub(traceback.format_exc()))

        error(
            f"unexpected {type(exc).__name__}: {scrub(str(exc))}",
            "this is a bug in aicli; rerun with --debug for the traceback and report it",
        )
        raise typer.Exit(1) from None


def setup_logging(verbose: bool = False, debug: bool = False) -> None:
    """Core modules log through `logging.getLogger("aicli")`; print their lines on stderr."""
    import logging

    logger = logging.getLogger("aicli")
    for handler in list(logger.handlers):
        if getattr(handler, "_aicli", False):
            logger.removeHandler(handler)

    class Handler(logging.Handler):
        _aicli = True

        def emit(self, record: logging.LogRecord) -> None:
            from aicli.security import scrub

            label = "warning" if record.levelno >= logging.WARNING else "info"
            info(f"aicli: {label}: {scrub(record.getMessage())}")

    logger.addHandler(Handler())
    logger.setLevel(logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING)
    logger.propagate = False
