"""JSON inside model answers: strip one surrounding Markdown code fence, parse, validate."""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"^\s*```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\r?\n(.*?)\r?\n?[ \t]*```\s*$", re.DOTALL)


def strip_fence(text: str) -> str:
    """Return the body of one surrounding code fence (```json ... ```), else the text stripped."""
    match = _FENCE.match(text)
    return match.group(2).strip() if match else text.strip()


def loads_answer(text: str) -> Any:
    """Parse an answer as JSON, tolerating one code fence; raises ValueError when it is not JSON."""
    return json.loads(strip_fence(text))


def schema_errors(instance: Any, schema: dict[str, Any]) -> list[str]:
    """Every way `instance` breaks `schema`, as `path: message` strings (empty when valid)."""
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    out = []
    for err in errors:
        path = "/".join(str(p) for p in err.absolute_path) or "(root)"
        out.append(f"{path}: {err.message}")
    return out


def check_schema(schema: Any) -> str | None:
    """None when `schema` is a valid JSON Schema, else why not."""
    import jsonschema

    if not isinstance(schema, dict):
        return "a JSON Schema must be an object"
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        return str(exc.message)
    return None
