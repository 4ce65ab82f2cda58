"""The Typer app: the command table and turning click usage errors into `aicli: error:` lines.

Start-up time: a command's module is imported and its click command built (Typer inspects
every parameter of its function) only when the command line names it; `aicli --help` lists
the commands from the table without building any. Each command imports the core it needs
inside its own function.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from aicli import __version__
from aicli.cli import fastparams, options
from aicli.cli.output import (
    ClosedStream,
    crash,
    debug_asked,
    error,
    interrupted_code,
    interrupted_message,
    io_failure,
    log_format_from,
    sigterm_as_interrupt,
)
from aicli.errors import ExitCode


def _click_exceptions() -> tuple[Any, Any]:
    """Typer >= 0.2x vendors click as typer._click; older releases use click itself."""
    try:
        from typer._click import exceptions
    except ImportError:  # pragma: no cover - depends on the installed Typer
        from click import exceptions  # type: ignore[no-redef]
    no_args = getattr(exceptions, "NoArgsIsHelpError", exceptions.UsageError)
    return exceptions.ClickException, no_args


class _PromptNotCommand(Exception):
    """`aicli "what is 2+2"`: a prompt where a command was expected."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


class _Carried(Exception):
    """Ctrl-C, SIGTERM, an OSError or an EOFError from a command, carried past Typer's main to
    the boundary: Typer would make Ctrl-C and SIGTERM a bare exit 130, a broken pipe exit 1 and
    an EOFError "Aborted!"."""

    def __init__(self, inner: BaseException) -> None:
        super().__init__(inner)
        self.inner = inner


class _Group(TyperGroup):
    """The root: builds a command on first use, and is the CLI's one error boundary: every
    failure becomes one `aicli: error:` line (with a hint) and its documented exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, OSError, EOFError) as exc:
            raise _Carried(exc) from None

    def list_commands(self, ctx: Any) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = self.commands.get(cmd_name)
        if command is None and cmd_name in _COMMANDS:
            command = self.commands[cmd_name] = _build_command(cmd_name)
            fastparams.install(command)
        return command

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        # What click prints, from the table: every short help is given, so click would not
        # shorten it, and building every command just for its short help costs ~10 ms.
        with formatter.section("Commands"):
            formatter.write_dl([(name, spec[1]) for name, spec in _COMMANDS.items()])

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name = args[0] if args else ""
        root = ctx.parent is None and name and not name.startswith("-")
        if root and self.get_command(ctx, name) is None:
            from aicli.errors import close_matches

            near = close_matches(name, self.list_commands(ctx), n=1)
            if near and " " not in name:
                hint = f"did you mean: aicli {near[0]}"
            else:
                hint = f"did you mean: aicli generate {_quoted(' '.join(args))}"
            raise _PromptNotCommand(f"no command named {name!r}", hint)
        return super().resolve_command(ctx, args)

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if sys.stdout is None:  # started with stdout closed: writes fail with one clear error
            sys.stdout = ClosedStream()
        for stream in (sys.stdout, sys.stderr):
            # An ASCII or cp1252 terminal gets `?` for a character it lacks, not a crash.
            with contextlib.suppress(AttributeError, ValueError, OSError):
                stream.reconfigure(errors="replace")  # type: ignore[union-attr]
        from aicli.logs import configure

        # Before parsing, so that even a usage error follows --log-format / $AICLI_LOG_FORMAT.
        configure(log_format_from(sys.argv[1:] if args is None else args))
        fastparams.install(self)  # plain values coerced without pydantic: faster start-up
        ClickException, NoArgsIsHelpError = _click_exceptions()
        Exit, Abort = typer.Exit, typer.Abort

        argv = list(sys.argv[1:] if args is None else args)
        try:
            _check_arguments(argv)
            with sigterm_as_interrupt():
                try:
                    rv = super().main(
                        args=args,
                        prog_name=prog_name or "aicli",
                        complete_var=complete_var,
                        standalone_mode=False,
                        **extra,
                    )
                except _Carried as carried:
                    raise carried.inner from None
        except (_PromptNotCommand, _NotText) as exc:
            error(exc.message, exc.hint)
            rv = ExitCode.USAGE
        except NoArgsIsHelpError as exc:
            # `aicli` or `aicli cache` alone asks what there is: the help, on stdout, exit 0,
            # as git, docker and llm answer (with --log-format json too: stdout is not a log).
            ctx = getattr(exc, "ctx", None)
            sys.stdout.write((ctx.get_help() if ctx is not None else exc.format_message()) + "\n")
            rv = ExitCode.OK
        except ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            where = ctx.command_path if ctx is not None else "aicli"
            error(exc.format_message(), f"see '{where} --help'")
            rv = exc.exit_code
        except Exit as exc:
            rv = exc.exit_code
        except Abort:
            error("aborted")
            rv = ExitCode.FAILED
        except KeyboardInterrupt as exc:
            error(interrupted_message(exc))
            rv = interrupted_code(exc)
        except BrokenPipeError:  # the reader went away (`aicli ... | head`): no message
            with contextlib.suppress(Exception):
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115
            rv = ExitCode.OK
        except OSError as exc:  # stdout on a full disk or closed, a file that vanished
            io_failure(exc)
            rv = ExitCode.USAGE
        except Exception as exc:
            rv = crash(exc, debug_asked(argv))
        rv = _flush_stdout(rv)
        if not standalone_mode:
            return rv
        sys.exit(rv or 0)


class _NotText(_PromptNotCommand):
    """An argument with bytes that are not UTF-8 (they arrive as lone surrogates)."""


def _check_arguments(argv: list[str]) -> None:
    """Every argument is text before any command sees it: a non-UTF-8 byte would otherwise fail
    much later, wherever the argument is first written (a cache key, a request, a report)."""
    from aicli.safetext import safe_line, valid_text

    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError as exc:
            shown = safe_line(valid_text(arg), 80)
            raise _NotText(
                f"the argument {shown!r} is not valid UTF-8 text"
                f" (a byte that is not UTF-8 at position {exc.start})",
                "pass UTF-8 text (check the terminal's or the shell's encoding)",
            ) from None


def _flush_stdout(rv: Any) -> Any:
    """stdout flushed while a failure can still be one error line and exit 2: Python's own
    flush at exit would print "Exception ignored" and exit 120 (stdout is block-buffered
    unless PYTHONUNBUFFERED is set, so even `aicli --version > /dev/full` gets here)."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        io_failure(None)
    except OSError as exc:
        io_failure(exc)
        if rv in (None, ExitCode.OK, ExitCode.FAILED):
            return ExitCode.USAGE
    return rv


def _quoted(text: str) -> str:
    """Text as a shell would need it: "double quotes" when they suffice."""
    import shlex

    if not any(ch in text for ch in '"$`\\!'):
        return f'"{text}"'
    return shlex.quote(text)


_EPILOG = """\b
Getting started:
  aicli generate -t echo "Hello"                # offline: no key, no network
  export OPENAI_API_KEY=sk-...; aicli doctor    # check the config, key and endpoint
  aicli generate "Summarize this" < notes.txt   # ask a real model (default tier)

\b
Environment:
  OPENAI_API_KEY          the built-in openai provider's key (api_key_env names others)
  OPENAI_BASE_URL         the openai provider's endpoint (Ollama, vLLM, ... speak its API)
  AICLI_CONFIG            the config file when --config is not given
  AICLI_CACHE_BACKEND     disk or redis: overrides cache.backend
  AICLI_CACHE_DIR         the cache folder (else cache.dir, else $XDG_CACHE_HOME/aicli)
  AICLI_REDIS_URL         the Redis URL with its password (the variable cache.url_env names)
  AICLI_SERVE_TOKENS      serve's bearer tokens, comma-separated (serve.tokens_env names it)
  AICLI_PROGRESS_SECONDS  test-prompts off a TTY: seconds between progress lines (10)
  AICLI_LOG_FORMAT        text or json: how stderr is written (as --log-format)
  NO_COLOR                no colours and no progress bars
  FORCE_COLOR             colours off a TTY too (CI logs), even under TERM=dumb; NO_COLOR wins
  XDG_CONFIG_HOME         holds the user config, aicli/config.yaml (default ~/.config)

\b
Exit codes:
  0    success
  1    test-prompts: some cases failed
  2    bad usage, config, template or input
  3    no usable answer; doctor: a provider or the cache unreachable, or a key refused
  4    the budget (--max-cost) would be exceeded
  130  interrupted (Ctrl-C)
  143  terminated (SIGTERM: a cancelled CI job, timeout, docker stop)

More: aicli COMMAND --help, and aicli config show --defaults.
"""


def _new_app() -> typer.Typer:
    root = typer.Typer(
        cls=_Group,
        name="aicli",
        help="Take AI prompts from prototype to production: tiered models with fallbacks, a disk "
        "cache, cost control, versioned prompt templates and prompt regression tests.",
        epilog=_EPILOG,
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    root.callback()(_root)
    return root


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"aicli {__version__}\n")
        raise typer.Exit(ExitCode.OK)


def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    config: options.ConfigOpt = None,
    log_format: options.LogFormatOpt = None,
) -> None:
    """aicli: tiered models, a disk cache, cost control, prompt templates and prompt tests."""
    options.pass_config_down(ctx, config, log_format)


# name -> (module:attribute under aicli.cli, short help), in the order --help lists them. The
# attribute is a command function or a Typer group. Short help: one whole sentence each, so the
# command list never cuts one off.
_COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("generate:generate", "Answer a prompt with a model tier."),
    "render": ("render:render", "Print, list or lock prompt templates."),
    "test-prompts": ("test_prompts:test_prompts", "Run prompt test suites for CI."),
    "tiers": ("tiers:tiers", "List the tiers after inheritance."),
    "doctor": ("doctor:doctor", "Check the config, keys, endpoints, cache and prompts."),
    "serve": ("serve:serve", "Serve the engine over HTTP (OpenAI-compatible)."),
    "cache": ("cache:cache_app", "Inspect and tidy the answer cache."),
    "config": ("config:config_app", "Show the config file in use and its content."),
    "report": ("report:report_app", "Merge JSON reports of shards."),
    "batch": ("batch:batch_app", "Show and stop the batches of test-prompts --batch."),
}


def _build_command(name: str) -> Any:
    """The click command `name`, as Typer builds it for a subcommand of the root."""
    where, short_help = _COMMANDS[name]
    module, attribute = where.split(":")
    # __import__, not importlib.import_module: `python -X importtime` sees only the former.
    target = getattr(__import__(f"aicli.cli.{module}", fromlist=[attribute]), attribute)
    holder = typer.Typer(rich_markup_mode=None, pretty_exceptions_enable=False)
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name, short_help=short_help)
    else:
        holder.command(name, short_help=short_help)(target)
    return typer.main.get_group(holder).commands[name]


app = _new_app()


def main() -> None:
    app()
