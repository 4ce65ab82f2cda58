"""The step every generator of a committed file ends with: write the file, or with --check only
compare it (exit 1 when it is out of date, naming the command that rewrites it).

Used by gen_cli_docs.py, gen_config_docs.py, gen_defaults_json.py and make_recording.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_or_check(path: Path, text: str, *, check: bool, remedy: str, note: str = "") -> int:
    """`check`: 0 when `path` holds exactly `text`, else 1 with a line on stderr saying to run
    `remedy`; otherwise write `path` (its folder too) and say so, with `note` after the name."""
    shown = path.relative_to(ROOT)
    if check:
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            print(f"{shown} is out of date: run {remedy}", file=sys.stderr)
            return 1
        print(f"{shown} is up to date")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {shown}{note}")
    return 0
