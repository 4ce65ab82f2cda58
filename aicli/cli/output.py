"""Everything the CLI prints: stdout results, stderr messages, `aicli: error:` lines, exit codes.

stdout carries only results; warnings, summaries and errors go to stderr. Colour on a TTY, or
when FORCE_COLOR / CLICOLOR_FORCE is set; never with NO_COLOR.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, cast

import typer

from aicli.errors import AicliError, ExitCode

if TYPE_CHECKING:
    from aicli.logs import LogFormat


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
    return _forced_colour() is not None or is_tty(stream)


def _forced_colour() -> str | None:
    """The colour system FORCE_COLOR / CLICOLOR_FORCE ask for (FORCE_COLOR=2: 256 colours, 3:
    truecolor, any other value: the 16 standard ones), None when neither is set. Forced means
    forced: also under TERM=dumb, where rich's own detection would say "no colour"."""
    if _env_on("FORCE_COLOR"):
        return {"2": "256", "3": "truecolor"}.get(os.environ["FORCE_COLOR"].strip(), "standard")
    return "standard" if _env_on("CLICOLOR_FORCE") else None


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


# What JSON leaves raw inside strings but a terminal acts on (C1 controls such as \x9b, a CSI)
# or reorders (bidi controls), and line separators: written as \uXXXX, the same JSON value.
_JSON_RAW = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def print_json(obj: Any) -> None:
    text = json.dumps(obj, indent=2, ensure_ascii=False, default=str)
    out(_JSON_RAW.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text))


def info(text: str, event: str = "message", **fields: Any) -> None:
    """A progress or summary line on stderr (with --log-format json: one object, plus fields)."""
    from aicli.logs import emit

    emit(logging.INFO, event, text, **fields)


def warn(text: str) -> None:
    from aicli.logs import emit

    emit(logging.WARNING, "warning", text)


def error(message: str, hint: str | None = None) -> None:
    from aicli.logs import emit

    emit(logging.ERROR, "error", message, hint=hint)


def _console(stream: IO[str], **kwargs: Any) -> Any:
    """A rich Console (imported lazily); no escape codes at all unless `use_color(stream)`."""
    from rich.console import Console

    styled = use_color(stream)
    forced = _forced_colour() if styled else None
    return Console(
        file=stream,
        color_system=forced or ("auto" if styled else None),  # type: ignore[arg-type]
        force_terminal=True if styled else None,
        highlight=False,
        **kwargs,
    )


def stderr_console() -> Any:
    return _console(sys.stderr)


def stdout_console() -> Any:
    return _console(sys.stdout, soft_wrap=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a cancelled CI job, `timeout`, Kubernetes): handled exactly like Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM ends it the way Ctrl-C does (reports written, exit 143)."""
    import signal

    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except (ValueError, OSError):  # not the main thread
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(ValueError, OSError, TypeError):
            signal.signal(signal.SIGTERM, previous)


def interrupted_code(exc: BaseException | None = None, terminated: bool = False) -> int:
    if terminated or isinstance(exc, Terminated):
        return ExitCode.TERMINATED
    return ExitCode.INTERRUPTED


def interrupted_message(exc: BaseException | None = None, terminated: bool = False) -> str:
    return "terminated (SIGTERM)" if terminated or isinstance(exc, Terminated) else "interrupted"


def log_format_from(argv: Sequence[str]) -> LogFormat:
    """The format asked for by `--log-format` in argv (before `--`) or $AICLI_LOG_FORMAT.

    Read before click parses anything, so that even a usage error comes out as JSON."""
    from aicli.logs import LOG_FORMATS

    args = list(argv)
    args = args[: args.index("--")] if "--" in args else args
    for i, arg in enumerate(args):
        value = None
        if arg == "--log-format" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--log-format="):
            value = arg.split("=", 1)[1]
        if value in LOG_FORMATS:
            return cast("LogFormat", value)
    env = os.environ.get("AICLI_LOG_FORMAT", "").strip().lower()
    return cast("LogFormat", env) if env in LOG_FORMATS else "text"


def _command_logging(*, verbose: bool, debug: bool, log_format: str | None) -> None:
    """A command's --verbose / --debug on the process's one logging set-up (made by
    app._Group.main before parsing, in the --log-format / $AICLI_LOG_FORMAT format): the level.
    Without --log-format, a $AICLI_LOG_FORMAT that names no format is a usage error."""
    from aicli.errors import UsageError
    from aicli.logs import LOG_FORMATS, ROOT

    env = os.environ.get("AICLI_LOG_FORMAT", "").strip().lower()
    if log_format is None and env and env not in LOG_FORMATS:
        raise UsageError(
            f"$AICLI_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {env!r}",
            "unset it, or set AICLI_LOG_FORMAT=json",
        )
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.getLogger(ROOT).setLevel(level)


def use_log_format(fmt: LogFormat) -> None:
    """Switch the one logging set-up to `fmt` from here on (serve, once it is serving)."""
    from aicli.logs import ROOT, configure

    configure(fmt, logging.getLogger(ROOT).level)


class ClosedStream(io.TextIOBase):
    """Stands in for a closed stdout (`aicli ... >&-`): every write fails like a bad fd would."""

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "stdout is closed")


def io_failure(exc: OSError | None) -> None:
    """An OSError nobody handled (stdout on a full disk or closed, a file that vanished): one
    error line, exit 2 (None: the reader went away, no message). stdout then goes to devnull so
    no later flush can fail again."""
    if exc is not None and exc.filename:
        error(f"cannot use {exc.filename}: {exc.strerror or exc}", "check that file")
        return
    if exc is not None:
        error(f"cannot write the output: {exc.strerror or exc}", "check where stdout goes")
    with contextlib.suppress(Exception):
        # What the failed flush left in the buffer goes too: the interpreter flushes the
        # original stream once more at exit, and that must not fail ("Exception ignored").
        if sys.__stdout__ is not None:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.__stdout__.fileno())
            os.close(devnull)
    with contextlib.suppress(Exception):
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115


def debug_asked(argv: Sequence[str]) -> bool:
    """`--debug` in argv (before `--`): read from the command line, as log_format_from reads
    --log-format, so that the boundary knows it whether or not the command got to start."""
    args = list(argv)
    return "--debug" in (args[: args.index("--")] if "--" in args else args)


@contextlib.contextmanager
def handle_errors(
    debug: bool = False, *, verbose: bool = False, log_format: str | None = None
) -> Iterator[None]:
    """A command's part of the error handling: its --verbose / --debug applied to the logging
    set-up, and an AicliError turned into one error line and its documented exit code. Every
    command body runs inside it. Everything else (Ctrl-C, SIGTERM, a broken pipe, an OSError, a
    crash) goes on to the CLI's one boundary, app._Group.main. (--log-format is in force
    already: _Group.main read it from the command line before parsing.)"""
    try:
        _command_logging(verbose=verbose, debug=debug, log_format=log_format)
        yield
    except AicliError as exc:
        from aicli.scrub import scrub

        if debug:
            info(scrub(traceback.format_exc()), "traceback")
        error(scrub(exc.message), scrub(exc.hint) if exc.hint else None)
        raise typer.Exit(exc.exit_code) from None


def crash(exc: Exception, debug: bool) -> int:
    """An exception nobody expected: one line asking for a bug report (the traceback too with
    --debug), exit 1."""
    from aicli.scrub import scrub

    if debug:
        info(scrub(traceback.format_exc()), "traceback")
    error(
        f"unexpected {type(exc).__name__}: {scrub(str(exc))}",
        "this is a bug in aicli; rerun with --debug for the traceback and report it",
    )
    return ExitCode.FAILED
