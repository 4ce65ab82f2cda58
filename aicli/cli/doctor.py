"""`aicli doctor`: check the setup (config, keys, endpoints, models, cache, prompts) and say how."""

from __future__ import annotations

from typing import Annotated

import typer

from aicli.cli import options
from aicli.cli.output import handle_errors, out, print_json, use_color

_MARKS = {"ok": "ok  ", "warn": "warn", "fail": "FAIL", "skip": "skip"}
_ANSI = {"ok": "32", "warn": "33", "fail": "31", "skip": "2"}  # green, yellow, red, dim


def doctor(
    offline: Annotated[
        bool,
        typer.Option(
            "--offline", help="Contact no endpoint: check only the config, keys, cache, prompts."
        ),
    ] = False,
    json_out: Annotated[
        bool,
        typer.Option("--json", help='Print {"status", "checks": [{name, status, detail, hint}]}.'),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", metavar="SECONDS", min=0.1, help="Per endpoint; checks run at once."
        ),
    ] = 5.0,
    config: options.ConfigOpt = None,
    log_format: options.LogFormatOpt = None,
    debug: options.DebugOpt = False,
) -> None:
    """Check the setup: one line per check, each ok, warn, fail or skip, with a hint.

    Checks: the config file in use (and why it was chosen) is valid; for each provider a tier
    uses, its key variable is set (the key is never shown), its base_url answers GET /models
    and accepts the key, and each tier's model is listed; the cache is writable and readable;
    the prompts (templates load, the lock matches, suites parse).

    Exit codes: 0 nothing failed (warnings allowed), 2 the config or prompts are invalid,
    3 a provider or the cache cannot be reached, or a key is refused.

    \b
    Examples:
      aicli doctor
      aicli doctor --offline
      aicli doctor --json | jq '.checks[] | select(.status != "ok")'
    """
    with handle_errors(debug, log_format=log_format):
        import asyncio

        from aicli.health import diagnose, exit_code, overall

        checks = asyncio.run(diagnose(config, offline=offline, timeout_s=timeout))
        status = overall(checks)
        if json_out:
            print_json({"status": status, "checks": [c.to_json() for c in checks]})
        else:
            colour = use_color()
            width = max(len(c.name) for c in checks)
            for check in checks:
                mark = _MARKS[check.status]
                if colour:
                    mark = f"\033[{_ANSI[check.status]}m{mark}\033[0m"
                out(f"{mark}  {check.name.ljust(width)}  {check.detail}")
                if check.hint:
                    out(f"{' ' * (len(_MARKS['ok']) + 2 + width + 2)}hint: {check.hint}")
            counts = {s: sum(c.status == s for c in checks) for s in _MARKS}
            out(
                f"{status}: {counts['ok']} ok, {counts['warn']} warnings, "
                f"{counts['fail']} failed, {counts['skip']} skipped"
            )
        code = exit_code(checks)
        if code:
            raise typer.Exit(code)
