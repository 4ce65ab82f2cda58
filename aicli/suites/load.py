"""Suite files -> validated cases: discovery of `*.test.yaml`, template checks, shards."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aicli.digest import sha256_hex
from aicli.errors import AicliError, SuiteError, UsageError
from aicli.suites.model import Suite, display_path, suite_error
from aicli.suites.parse import load_suite_file

if TYPE_CHECKING:
    from aicli.templates import TemplateStore

_SUITE_GLOBS = ("*.test.yaml", "*.test.yml")


# --- discovery --------------------------------------------------------------------------------


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def discover_suite_files(paths: list[Path], default_dir: Path) -> list[Path]:
    """Files as given, folders searched recursively for `*.test.yaml`; default: `default_dir`."""
    roots = list(paths) or [default_dir]
    found: list[Path] = []
    for root in roots:
        if root.is_file():
            found.append(root)
        elif root.is_dir():
            hits = {p for pattern in _SUITE_GLOBS for p in root.rglob(pattern)}
            found.extend(sorted(p for p in hits if p.is_file() and not _hidden(p, root)))
        elif root.exists():  # a FIFO, socket or device: reading it could block or never end
            raise SuiteError(
                f"{display_path(root)}: not a regular file or folder",
                "pass suite files or folders holding *.test.yaml files",
            )
        else:
            raise SuiteError(
                f"{display_path(root)}: no such file or folder",
                "pass suite files or folders holding *.test.yaml files",
            )
    unique: dict[Path, Path] = {}
    for p in found:
        unique.setdefault(p.resolve(), p)
    if not unique:
        where = ", ".join(display_path(r) for r in roots)
        raise SuiteError(
            f"no suite files (*.test.yaml) found in {where}",
            "write a suite file or pass its path: aicli test-prompts path/to/x.test.yaml",
        )
    return list(unique.values())


def load_suites(paths: list[Path], default_dir: Path) -> list[Suite]:
    """Discover and load every suite; suite names must be unique across files."""
    suites = [load_suite_file(p) for p in discover_suite_files(paths, default_dir)]
    first: dict[str, Suite] = {}
    for s in suites:
        if s.name in first:
            raise suite_error(
                s.file,
                f"suite name {s.name!r} is already used by {display_path(first[s.name].file)}",
                hint="give each suite a unique `suite:` name",
            )
        first[s.name] = s
    return suites


def matches(case_id: str, pattern: str) -> bool:
    """`-k/--filter`: a glob when the pattern has wildcards, else a case-insensitive substring."""
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(case_id, pattern) or fnmatch.fnmatch(case_id, pattern)
    return pattern.lower() in case_id.lower()


# --- template checks (needs the template store) -----------------------------------------------


def shard_of(case_id: str, total: int) -> int:
    """SPEC's shard of a `suite/case` id, 1..total: adding a case never moves another."""
    return int(sha256_hex(case_id.encode("utf-8")), 16) % total + 1


def parse_shard(text: str) -> tuple[int, int]:
    """`--shard K/N` -> (K, N) with 1 <= K <= N."""
    k, sep, n = text.partition("/")
    if sep and k.strip().isdigit() and n.strip().isdigit():
        shard, total = int(k), int(n)
        if 1 <= shard <= total:
            return shard, total
    raise UsageError(
        f"--shard {text!r}: expected K/N with 1 <= K <= N", "e.g. --shard 2/3 runs the second of 3"
    )


def validate_against_templates(suites: list[Suite], store: TemplateStore) -> None:
    """Every `template:` exists; each case sets only declared variables and all required ones.

    A template's `.variables` maps names to JSON Schemas (required unless one has a `default`).
    """
    for suite in suites:
        if suite.template is None:
            continue
        try:
            tpl = store.get(suite.template)
        except AicliError as exc:
            raise suite_error(
                suite.file, f"template {suite.template!r}: {exc.message}", hint=exc.hint
            ) from None
        declared: dict[str, Any] = dict(getattr(tpl, "variables", None) or {})
        required = {
            n
            for n, schema in declared.items()
            if not (isinstance(schema, dict) and "default" in schema)
        }
        for case in suite.cases:
            unknown = sorted(set(case.vars) - set(declared))
            if unknown:
                raise suite_error(
                    suite.file,
                    f"variable(s) {', '.join(unknown)} not declared by template {suite.template!r}",
                    line=case.line,
                    case=case.name,
                    hint=f"declared: {', '.join(sorted(declared)) or '(none)'}",
                )
            missing = sorted(required - set(case.vars))
            if missing:
                raise suite_error(
                    suite.file,
                    f"missing required variable(s) {', '.join(missing)} "
                    f"for template {suite.template!r}",
                    line=case.line,
                    case=case.name,
                    hint="set them in the case's `vars` (or in `defaults.vars`)",
                )
