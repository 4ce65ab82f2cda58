"""Write docs/config-reference.md from the settings' own definitions, so no key goes undocumented.

Every key comes from the settings dataclasses in aicli/settings.py (walked from the file's top
level), its description from the docstring written under the field, its built-in value from
aicli/defaults.yaml, its type and bounds from the annotation, and the environment variables that
override it from `$NAME` in its description. A field without a description stops the script.

Usage: python scripts/gen_config_docs.py          # rewrite docs/config-reference.md
       python scripts/gen_config_docs.py --check  # exit 1 if it is out of date (CI)
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _generated import write_or_check  # noqa: E402

from aicli import settings  # noqa: E402
from aicli.config import DEFAULTS_FILE  # noqa: E402
from aicli.config_schema import Limit, hints, is_settings  # noqa: E402

DOC = ROOT / "docs" / "config-reference.md"
SOURCE = ROOT / "aicli" / "settings.py"
# "`$NAME` overrides" in a description: that variable wins over the key
OVERRIDE = re.compile(r"`\$([A-Z][A-Z0-9_]+)` overrides")

# Environment variables that are not one settings key. Each is named in the code; the docs test
# fails when the code reads an AICLI_* or OPENAI_* variable this page does not name.
ENVIRONMENT = {
    "AICLI_CONFIG": "the config file to use (after `--config`, before `./aicli.yaml`)",
    "XDG_CONFIG_HOME": "where the user config file is looked for: `$XDG_CONFIG_HOME/aicli/"
    "config.yaml` (default `~/.config`)",
    "XDG_CACHE_HOME": "where the disk cache lives unless `cache.dir` or `$AICLI_CACHE_DIR` say"
    " otherwise: `$XDG_CACHE_HOME/aicli` (default `~/.cache`)",
    "OPENAI_API_KEY": "the key of the built-in `openai` provider (its `api_key_env`); any provider"
    " reads its key from the variable its `api_key_env` names",
    "AICLI_LOG_FORMAT": "`json`: every stderr line is one JSON object (as `--log-format json`)",
    "AICLI_PROGRESS_SECONDS": "seconds between `test-prompts` heartbeat lines in a CI log"
    " (default 10)",
    "AICLI_BATCH_POLL_SECONDS": "`test-prompts --batch`: the longest wait between two polls of a"
    " batch (default 60; polling backs off from 1 s)",
    "NO_COLOR": "no colours (wins over `FORCE_COLOR` and `CLICOLOR_FORCE`, which colour a CI log)",
}
# Read by the code but set by aicli itself, never by a user.
INTERNAL = {
    "AICLI_SERVE_CONFIG": "how `aicli serve` hands its workers the config file it loaded",
    "AICLI_SERVE_WORKERS": "how many workers share the cache (one: no cache lock)",
}


def field_docs() -> dict[str, dict[str, str]]:
    """Class name -> field name -> the docstring written under the field in aicli/settings.py."""
    tree = ast.parse(SOURCE.read_text(encoding="utf-8"))
    found: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        docs = found.setdefault(node.name, {})
        for stmt, after in zip(node.body, [*node.body[1:], None], strict=True):
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            if (
                isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[stmt.target.id] = " ".join(after.value.value.split())
    return found


def description(cls: type, name: str, docs: dict[str, dict[str, str]]) -> str:
    """The field's description, from the class or the nearest base that documents it."""
    for klass in cls.__mro__:
        text = docs.get(klass.__name__, {}).get(name)
        if text:
            return text
    return ""


def undocumented() -> list[str]:
    """Every settings field (class.field) with no description: each must have one."""
    docs = field_docs()
    missing = []
    for cls in settings_classes():
        for f in dataclasses.fields(cls):
            if not description(cls, f.name, docs):
                missing.append(f"{cls.__name__}.{f.name}")
    return missing


def settings_classes() -> list[type]:
    """Every settings dataclass reachable from the top of the file, in reading order."""
    seen: list[type] = []

    def visit(kind: Any) -> None:
        for inner in _inner_types(kind):
            if is_settings(inner) and inner not in seen:
                seen.append(inner)
                for annotation in hints(inner).values():
                    visit(annotation)

    visit(settings.ConfigFile)
    return seen


def _inner_types(kind: Any) -> list[Any]:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Annotated:
        return _inner_types(args[0])
    if origin in (typing.Union, types.UnionType, list, dict):
        return [t for a in args for t in _inner_types(a)]
    return [kind]


def type_text(kind: Any) -> str:
    """An annotation as a reader of YAML sees it: `number (0 to 2) or null`."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is typing.Annotated:
        limits = [m for m in args[1:] if isinstance(m, Limit)]
        return type_text(args[0]) + "".join(_limit_text(m) for m in limits)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_text(a) for a in args)
    if origin is typing.Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {type_text(args[0])}"
    if origin is dict:
        return f"mapping of name to {type_text(args[1])}"
    names = {str: "text", int: "integer", float: "number", bool: "true/false", type(None): "null"}
    if kind in names:
        return names[kind]
    if is_settings(kind):
        return "mapping"
    raise SystemExit(f"gen_config_docs: no wording for the type {kind!r}")


def _limit_text(limit: Limit) -> str:
    parts = []
    if limit.gt is not None:
        parts.append(f"> {_number(limit.gt)}")
    if limit.ge is not None:
        parts.append(f"≥ {_number(limit.ge)}")
    if limit.le is not None:
        parts.append(f"≤ {_number(limit.le)}")
    if limit.min_len:
        parts.append("not empty")
    if limit.pattern:
        parts.append(f"matching `{limit.pattern}`")
    return f" ({', '.join(parts)})" if parts else ""


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"


def value_text(value: Any) -> str:
    if value is dataclasses.MISSING:
        return "required"
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def builtin() -> dict[str, Any]:
    from aicli import yamlsafe

    data: dict[str, Any] = yamlsafe.load(yamlsafe.read_text(DEFAULTS_FILE))
    return data


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        made = f.default_factory()
        return dataclasses.asdict(made) if dataclasses.is_dataclass(made) else made
    return dataclasses.MISSING


def rows(cls: type, prefix: str, defaults: Any, docs: dict[str, dict[str, str]]) -> list[str]:
    """One table row per key of `cls` (nested settings inline, `price.input_per_1m`)."""
    out = []
    own = [f for f in dataclasses.fields(cls) if f.name not in hints(settings.TierSettings)]
    fields = own + [f for f in dataclasses.fields(cls) if f not in own]  # a tier's own keys first
    for f in fields if cls is settings.TierConfig else dataclasses.fields(cls):
        kind = hints(cls)[f.name]
        key = f"{prefix}{f.name}"
        if is_settings(kind):  # a mapping inside the section: its row, then one per key
            out.append(f"| `{key}` | mapping | | | {description(cls, f.name, docs)} |")
            out += rows(kind, f"{key}.", None, docs)
            continue
        if isinstance(defaults, dict) and f.name in defaults:
            default = value_text(defaults[f.name])
        elif cls is settings.TierConfig and f.name in hints(settings.TierSettings):
            default = f"`defaults.{f.name}`"
        else:
            default = value_text(_default(f))
        text = description(cls, f.name, docs)
        env = ", ".join(f"`${n}`" for n in OVERRIDE.findall(text))
        if f.name.endswith("_env") and isinstance(f.default, str):  # names the variable to read
            env = f"reads `${f.default}`"
        cells = [f"`{key}`", type_text(kind), default, env, text]
        out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return out


def _cell(text: str) -> str:
    """A table cell: a `|` outside code would end it (inside code MkDocs keeps it as is)."""
    parts = text.split("`")
    return "`".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))


SECTIONS: list[tuple[str, str, str]] = [
    # (heading, how the key path starts, what the section is)
    ("providers", "providers.<name>.", "One OpenAI-compatible endpoint per name."),
    ("defaults", "defaults.", "What every tier inherits unless it sets its own."),
    (
        "tiers",
        "tiers.<name>.",
        "A model on a provider, its fallbacks and price; every key of"
        " `defaults` may be set here too, for this tier only.",
    ),
    ("cache", "cache.", "Where answers are cached (see [The cache](cache.md))."),
    (
        "redact",
        "redact.",
        "What is replaced before a prompt leaves (see"
        " [Security](security.md#redaction-of-prompts-redactenabled-on-by-default)).",
    ),
    ("budget", "budget.", "The most one invocation may spend."),
    (
        "cooldown",
        "cooldown.",
        "When a tier whose provider keeps failing is skipped, and how it is probed to come back"
        " (see [Reliability](reliability.md)).",
    ),
    ("serve", "serve.", "`aicli serve` (see [The service](service.md))."),
]


def build() -> str:
    docs = field_docs()
    missing = undocumented()
    if missing:
        raise SystemExit(
            "gen_config_docs: these settings have no description (write a docstring under the"
            f" field in aicli/settings.py): {', '.join(missing)}"
        )
    data = builtin()
    head = "| key | type | built-in value | env override | what it does |\n|---|---|---|---|---|\n"
    parts = [
        "# Configuration reference\n\n",
        "Every key aicli reads, generated from the settings' own definitions in `aicli/settings.py`"
        " (types, bounds, descriptions) and the built-in values in `aicli/defaults.yaml` by"
        " `python scripts/gen_config_docs.py`; a test fails when this page is out of date or a"
        " key has no description. Where the file is found and how tiers inherit:"
        " [Configuration](configuration.md).\n\n",
        "## Top level\n\n",
        head,
    ]
    file_fields = {f.name: f for f in dataclasses.fields(settings.ConfigFile)}
    scalars = [n for n, f in file_fields.items() if not _nested(hints(settings.ConfigFile)[n])]
    top_rows = rows(settings.ConfigFile, "", data, docs)
    parts.append("\n".join(r for r in top_rows if r.split("`")[1] in scalars) + "\n")
    parts.append("\nSections:\n\n")
    for name in file_fields:
        if name not in scalars:
            parts.append(f"- `{name}`: {description(settings.ConfigFile, name, docs)}\n")
    unlisted = [n for n in file_fields if n not in scalars and n not in {h for h, _, _ in SECTIONS}]
    if unlisted:  # a new section must get its own table here, or its keys go undocumented
        raise SystemExit(f"gen_config_docs: add these sections to SECTIONS: {', '.join(unlisted)}")
    for heading, prefix, about in SECTIONS:
        kind = hints(settings.ConfigFile)[heading]
        cls = next(t for t in _inner_types(kind) if is_settings(t))
        section_defaults = data.get(heading) if heading not in ("providers", "tiers") else None
        parts.append(f"\n## `{heading}`\n\n{about}\n\n{head}")
        parts.append("\n".join(rows(cls, prefix, section_defaults, docs)) + "\n")
        if heading in ("providers", "tiers"):
            parts.append(f"\nBuilt in:\n\n```yaml\n{_builtin_block(heading, data)}```\n")
    parts.append(
        "\n## Environment variables\n\n"
        "Besides the overrides above (each named in its key's row):\n\n"
        "| variable | what it does |\n|---|---|\n"
    )
    parts += [f"| `{n}` | {t} |\n" for n, t in ENVIRONMENT.items()]
    parts.append(
        "\nSet by aicli itself, never by you: "
        + ", ".join(f"`{n}` ({t})" for n, t in INTERNAL.items())
        + ".\n"
    )
    return "".join(parts)


def _nested(kind: Any) -> bool:
    return any(is_settings(t) for t in _inner_types(kind)) or typing.get_origin(kind) is dict


def _builtin_block(heading: str, data: dict[str, Any]) -> str:
    lines = [f"{heading}:"]
    for name, value in data[heading].items():
        lines.append(f"  {name}: {json.dumps(value, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


def main() -> int:
    check = "--check" in sys.argv[1:]
    return write_or_check(DOC, build(), check=check, remedy="python scripts/gen_config_docs.py")


if __name__ == "__main__":
    sys.exit(main())
