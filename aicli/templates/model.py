"""What a template file is: strict schema, semver ordering, and the content checksum."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aicli import yamlsafe
from aicli.digest import sha256_hex
from aicli.errors import TemplateError
from aicli.types import TemplateRef

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# semver.org X.Y.Z with an optional pre-release; build metadata is refused because it does
# not take part in ordering, so `1.0.0+a` and `1.0.0+b` could not be told apart.
_NUM = r"0|[1-9]\d*"
_PRE_ID = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
VERSION_RE = re.compile(rf"^({_NUM})\.({_NUM})\.({_NUM})(?:-({_PRE_ID}(?:\.{_PRE_ID})*))?$")
VAR_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Names Jinja gives a meaning of its own; a variable with one of them could never be reached.
RESERVED_VARS = frozenset(
    {"loop", "self", "super", "caller", "varargs", "kwargs", "range", "dict", "namespace"}
)
KEYS = ("name", "version", "description", "tier", "system", "template", "variables")
MAX_FILE_BYTES = 1_000_000
MAX_VARIABLE_NODES = 100_000  # bounds YAML alias bombs before they reach json.dumps


def display(path: Path) -> str:
    """A path as the user would type it: relative to the current folder when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return rel if not rel.startswith("..") else str(path)


def load_yaml(text: str, where: str) -> Any:
    """Parse YAML; an error names the file and line, never echoing the file's content."""
    try:
        return yamlsafe.load(text)
    except yamlsafe.YamlProblem as exc:
        raise TemplateError(f"{where}{exc.where()}: {exc.problem}") from None


def semver_key(version: str) -> tuple[Any, ...]:
    """Sort key with semver precedence: 1.10.0 > 1.9.0, 1.0.0-rc.1 < 1.0.0."""
    m = VERSION_RE.match(version)
    if m is None:
        raise ValueError(f"not a semver version: {version!r}")
    major, minor, patch, pre = m.groups()
    core = (int(major), int(minor), int(patch))
    if pre is None:
        return (*core, 1, ())
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (*core, 0, ids)


def is_prerelease(version: str) -> bool:
    return "-" in version


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def checksum(
    template: str, system: str | None, variables: Mapping[str, Any], includes: Mapping[str, str]
) -> str:
    """First 12 hex of SHA-256 over the content that decides what gets rendered.

    Key order and YAML formatting do not matter; defaults live inside `variables`. Files pulled
    in with {% include %}/{% import %} are part of the content, so editing one is a change too.
    """
    content: dict[str, Any] = {"template": template, "system": system, "variables": variables}
    if includes:
        content["includes"] = dict(includes)
    return sha256_hex(canonical_json(content).encode("utf-8"))[:12]


@dataclass(frozen=True)
class Template:
    """One version of one prompt template, as loaded from its YAML file."""

    name: str
    version: str
    description: str
    tier: str | None
    system: str | None
    template: str
    variables: dict[str, dict[str, Any]]
    path: Path
    checksum: str
    # Sources of the files it includes (path relative to prompts_dir -> text), read at load time
    # so that what is rendered is exactly what the checksum covers.
    includes: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def ref(self) -> TemplateRef:
        return TemplateRef(self.name, self.version, self.checksum)

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def label(self) -> str:
        return f"{self.key} ({display(self.path)})"

    @property
    def required(self) -> list[str]:
        return [k for k, schema in self.variables.items() if "default" not in schema]


def _count_nodes(value: Any, budget: int) -> int:
    """Count nodes of a YAML value as a tree (aliases count again); stop once over budget."""
    stack = [value]
    seen = 0
    while stack and seen <= budget:
        item = stack.pop()
        seen += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return seen


def parse_template(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Validate a template file's mapping strictly; return the cleaned fields."""
    where = display(path)
    hint = "if this file is a test suite, name it *.test.yaml"
    for key in data:
        if key not in KEYS:
            raise TemplateError(
                f"{where}: unknown key '{key}' (allowed: {', '.join(KEYS)})",
                hint if key in ("suite", "cases") else None,
            )

    def text(key: str, *, required: bool = False) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                raise TemplateError(f"{where}: '{key}' is required")
            return None
        if not isinstance(value, str):
            raise TemplateError(
                f"{where}: '{key}' must be text, got {type(value).__name__}",
                "quote it in YAML" if key in ("version", "name") else None,
            )
        return value

    name = text("name", required=True) or ""
    if not NAME_RE.match(name):
        raise TemplateError(
            f"{where}: name '{name}' is not a slug",
            "use lowercase letters, digits, '-' and '_' (at most 64 characters)",
        )
    version = text("version", required=True) or ""
    if not VERSION_RE.match(version):
        raise TemplateError(
            f"{where}: version '{version}' is not semver X.Y.Z",
            "e.g. 1.2.0 or 2.0.0-rc.1 (build metadata such as +abc is not allowed)",
        )
    template = text("template", required=True) or ""
    if not template.strip():
        raise TemplateError(f"{where}: 'template' is empty")
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        raise TemplateError(f"{where}: 'variables' must be a mapping of name -> JSON Schema")
    for var, schema in variables.items():
        if not isinstance(var, str) or not VAR_NAME_RE.match(var):
            raise TemplateError(f"{where}: variable name {var!r} is not an identifier")
        if var in RESERVED_VARS:
            raise TemplateError(f"{where}: variable name '{var}' is reserved by Jinja")
        if schema is None:
            variables[var] = schema = {}
        if not isinstance(schema, dict):
            raise TemplateError(
                f"{where}: variables.{var} must be a JSON Schema mapping, e.g. {{type: string}}"
            )
    if _count_nodes(variables, MAX_VARIABLE_NODES) > MAX_VARIABLE_NODES:
        raise TemplateError(f"{where}: 'variables' is too large")
    try:
        canonical_json(variables)
    except (TypeError, ValueError):
        raise TemplateError(
            f"{where}: 'variables' must hold only JSON values (text, numbers, lists, mappings)"
        ) from None
    return {
        "name": name,
        "version": version,
        "description": (text("description") or "").strip(),
        "tier": text("tier"),
        "system": text("system"),
        "template": template,
        "variables": variables,
    }


def read_yaml_file(path: Path, root: Path) -> Any:
    """Read and parse one YAML file under prompts_dir; errors name the file."""
    where = display(path)
    try:
        real = path.resolve(strict=True)
        if not real.is_relative_to(root.resolve()):
            raise TemplateError(f"{where}: points outside the prompts folder {display(root)}")
        raw = yamlsafe.read_text(real, MAX_FILE_BYTES)
    except OSError as exc:
        raise TemplateError(f"{where}: cannot read it: {exc.strerror}") from None
    return load_yaml(raw, where)


def is_template_data(data: Any) -> bool:
    """A YAML mapping with a `template:` key is a template file; other YAML is left alone."""
    return isinstance(data, dict) and "template" in data


def claimed_name(data: Any) -> str | None:
    """The template name a parsed file declares, if it is a usable slug (errors then belong
    to that name); None when the file's name cannot be known."""
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and NAME_RE.match(name) else None


def read_template_file(path: Path, root: Path) -> dict[str, Any] | None:
    """Read one YAML file under prompts_dir: its fields if it is a template, else None."""
    data = read_yaml_file(path, root)
    if not is_template_data(data):
        return None
    return parse_template(data, path)
