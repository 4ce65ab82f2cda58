"""JSON inside model answers and JSON Schemas from users: parse, check and validate, all bounded.

An answer can be steered by whoever wrote the prompt's input, and a schema can come from a pull
request, so: nesting is capped (a 100,000-deep answer is invalid JSON, not a crash), a schema's
`$ref`s must all resolve inside it (nothing is ever fetched from the network), and `pattern`
keywords run with a time limit, like every regex from a file.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

MAX_DEPTH = 200  # nested arrays/objects in an answer or a schema
VALIDATION_S = 5.0  # all `pattern` searches of one validation together

_FENCE = re.compile(r"^\s*```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\r?\n(.*?)\r?\n?[ \t]*```\s*$", re.DOTALL)


def strip_fence(text: str) -> str:
    """Return the body of one surrounding code fence (```json ... ```), else the text stripped."""
    if not text.lstrip().startswith("```"):
        return text.strip()
    match = _FENCE.match(text)
    return match.group(2).strip() if match else text.strip()


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when lists/dicts nest deeper than `limit` (iterative: depth cannot crash it)."""
    if not isinstance(value, (dict, list)):
        return False
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def loads_answer(text: str) -> Any:
    """Parse an answer as JSON, tolerating one code fence; raises ValueError when it is not JSON
    (or nests deeper than MAX_DEPTH)."""
    try:
        value = json.loads(strip_fence(text))
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    if too_deep(value):
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    return value


def validator_for(schema: Any) -> Any:
    """A validator for a checked schema: no network `$ref`s, time-limited `pattern`s."""
    from jsonschema import validators
    from jsonschema_specifications import REGISTRY  # the meta-schemas; retrieves nothing

    _bound_jsonschema_regexes()
    # an unknown `$schema` is refused by check_schema; the default only keeps jsonschema quiet
    base = validators.validator_for(schema, default=validators.Draft202012Validator)
    cls = validators.extend(  # type: ignore[no-untyped-call]
        base,
        {
            "pattern": _pattern,
            "patternProperties": _pattern_properties,
            "additionalProperties": _additional_properties,
        },
    )
    return cls(schema, registry=REGISTRY)


def bounded_errors(validator: Any, instance: Any) -> list[Any]:
    """`validator.iter_errors(instance)` as a list, every regex search of it together bounded by
    VALIDATION_S; a search that runs out of time becomes one ValidationError. Raises
    RecursionError when the instance nests too deeply for jsonschema."""
    from jsonschema import ValidationError

    from aicli.regexes import RegexTimeout

    _deadline.value = time.monotonic() + VALIDATION_S
    try:
        return list(validator.iter_errors(instance))
    except RegexTimeout as exc:  # raised inside one of jsonschema's own keywords
        rule = {"validator": "pattern", "validator_value": exc.pattern, "instance": instance}
        return [ValidationError(str(exc), **rule)]
    finally:
        _deadline.value = None


def schema_errors(instance: Any, schema: dict[str, Any]) -> list[str]:
    """Every way `instance` breaks `schema`, as `path: message` strings (empty when valid)."""
    validator = validator_for(schema)
    try:
        found = bounded_errors(validator, instance)
    except RecursionError:
        return [f"(root): nested too deeply to validate (more than {MAX_DEPTH} levels)"]
    out = []
    for err in sorted(found, key=lambda e: [str(p) for p in e.absolute_path]):
        path = "/".join(str(p) for p in err.absolute_path) or "(root)"
        out.append(f"{path}: {err.message}")
    return out


def check_schema(schema: Any) -> str | None:
    """None when `schema` is a valid JSON Schema whose every `$ref` resolves inside it (or in
    the meta-schemas), else why not. Nothing is fetched."""
    import jsonschema
    from referencing.exceptions import Unresolvable

    if not isinstance(schema, dict):
        return "a JSON Schema must be an object"
    if too_deep(schema):
        return f"nested deeper than {MAX_DEPTH} levels"
    if "$schema" in schema and not _known_draft(schema["$schema"]):
        return (
            f"$schema {schema['$schema']!r} is not a JSON Schema draft aicli knows; leave it"
            " out for draft 2020-12"
        )
    try:
        validator = validator_for(schema)
        validator.check_schema(schema)
        resolver = validator._resolver  # referencing.Resolver, rooted at the schema
        for ref in _refs(schema):
            try:
                resolver.lookup(ref)
            except Unresolvable:
                return f"$ref {ref!r} does not resolve inside the schema (nothing is fetched)"
    except jsonschema.SchemaError as exc:
        return str(exc.message)
    except RecursionError:
        return f"nested deeper than {MAX_DEPTH} levels"
    return None


def _known_draft(uri: Any) -> bool:
    from jsonschema import validators

    if not isinstance(uri, str):
        return False
    found: Any = validators.validator_for({"$schema": uri}, None)  # type: ignore[arg-type]
    return found is not None  # None: the default handed back for an unknown draft


def _refs(schema: Any) -> Iterator[str]:
    """Every `$ref` string in a schema (`$ref`s under a nested `$id` are checked from the root,
    which is how they resolve for schemas without embedded resources)."""
    stack = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                yield ref
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


# --- `pattern` keywords with a time limit (jsonschema's own use the stdlib `re`) ---------------


_deadline = threading.local()  # per thread: assertions are checked in worker threads


def _search(pattern: str, text: str) -> Any:
    from aicli.regexes import TIMEOUT_S, search

    end = getattr(_deadline, "value", None)
    left = TIMEOUT_S if end is None else max(0.01, min(TIMEOUT_S, end - time.monotonic()))
    return search(pattern, text, timeout=left)


class _BoundedRe:
    """Stands in for `re` inside jsonschema's keyword modules: `search` gets our time limit, the
    rest is the stdlib's. Our keyword overrides cover `pattern`, `patternProperties` and
    `additionalProperties`, but `unevaluatedProperties` (and the legacy drafts' equivalent)
    reach `re.search` through jsonschema's helpers, which a keyword override cannot replace."""

    def __getattr__(self, name: str) -> Any:
        return getattr(re, name)

    @staticmethod
    def search(pattern: Any, text: Any, flags: int = 0) -> Any:
        if flags or not isinstance(pattern, str) or not isinstance(text, str):
            return re.search(pattern, text, flags)
        return _search(pattern, text)


@functools.cache  # once per process: the modules stay patched
def _bound_jsonschema_regexes() -> None:
    import jsonschema._keywords
    import jsonschema._legacy_keywords
    import jsonschema._utils

    for module in (jsonschema._keywords, jsonschema._legacy_keywords, jsonschema._utils):
        if getattr(module, "re", None) is re:
            module.re = _BoundedRe()  # type: ignore[attr-defined]


def _pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema import ValidationError

    from aicli.regexes import RegexTimeout

    if not validator.is_type(instance, "string"):
        return
    try:
        if _search(patrn, instance) is None:
            yield ValidationError(f"{instance!r} does not match {patrn!r}")
    except RegexTimeout as exc:
        yield ValidationError(str(exc))


def _pattern_properties(validator: Any, props: dict[str, Any], instance: Any, schema: Any) -> Any:
    from jsonschema import ValidationError

    from aicli.regexes import RegexTimeout

    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in props.items():
        for key, value in instance.items():
            try:
                hit = _search(pattern, key) is not None
            except RegexTimeout as exc:
                yield ValidationError(str(exc))
                return
            if hit:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator: Any, extra: Any, instance: Any, schema: Any) -> Any:
    from jsonschema import ValidationError

    from aicli.regexes import RegexTimeout

    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = []
    try:
        for key in instance:
            if key not in properties and not any(_search(p, key) for p in patterns):
                extras.append(key)
    except RegexTimeout as exc:
        yield ValidationError(str(exc))
        return
    if validator.is_type(extra, "object"):
        for key in extras:
            yield from validator.descend(instance[key], extra, path=key)
    elif extra is False and extras:
        shown = ", ".join(repr(k) for k in sorted(extras)[:10])
        yield ValidationError(f"Additional properties are not allowed ({shown} unexpected)")


def check_answer_schema(
    schema: dict[str, Any], content: str, tier: str, label: str = "--schema"
) -> None:
    """The answer must be JSON valid against the schema (else NoAnswerError, exit 3); `label`
    names where the schema came from (`--schema`, or an HTTP request's `response_format`)."""
    from aicli.errors import NoAnswerError

    breaks = "breaks" if label == "--schema" else "does not match"
    try:
        value = loads_answer(content)
    except ValueError as exc:
        raise NoAnswerError(
            f"the answer from tier '{tier}' is not JSON ({exc}), so it {breaks} {label}",
            "ask for JSON explicitly in the prompt, or use a model with structured output",
        ) from None
    errors = schema_errors(value, schema)
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise NoAnswerError(
            f"the answer from tier '{tier}' {breaks} {label}: {errors[0]}{more}",
            "the answer was not cached; refine the prompt or the schema",
        )
