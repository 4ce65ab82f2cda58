"""One `assert:` item -> a validated Assertion: known type, needed value, weight, threshold."""

from __future__ import annotations

import csv
import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aicli.errors import SuiteError
from aicli.suites.model import (
    ASSERTION_TYPES,
    JSON_TYPE_NAMES,
    METRIC_TYPES,
    Assertion,
    suite_error,
)

_ASSERT_KEYS = {"type", "value", "threshold", "weight", "provider", "grader", "description"}
# The seed wrote expected_structure with Python type names; accept them as aliases.
_TYPE_ALIASES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "list": "array",
    "dict": "object",
    "none": "null",
}


def unknown_keys(
    path: Path,
    data: dict[Any, Any],
    allowed: set[str],
    what: str,
    line: int | None,
    case: str | None = None,
) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise suite_error(
                path,
                f"unknown key {key!r} in {what}",
                line=line,
                case=case,
                hint=f"{hint}allowed keys: {', '.join(sorted(allowed))}",
            )


def copy_assertion(a: Assertion) -> Assertion:
    return Assertion(a.type, a.value, a.threshold, a.weight, a.negate, a.base_type, dict(a.extra))


def parse_assertion(
    path: Path, raw: Any, number: int, case: str | None, line: int | None
) -> Assertion:
    """Validate one `assert:` item: known type, the value it needs, a sane weight and threshold."""
    if isinstance(raw, str):
        raw = {"type": raw}  # shorthand: `- is-json`
    if not isinstance(raw, dict):
        raise suite_error(
            path, f"assertion {number} must be a mapping with `type`", line=line, case=case
        )
    type_ = raw.get("type")
    where = f"assertion {number}" + (f" ({type_})" if isinstance(type_, str) else "")

    def bad(msg: str, hint: str | None = None) -> SuiteError:
        return suite_error(path, f"{where}: {msg}", line=line, case=case, hint=hint)

    unknown_keys(path, raw, _ASSERT_KEYS, where, line, case=case)
    if not isinstance(type_, str):
        raise bad("needs a `type`", f"valid types: {', '.join(ASSERTION_TYPES)}")
    negate = type_.startswith("not-")
    base = type_[4:] if negate else type_
    if base not in ASSERTION_TYPES:
        close = difflib.get_close_matches(base, ASSERTION_TYPES, n=1)
        hint = (
            (f"did you mean {close[0]!r}? " if close else "")
            + "valid types: "
            + ", ".join(ASSERTION_TYPES)
        )
        raise bad(f"unknown assertion type {type_!r}", hint + " (each may take a `not-` prefix)")

    weight = raw.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
        raise bad("`weight` must be a number >= 0")
    threshold = raw.get("threshold")
    extra: dict[str, Any] = {}
    if raw.get("description") is not None:
        extra["description"] = str(raw["description"])
    grader = raw.get("grader", raw.get("provider"))
    if grader is not None:
        if base != "llm-rubric":
            raise bad("`grader`/`provider` only applies to llm-rubric")
        if not isinstance(grader, str):
            raise bad("`grader` must be a tier name")
        extra["grader"] = grader
    value = _check_value(base, raw, bad)

    if base in METRIC_TYPES:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or threshold < 0:
            unit = "milliseconds" if base == "latency" else "USD"
            raise bad(f"needs `threshold`: the maximum {unit}, a number >= 0")
    elif base == "llm-rubric":
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, (int, float))
        ):
            raise bad("`threshold` must be the minimum grader score, 0 to 1")
    elif threshold is not None:
        raise bad("`threshold` has no meaning for this type (use it on the case for a score)")
    return Assertion(
        type=type_,
        value=value,
        threshold=float(threshold) if threshold is not None else None,
        weight=float(weight),
        negate=negate,
        base_type=base,
        extra=extra,
        index=number - 1,
    )


def _check_value(base: str, raw: dict[str, Any], bad: Callable[..., SuiteError]) -> Any:
    value = raw.get("value")
    has = "value" in raw and value is not None
    if base in ("contains", "icontains", "starts-with"):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or value == "":
            raise bad("needs a non-empty string `value`")
        return str(value)
    if base in ("contains-any", "contains-all", "icontains-any", "icontains-all"):
        if isinstance(value, str):  # promptfoo: a comma-separated string
            value = [v.strip() for v in next(csv.reader([value], skipinitialspace=True))]
        if not isinstance(value, list) or not value:
            raise bad("needs `value`: a non-empty list of strings")
        if any(isinstance(v, (bool, dict, list)) or v is None or v == "" for v in value):
            raise bad("every item of `value` must be a non-empty string")
        return [str(v) for v in value]
    if base == "equals":
        if not has:
            raise bad("needs a `value` (a string, or JSON to compare with the parsed answer)")
        return value
    if base == "regex":
        if not isinstance(value, str) or not value:
            raise bad("needs a regular expression `value`")
        from aicli.regexes import compiled

        try:
            compiled(value)  # the one compile; the check reuses it
        except ValueError as exc:
            raise bad(f"invalid regular expression {value!r}: {exc}") from None
        return value
    if base in ("is-json", "json-schema"):
        if base == "json-schema" and not has:
            raise bad("needs a JSON Schema `value`")
        if has:
            _check_schema(value, bad)
        return value if has else None
    if base == "structure":
        return _check_structure(value, bad)
    if base == "llm-rubric":
        if not isinstance(value, str) or not value.strip():
            raise bad("needs a rubric `value`: what a good answer looks like")
        return value
    if has:  # latency, cost
        raise bad("takes `threshold`, not `value`")
    return None


def _check_schema(schema: Any, bad: Callable[..., SuiteError]) -> None:
    from aicli.jsontext import check_schema

    problem = check_schema(schema)
    if problem:
        raise bad(f"`value` is not a valid JSON Schema: {problem}")


def _check_structure(value: Any, bad: Callable[..., SuiteError]) -> dict[str, list[str]]:
    names = ", ".join(JSON_TYPE_NAMES)
    if not isinstance(value, dict) or not value:
        raise bad(f"needs `value`: a mapping of key -> JSON type ({names})")
    out: dict[str, list[str]] = {}
    for key, types in value.items():
        items = types if isinstance(types, list) else [types]
        norm = []
        for t in items:
            t_name = _TYPE_ALIASES.get(str(t).lower(), str(t).lower()) if t is not None else "null"
            if t_name not in JSON_TYPE_NAMES:
                raise bad(f"key {key!r}: unknown JSON type {t!r}", f"use one of: {names}")
            norm.append(t_name)
        if not norm:
            raise bad(f"key {key!r}: give at least one JSON type")
        out[str(key)] = norm
    return out
