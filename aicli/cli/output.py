"""Everything the CLI prints: stdout results, stderr messages, `aicli: error:` lines, exit codes.

stdout carries only results; warnings, summaries and errors go to stderr. Colour on a TTY, or
when FORCE_COLOR / CLICOLOR_FORCE is set; never with NO_COLOR.
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


def _env_on(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def use_color(stream: IO[str] | None = None) -> bool:
    """NO_COLOR wins; FORCE_COLOR / CLICOLOR_FORCE colour CI logs; else only on a TTY."""
    if "NO_COLOR" in os.environ:
        return False
    return _env_on("FORCE_COLOR") or _env_on("CLICOLOR_FORCE") or is_tty(stream)


def read_piped_stdin() -> str | None:
    """Piped stdin's text (None when empty, or on a TTY: never wait for a keyboard)."""
    from aicli.errors import UsageError

    if sys.stdin is None or is_tty(sys.stdin):
        return None
    try:
        raw = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read()
    except OSError as exc:
        raise UsageError(f"cannot read stdin: {exc}", "pipe UTF-8 text into aicli") from None
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"stdin is not UTF-8 text (byte 0x{raw[exc.start]:02x} at position {exc.start})",
            "convert it first, e.g. iconv -f latin1 -t utf-8",
        ) from None
    return text if text.strip() else None


def check_text(value: str | None, what: str) -> None:
    """Arguments arrive with undecodable bytes as surrogates; refuse them (exit 2), not crash."""
    if value is None:
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        from aicli.errors import UsageError

        raise UsageError(
            f"{what} is not valid UTF-8 text (byte at position {exc.start})",
            "pass UTF-8 text (check the terminal's or file's encoding)",
        ) from None


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


def _console(stream: IO[str], **kwargs: Any) -> Any:
    """A rich Console (imported lazily); no escape codes at all unless `use_color(stream)`."""
    from rich.console import Console

    styled = use_color(stream)
    return Console(
        file=stream,
        color_system="auto" if styled else None,
        force_terminal=True if styled else None,
        highlight=False,
        **kwargs,
    )


def stderr_console() -> Any:
    return _console(sys.stderr)


def stdout_console() -> Any:
    return _console(sys.stdout, soft_wrap=True)


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
