"""The lock file `prompts.lock`: `name@version: checksum` lines, read within limits, written
whole and atomically in name-then-semver order. What to record and when a change is refused is
the store's business (store.py)."""

from __future__ import annotations

import os
from pathlib import Path

from aicli import yamlsafe
from aicli.errors import TemplateError
from aicli.templates.model import display, load_yaml, semver_key

LOCK_NAME = "prompts.lock"
LOCK_HEADER = """\
# aicli prompt lock: the checksum of every released template version (name@version: checksum).
# A locked version must never change. To edit a template, add a new version (a new file with a
# higher `version:`), then run `aicli render --lock` to record it, and commit this file.
"""


def read_lock_file(path: Path) -> dict[str, str]:
    """name@version -> checksum as recorded; a missing lock file records nothing."""
    where = display(path)
    try:
        text = yamlsafe.read_text(path)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise TemplateError(f"{where}: cannot read the lock file: {exc.strerror}") from None
    data = load_yaml(text, where)
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise TemplateError(
            f"{where}: expected lines of `name@version: checksum`",
            "regenerate it with `aicli render --lock`",
        )
    return data


def write_lock_file(path: Path, entries: dict[str, str]) -> None:
    """Write every entry (the file is left alone when it already says exactly that)."""

    def order(key: str) -> tuple[object, ...]:
        name, _, version = key.partition("@")
        try:
            return (name, 0, semver_key(version))
        except ValueError:
            return (name, 1, version)

    body = "".join(f'{key}: "{entries[key]}"\n' for key in sorted(entries, key=order))
    text = LOCK_HEADER + body
    try:
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            tmp = path.with_name(f".{LOCK_NAME}.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise TemplateError(f"cannot write {display(path)}: {reason}") from None
