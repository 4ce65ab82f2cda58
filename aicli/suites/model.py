"""What a suite is: the Suite, Case and Assertion types, and the assertion type names.

Types only: parse.py and parse_asserts.py build them from YAML, load.py finds and checks
suite files. This module imports none of its siblings.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from aicli.errors import SuiteError

# promptfoo's names, written once; every type may carry a `not-` prefix.
TextType = Literal[
    "equals",
    "contains",
    "icontains",
    "contains-any",
    "contains-all",
    "icontains-any",
    "icontains-all",
    "starts-with",
    "regex",
]
JsonType = Literal["is-json", "json-schema", "structure"]
MetricType = Literal["latency", "cost"]
GradedType = Literal["llm-rubric"]
AssertionType = TextType | JsonType | MetricType | GradedType
TEXT_TYPES: tuple[TextType, ...] = get_args(TextType)
JSON_TYPES: tuple[JsonType, ...] = get_args(JsonType)
METRIC_TYPES: tuple[MetricType, ...] = get_args(MetricType)
GRADED_TYPES: tuple[GradedType, ...] = get_args(GradedType)
ASSERTION_TYPES: tuple[AssertionType, ...] = TEXT_TYPES + JSON_TYPES + METRIC_TYPES + GRADED_TYPES

JSON_TYPE_NAMES = ("string", "number", "integer", "boolean", "array", "object", "null")


@dataclass(slots=True)
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


@dataclass(slots=True)
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
