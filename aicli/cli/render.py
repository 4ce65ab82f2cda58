"""`aicli render`: print a rendered template, list the templates, or record them in the lock."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from aicli.cli import options
from aicli.cli.completion import template_names
from aicli.cli.output import (
    handle_errors,
    info,
    is_tty,
    out,
    print_json,
    read_piped_stdin,
    stdout_console,
)
from aicli.cli.startup import long_lived


def render(
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="NAME[@VERSION]",
            help="Template to render; NAME alone = newest release.",
            autocompletion=template_names,
        ),
    ] = None,
    var: Annotated[
        list[str] | None,
        typer.Option(
            "--var",
            metavar="KEY=VALUE",
            help="Set a variable (repeatable). VALUE is parsed as JSON when it can be, else text.",
        ),
    ] = None,
    vars_file: Annotated[
        Path | None,
        typer.Option(
            "--vars-file", metavar="FILE", help="YAML or JSON mapping of variables (--var wins)."
        ),
    ] = None,
    json_: Annotated[
        bool,
        typer.Option(
            "--json", help="Print {name, version, checksum, system, prompt} (with --list: a list)."
        ),
    ] = False,
    list_: Annotated[
        bool,
        typer.Option(
            "--list",
            help="List every template version: checksum, tier, lock state, description. "
            "Files with errors are reported on stderr and make it exit 2.",
        ),
    ] = False,
    lock: Annotated[
        bool,
        typer.Option(
            "--lock",
            help="Record the checksum of every new template version in PROMPTS_DIR/prompts.lock. "
            "Run it after adding a version, and commit the lock file with it.",
        ),
    ] = False,
    config: options.ConfigOpt = None,
    log_format: options.LogFormatOpt = None,
    debug: options.DebugOpt = False,
) -> None:
    """Render prompt template NAME[@VERSION] and print it, exactly as a model would get it.

    \b
    Output: the system prompt (when the template has one), a line `---`, then the prompt.
    --json prints {name, version, checksum, system, prompt} instead.

    \b
    Variables: --var KEY=VALUE (JSON if it parses: 5, true, ["a","b"]; else text; a variable
    declared `type: string` keeps the text as typed), --vars-file FILE, and piped stdin, which
    becomes the variable `input`. Precedence: --var > --vars-file > stdin. stdin is read only
    when the template declares `input` and no --var/--vars-file gave it.

    \b
    A broken template file only breaks its own name: rendering that name (any version) fails
    with the file's error (exit 2), other templates still work. A file too broken to tell its
    name (bad YAML, not UTF-8) is skipped with a warning on stderr. --list prints the good
    templates on stdout, then one `aicli: error:` line per broken file on stderr, and exits 2;
    --lock records the good ones, reports the broken ones and exits 2.

    \b
    The lock: PROMPTS_DIR/prompts.lock records the checksum of each released name@version.
    A locked version whose content changed stops every command (exit 2, "bump the version"):
    put edits in a new version, then run `aicli render --lock` and commit the lock.

    \b
    Examples:
      aicli render --list
      aicli render extraction@1.2.0 --var text="Apple is in Cupertino" \\
          --var 'fields=[{"name": "city", "description": "City"}]'
      git diff --staged | aicli render commit-message --var style=conventional
      aicli render --lock
    """
    with handle_errors(debug, log_format=log_format):
        with long_lived():  # start-up time: see aicli/cli/startup.py
            from aicli import templates  # noqa: F401  (loaded here: _render, _list, _write_lock)
            from aicli.config import load_config
            from aicli.errors import UsageError

        if list_ and lock:
            raise UsageError("--list and --lock exclude each other", "run them one at a time")
        if (list_ or lock) and (var or vars_file):
            raise UsageError("--var/--vars-file only apply when rendering a template")
        if lock and name:
            raise UsageError("--lock takes no NAME: it records every template version")
        cfg = load_config(config)
        if lock:
            _write_lock(cfg.prompts_dir)
        elif list_:
            _list(cfg.prompts_dir, name, json_)
        elif not name:
            raise UsageError(
                "missing NAME: which template to render?",
                "`aicli render --list` shows every template",
            )
        else:
            _render(cfg.prompts_dir, name, var or [], vars_file, json_)


def _render(prompts_dir: Path, name: str, var: list[str], vars_file: Path | None, js: bool) -> None:
    from aicli.templates import TemplateStore, collect_variables, render

    tpl = TemplateStore(prompts_dir).get(name)
    values = collect_variables(var, vars_file, None)
    if "input" in tpl.variables and "input" not in values:
        stdin_text = read_piped_stdin()
        if stdin_text is not None:
            values = collect_variables(var, vars_file, stdin_text)
    rendered = render(tpl, values)
    if js:
        print_json(
            {
                "name": tpl.name,
                "version": tpl.version,
                "checksum": tpl.checksum,
                "system": rendered.system,
                "prompt": rendered.prompt,
            }
        )
        return
    if rendered.system:
        out(rendered.system)
        out("---")
    out(rendered.prompt)


def _list(prompts_dir: Path, name: str | None, js: bool) -> None:
    from aicli.cli.output import warn
    from aicli.errors import TemplateError
    from aicli.templates import TemplateStore

    store = TemplateStore(prompts_dir, check_lock=False)
    templates = store.all()
    problems = store.problems()
    if name:
        base = name.strip().partition("@")[0]
        templates = [t for t in templates if t.name == base]
        if not any(p.name == base for p in problems):
            store.resolve(name)  # an unknown name gets the usual "did you mean" error
        # A file whose name could not be read may be this template: show it too.
        problems = [p for p in problems if p.name in (base, None)]
    status = store.lock_status()
    if js:
        print_json([_describe(t, status[t.key]) for t in templates])
    elif templates:
        _table(templates, status)
    elif not problems:
        warn(f"no templates in {prompts_dir}")
    _report(problems)
    lock_error = store.lock_error()
    if lock_error is not None:
        raise TemplateError(
            lock_error.message, "put the edit in a new version (see `aicli render --help`)"
        )
    if problems:
        raise TemplateError(
            f"{_files(len(problems))} could not be loaded (see above); the others are usable",
            "fix or remove them; `aicli render --help` says how broken files are handled",
        )


def _files(n: int) -> str:
    return f"{n} template file{'s' if n != 1 else ''}"


def _report(problems: list[Any]) -> None:
    """One `aicli: error:` line (and hint) per template file that could not be loaded."""
    from aicli.cli.output import error

    for problem in problems:
        error(problem.error.message, problem.error.hint)  # error() scrubs


def _describe(tpl: Any, state: str) -> dict[str, Any]:
    return {
        "name": tpl.name,
        "version": tpl.version,
        "checksum": tpl.checksum,
        "tier": tpl.tier,
        "description": tpl.description,
        "lock": state,
        "variables": {
            key: {"required": "default" not in schema, "type": schema.get("type")}
            for key, schema in tpl.variables.items()
        },
        "path": str(tpl.path),
    }


def _table(templates: list[Any], status: dict[str, str]) -> None:
    headers = ["NAME", "VERSION", "CHECKSUM", "TIER", "LOCK", "DESCRIPTION"]
    rows = [
        [t.name, t.version, t.checksum, t.tier or "-", status[t.key], t.description]
        for t in templates
    ]
    if is_tty():
        from rich.table import Table

        table = Table(box=None, header_style="bold", pad_edge=False)
        for i, header in enumerate(headers[:-1]):  # keep names and checksums whole
            table.add_column(header, no_wrap=True, min_width=max(len(r[i]) for r in rows))
        table.add_column(headers[-1], overflow="fold")
        for row in rows:
            table.add_row(*row, style="red" if row[4] == "changed" else None)
        stdout_console().print(table)
        return
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers) - 1)]
    for row in [headers, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        out("  ".join([*cells, row[-1]]).rstrip())


def _write_lock(prompts_dir: Path) -> None:
    from aicli.errors import TemplateError
    from aicli.templates import TemplateStore
    from aicli.templates.model import display

    store = TemplateStore(prompts_dir, check_lock=False)
    added = store.write_lock()
    where = display(store.lock_path)
    for line in added:
        info(line)
    total = len(store.all())
    if added:
        info(f"wrote {where}: {len(added)} added, {total} template version(s) in all")
    else:
        info(f"{where} is up to date ({total} template version(s))")
    problems = store.problems()
    if problems:
        _report(problems)
        raise TemplateError(
            f"{_files(len(problems))} could not be loaded and were not locked (see above)",
            "fix them, then rerun `aicli render --lock`",
        )
