"""Write docs/cli.md from the real `--help` of every command, so the docs never drift.

Usage: python scripts/gen_cli_docs.py          # rewrite docs/cli.md
       python scripts/gen_cli_docs.py --check  # exit 1 if docs/cli.md is out of date (CI)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "cli.md"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _generated import write_or_check  # noqa: E402


def commands() -> list[list[str]]:
    """Every command path, walking the real command tree (a new command cannot be left out)."""
    import typer

    from aicli.cli.app import app

    found: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        found.append(path)
        if not hasattr(command, "list_commands"):
            return
        ctx = typer.Context(command)  # the root builds each command when asked for it
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if not sub.hidden:
                walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def help_text(args: list[str]) -> str:
    from typer.testing import CliRunner

    from aicli.cli.app import app

    result = CliRunner().invoke(
        app, [*args, "--help"], env={"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}
    )
    if result.exit_code != 0:
        raise SystemExit(f"aicli {' '.join(args)} --help failed:\n{result.output}")
    return result.stdout.rstrip() + "\n"


def build() -> str:
    parts = [
        "# aicli command reference\n",
        "Generated from the real `--help` output by `python scripts/gen_cli_docs.py`;"
        " a test fails when this file is out of date.\n",
    ]
    for args in commands():
        title = " ".join(["aicli", *args])
        parts.append(f"\n## `{title}`\n\n```\n{help_text(args)}```\n")
    return "".join(parts)


def main() -> int:
    sys.path.insert(0, str(ROOT))
    os.environ["COLUMNS"] = "100"
    check = "--check" in sys.argv[1:]
    return write_or_check(DOC, build(), check=check, remedy="python scripts/gen_cli_docs.py")


if __name__ == "__main__":
    raise SystemExit(main())
