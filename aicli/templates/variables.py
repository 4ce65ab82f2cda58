"""Template variables: where values come from (--var, --vars-file, stdin) and JSON Schema checks."""

from __future__ import annotations

import copy
import functools
import json
import reprlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aicli import yamlsafe
from aicli.errors import TemplateError, UsageError
from aicli.templates.model import VAR_NAME_RE, canonical_json, load_yaml

if TYPE_CHECKING:
    from aicli.templates.model import Template


class VarValues(dict[str, Any]):
    """Variables plus where each came from, so `--var id=007`-style text can be kept as typed.

    `raw` holds the text of every --var value; `from_stdin` names the variable stdin filled.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.raw: dict[str, str] = {}
        self.from_stdin: str | None = None


def _json_or_text(text: str) -> Any:
    def no_constants(name: str) -> Any:
        raise ValueError(name)  # NaN/Infinity are not JSON: keep the text

    try:
        return json.loads(text, parse_constant=no_constants)
    except ValueError:
        return text


def parse_var_args(pairs: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs -> dict; VALUE is JSON when it parses as JSON, else the text itself."""
    values = VarValues()
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not VAR_NAME_RE.match(key):
            raise UsageError(
                f"--var {pair!r}: expected KEY=VALUE with KEY a variable name",
                'e.g. --var text="some words" --var bullets=5 --var \'labels=["a","b"]\'',
            )
        values[key] = _json_or_text(text)
        if yamlsafe.has_lone_surrogate(values[key]):  # '"\ud800"' is valid JSON, not text
            raise UsageError(f"--var {key}: {yamlsafe.LONE_SURROGATE}", "pass UTF-8 text")
        values.raw[key] = text
    return values


def load_vars_file(path: Path) -> dict[str, Any]:
    """A YAML or JSON file holding a mapping of variable -> value."""
    try:
        text = yamlsafe.read_text(path)
    except OSError as exc:
        raise UsageError(f"--vars-file {path}: cannot read it: {exc.strerror}") from None
    if Path(path).suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise UsageError(f"--vars-file {path}: invalid JSON: {str(exc)[:200]}") from None
        if yamlsafe.has_lone_surrogate(data):
            raise UsageError(f"--vars-file {path}: {yamlsafe.LONE_SURROGATE}", "pass UTF-8 text")
    else:
        try:
            data = load_yaml(text, f"--vars-file {path}")
        except TemplateError as exc:
            raise UsageError(exc.message) from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise UsageError(
            f"--vars-file {path}: expected a mapping of variable names to values",
            "e.g. text: some words",
        )
    return data


def collect_variables(
    var_args: list[str], vars_file: Path | None, stdin_text: str | None
) -> dict[str, Any]:
    """Merge the sources; precedence --var > --vars-file > piped stdin (as `input`)."""
    file_vars = load_vars_file(vars_file) if vars_file is not None else {}
    given = parse_var_args(var_args)
    values = VarValues()
    if stdin_text is not None and "input" not in file_vars and "input" not in given:
        values["input"] = stdin_text.rstrip("\r\n")
        values.from_stdin = "input"
    values.update(file_vars)
    values.update(given)
    values.raw = dict(getattr(given, "raw", {}))
    return values


def _short(value: Any) -> str:
    r = reprlib.Repr()
    r.maxstring, r.maxother, r.maxlist, r.maxdict, r.maxlevel = 40, 40, 4, 4, 2
    return r.repr(value)


# jsonschema's own message already states these rules' values ("21 is greater than the maximum
# of 20"): repeating them as "(maximum: 20)" would say it twice.
_SELF_STATED = frozenset(
    {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "type", "enum"}
    | {"const", "pattern"}
)


def _describe(name: str, error: Any) -> str:
    """`variable 'text': '' is too short (minLength: 1)`, with long values cut short."""
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    message = error.message
    if len(message) > 160:
        message = f"{_short(error.instance)} is not valid"
    elif error.validator in _SELF_STATED:
        return f"variable '{name}{path}': {message}"
    rule = json.dumps(error.validator_value, ensure_ascii=False)
    if len(rule) > 80:
        rule = rule[:77] + "..."
    return f"variable '{name}{path}': {message} ({error.validator}: {rule})"


def validate_variables(tpl: Template, given: dict[str, Any]) -> dict[str, Any]:
    """Apply defaults and check every value against its schema; return the render context."""
    declared = tpl.variables
    unknown = sorted(set(given) - set(declared))
    if unknown:
        stdin = getattr(given, "from_stdin", None)
        if unknown == [stdin]:
            raise TemplateError(
                f"{tpl.key} does not take piped input (it declares no variable 'input')",
                f"its variables: {', '.join(declared) or '(none)'}; don't pipe text into it",
            )
        listed = ", ".join(f"'{k}'" for k in unknown)
        raise TemplateError(
            f"{tpl.key}: unknown variable{'s' if len(unknown) > 1 else ''} {listed}",
            f"it declares: {', '.join(declared) or '(none)'}",
        )
    missing = [k for k in tpl.required if k not in given]
    if missing:
        listed = ", ".join(f"'{k}'" for k in missing)
        how = (
            "pipe text in or pass --var input=..."
            if missing == ["input"]
            else ("pass --var KEY=VALUE or --vars-file FILE")
        )
        raise TemplateError(
            f"{tpl.key}: missing required variable{'s' if len(missing) > 1 else ''} {listed}", how
        )
    raw = getattr(given, "raw", {})
    context: dict[str, Any] = {}
    for name, schema in declared.items():
        if name in given:
            value = given[name]
            # `--var id=007` or `--var zip=12345` for a string variable: keep the text as typed.
            if name in raw and schema.get("type") == "string" and not isinstance(value, str):
                value = raw[name]
            context[name] = value
        else:
            context[name] = copy.deepcopy(schema["default"])
    if declared:
        _check_schemas(tpl, context)
    return context


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    """A checked validator for one schema (cached: check_schema is the slow part); raises
    ValueError saying why a schema is not valid (a `$ref` that does not resolve, too deep...)."""
    from aicli.jsontext import check_schema, validator_for  # heavy: only when needed

    schema = json.loads(schema_json)
    problem = check_schema(schema)
    if problem:
        raise ValueError(problem)
    return validator_for(schema)


_TYPES: dict[str, Any] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: type(v) is int,
    "number": lambda v: type(v) in (int, float),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}
_NOTES = {"description", "default", "title", "examples"}


def _plainly_valid(value: Any, schema: Any) -> bool:
    """True only when `value` surely meets `schema`, written with the few keywords handled here.

    Most template variables are `{type: string, minLength: 1}`; checking those here keeps
    jsonschema's import (~30 ms) off `render` and `generate -T`. Anything else, and every
    failure, goes to jsonschema, which also vets the schema and words the error.
    """
    if not isinstance(schema, dict):
        return False
    for key, rule in schema.items():
        if key in _NOTES:
            continue
        if key == "type":
            check = _TYPES.get(rule) if isinstance(rule, str) else None
            if check is None or not check(value):
                return False
        elif key in ("minLength", "maxLength"):
            if type(rule) is not int or rule < 0 or not isinstance(value, str):
                return False
            if (len(value) < rule) if key == "minLength" else (len(value) > rule):
                return False
        elif key in ("minimum", "maximum"):
            if type(rule) not in (int, float) or type(value) not in (int, float):
                return False
            if (value < rule) if key == "minimum" else (value > rule):
                return False
        elif key == "enum":
            if not isinstance(rule, list) or not any(
                type(v) is type(value) and v == value for v in rule
            ):
                return False
        elif key == "items":
            if not isinstance(value, list) or not all(_plainly_valid(v, rule) for v in value):
                return False
        else:
            return False
    return True


def _check_schemas(tpl: Template, context: dict[str, Any]) -> None:
    if all(_plainly_valid(context[n], schema) for n, schema in tpl.variables.items()):
        return
    from jsonschema import exceptions

    from aicli.jsontext import bounded_errors

    for name, schema in tpl.variables.items():
        try:
            validator = _validator(canonical_json(schema))
        except ValueError as exc:
            raise TemplateError(
                f"{tpl.label}: variables.{name} is not a valid JSON Schema: {exc}"
            ) from None
        try:
            errors = bounded_errors(validator, context[name])
        except RecursionError:
            raise TemplateError(
                f"{tpl.key}: variable '{name}' nests too deeply to validate"
            ) from None
        if errors:
            about = schema.get("description")
            raise TemplateError(
                f"{tpl.key}: {_describe(name, exceptions.best_match(errors))}",
                f"{name}: {about}" if isinstance(about, str) else None,
            )
