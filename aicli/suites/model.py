"""What a suite is: Suite/Case/Assertion, discovery of `*.test.yaml`, checks against templates.

Parsing lives in model_load.py (YAML, suites, cases) and model_asserts.py (assertions);
`load_suite` here is the entry point.
"""

from __future__ import annotations

import fnmatch
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aicli.errors import AicliError, SuiteError

# promptfoo's names; every type may carry a `not-` prefix.
TEXT_TYPES = (
    "equals",
    "contains",
    "icontains",
    "contains-any",
    "contains-all",
    "icontains-any",
    "icontains-all",
    "starts-with",
    "regex",
)
JSON_TYPES = ("is-json", "json-schema", "structure")
METRIC_TYPES = ("latency", "cost")
GRADED_TYPES = ("llm-rubric",)
ASSERTION_TYPES = TEXT_TYPES + JSON_TYPES + METRIC_TYPES + GRADED_TYPES

JSON_TYPE_NAMES = ("string", "number", "integer", "boolean", "array", "object", "null")
_SUITE_GLOBS = ("*.test.yaml", "*.test.yml")


@dataclass
class Assertion:
    type: str  # as written, e.g. "not-icontains"
    value: Any = None
    threshold: float | None = None
    weight: float = 1.0
    negate: bool = False
    base_type: str = ""  # without the `not-` prefix
    extra: dict[str, Any] = field(default_factory=dict)  # grader tier, description
    index: int = 0  # position in the case's final assertion list

    def __post_init__(self) -> None:
        if not self.base_type:
            self.negate = self.type.startswith("not-")
            self.base_type = self.type[4:] if self.negate else self.type

    @property
    def label(self) -> str:
        """A short human name for reports, e.g. `icontains "cupertino"`."""
        if self.extra.get("description"):
            return f"{self.type} ({self.extra['description']})"
        if self.base_type in METRIC_TYPES:
            unit = " ms" if self.base_type == "latency" else " USD"
            return f"{self.type} <= {self.threshold}{unit}"
        if self.value is None:
            return self.type
        shown = short_value(self.value, 60)
        return f"{self.type} {shown}"


@dataclass
class Case:
    suite: str
    name: str
    vars: dict[str, Any]
    asserts: list[Assertion]
    threshold: float | None = None
    file: Path = Path()
    tier: str | None = None  # the case's own tier, else the suite's
    description: str | None = None
    skip: str | None = None  # reason, when the case is marked `skip`
    line: int | None = None

    @property
    def id(self) -> str:
        return f"{self.suite}/{self.name}"


@dataclass
class Suite:
    name: str
    file: Path
    template: str | None = None  # "name" or "name@version"
    prompt: str | None = None  # inline Jinja2 prompt
    tier: str | None = None
    system: str | None = None  # only with an inline prompt; templated like it
    cases: list[Case] = field(default_factory=list)
    description: str | None = None


def short_value(value: Any, n: int) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", "\\n")
    text = text if len(text) <= n else text[: n - 1] + "…"
    return f'"{text}"' if isinstance(value, str) else text


def display_path(path: Path) -> str:
    return _display_path(path, os.getcwd())


@functools.lru_cache(maxsize=256)
def _display_path(path: Path, cwd: str) -> str:  # once per suite file, not once per result
    try:
        return str(path.resolve().relative_to(Path(cwd).resolve()))
    except ValueError:
        return str(path)


def suite_error(
    file: Path,
    msg: str,
    *,
    line: int | None = None,
    case: str | None = None,
    hint: str | None = None,
) -> SuiteError:
    where = display_path(file) + (f":{line}" if line else "")
    who = f"case {case!r}: " if case is not None else ""
    return SuiteError(f"{where}: {who}{msg}", hint)


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
    suites = [load_suite(p) for p in discover_suite_files(paths, default_dir)]
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


def load_suite(path: Path) -> Suite:
    """Read and strictly validate one suite file; every error names the file (and the case)."""
    from aicli.suites.model_load import load_suite_file

    return load_suite_file(path)


# --- template checks (needs the template store) -----------------------------------------------


def validate_against_templates(suites: list[Suite], store: Any) -> None:
    """Every `template:` exists; each case sets only declared variables and all required ones.

    `store` is an `aicli.templates.TemplateStore`; `store.get(ref)` returns a template whose
    `.variables` maps names to JSON Schemas (required unless the schema has a `default`).
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
