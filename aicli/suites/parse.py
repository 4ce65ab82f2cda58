"""Suite YAML -> Suite and Case objects: line numbers, unknown keys, defaults, names, vars."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from aicli import yamlsafe
from aicli.suites.model import Assertion, Case, Suite, suite_error
from aicli.suites.parse_asserts import copy_assertion, parse_assertion, unknown_keys

_SUITE_KEYS = {"suite", "description", "template", "prompt", "system", "tier", "defaults", "cases"}
_DEFAULTS_KEYS = {"vars", "assert", "threshold"}
_CASE_KEYS = {"name", "description", "vars", "assert", "threshold", "tier", "skip"}


# --- YAML with line numbers and duplicate-key detection -------------------------------------


class _Loader(yamlsafe.BoundedLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.lines: dict[int, int] = {}  # id(dict) -> 1-based line

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                    )
                seen.add(key_node.value)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping

    def _construct_map(self, node: yaml.MappingNode) -> Iterable[dict[Any, Any]]:
        data: dict[Any, Any] = {}
        self.lines[id(data)] = node.start_mark.line + 1
        yield data
        data.update(self.construct_mapping(node))


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader._construct_map)


def _read_yaml(path: Path) -> tuple[Any, dict[int, int]]:
    try:
        text = yamlsafe.read_text(path)
    except OSError as exc:
        raise suite_error(path, f"cannot read the suite file: {exc.strerror}") from None
    loader = _Loader(text)
    try:
        return yamlsafe.load_with(loader), loader.lines
    except yamlsafe.YamlProblem as exc:
        raise suite_error(path, exc.problem, line=exc.line) from None


# --- loading ----------------------------------------------------------------------------------


def load_suite_file(path: Path) -> Suite:
    """Read and strictly validate one suite file; every error names the file (and the case)."""
    data, lines = _read_yaml(path)
    if not isinstance(data, dict):
        raise suite_error(
            path, "a suite file must be a mapping with `suite`, `template` and `cases`"
        )
    unknown_keys(path, data, _SUITE_KEYS, "suite", lines.get(id(data)))

    name = data.get("suite", _stem(path))
    if not isinstance(name, (str, int)) or not str(name).strip() or "/" in str(name):
        raise suite_error(path, "`suite` must be a non-empty name without '/'", line=1)
    name = str(name).strip()

    template, prompt = data.get("template"), data.get("prompt")
    if (template is None) == (prompt is None):
        raise suite_error(
            path,
            "set exactly one of `template` (name or name@version) or `prompt` (inline Jinja2)",
        )
    for key in ("template", "prompt", "system", "tier", "description"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise suite_error(path, f"`{key}` must be a string, got {type(data[key]).__name__}")
    if template is not None and not template.strip():
        raise suite_error(path, "`template` must name a template, e.g. extraction@1.2.0")
    if data.get("system") is not None and template is not None:
        raise suite_error(
            path,
            "`system` is only allowed with an inline `prompt`",
            hint="a template sets its own system prompt",
        )

    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise suite_error(
            path, "`defaults` must be a mapping with `vars`, `assert` and `threshold`"
        )
    unknown_keys(path, defaults, _DEFAULTS_KEYS, "defaults", lines.get(id(defaults)))
    default_vars = _vars(path, defaults.get("vars"), None, lines.get(id(defaults)))
    default_threshold = _threshold(path, defaults.get("threshold"), None, "defaults.threshold")
    default_asserts = _assert_list(path, defaults.get("assert"), None, lines, "defaults.assert")

    raw_cases = data.get("cases")
    if not isinstance(raw_cases, list) or not raw_cases:
        raise suite_error(path, "`cases` must be a non-empty list of cases")
    suite = Suite(
        name=name,
        file=path,
        template=template.strip() if template else None,
        prompt=prompt,
        tier=data.get("tier"),
        system=data.get("system"),
        description=data.get("description"),
    )
    used = inline_variables(suite) if prompt is not None else set()
    seen: dict[str, int | None] = {}
    for i, raw in enumerate(raw_cases, start=1):
        case = _load_case(path, suite, raw, i, lines, default_vars, default_threshold)
        case.asserts = [copy_assertion(a) for a in default_asserts] + case.asserts
        for idx, a in enumerate(case.asserts):
            a.index = idx
        if case.name in seen:
            raise suite_error(
                path,
                f"duplicate case name (first defined at line {seen[case.name]})",
                line=case.line,
                case=case.name,
            )
        seen[case.name] = case.line
        if suite.prompt is not None:
            _check_inline_vars(suite, case, used)
        suite.cases.append(case)
    return suite


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".test.yaml", ".test.yml", ".yaml", ".yml"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _load_case(
    path: Path,
    suite: Suite,
    raw: Any,
    number: int,
    lines: dict[int, int],
    default_vars: dict[str, Any],
    default_threshold: float | None,
) -> Case:
    if not isinstance(raw, dict):
        raise suite_error(
            path, f"case #{number} must be a mapping with `name`, `vars` and `assert`"
        )
    line = lines.get(id(raw))
    name = raw.get("name")
    if not isinstance(name, (str, int)) or not str(name).strip():
        raise suite_error(path, f"case #{number} needs a `name`", line=line)
    name = str(name).strip()
    if "/" in name:
        raise suite_error(path, "a case name must not contain '/'", line=line, case=name)
    unknown_keys(path, raw, _CASE_KEYS, "the case", line, case=name)
    for key in ("tier", "description"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise suite_error(path, f"`{key}` must be a string", line=line, case=name)
    skip = raw.get("skip")
    if skip is not None and not isinstance(skip, (bool, str)):
        raise suite_error(path, "`skip` must be true/false or a reason", line=line, case=name)
    case_vars = {**default_vars, **_vars(path, raw.get("vars"), name, line)}
    threshold = _threshold(path, raw.get("threshold"), name, "threshold", line)
    return Case(
        suite=suite.name,
        name=name,
        vars=case_vars,
        asserts=_assert_list(path, raw.get("assert"), name, lines, "assert", line),
        threshold=threshold if threshold is not None else default_threshold,
        file=path,
        tier=raw.get("tier"),
        description=raw.get("description"),
        skip=(skip if isinstance(skip, str) else "skipped in the suite file") if skip else None,
        line=line,
    )


def _vars(path: Path, raw: Any, case: str | None, line: int | None) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
        raise suite_error(
            path, "`vars` must be a mapping of variable names to values", line=line, case=case
        )
    return dict(raw)


def _threshold(
    path: Path, raw: Any, case: str | None, what: str, line: int | None = None
) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 <= raw <= 1:
        raise suite_error(
            path,
            f"`{what}` must be a number from 0 to 1 (the weighted share of assertions that pass)",
            line=line,
            case=case,
        )
    return float(raw)


def _assert_list(
    path: Path,
    raw: Any,
    case: str | None,
    lines: dict[int, int],
    what: str,
    line: int | None = None,
) -> list[Assertion]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise suite_error(path, f"`{what}` must be a list of assertions", line=line, case=case)
    return [
        parse_assertion(path, item, i, case, lines.get(id(item), line))
        for i, item in enumerate(raw, start=1)
    ]


# --- variable checks for inline prompts -------------------------------------------------------


def inline_variables(suite: Suite) -> set[str]:
    """Names the inline prompt (and system) read, parsed with the renderer's sandbox.

    Includes are not followed here (the runner renders them against its base folder), so a
    variable used only inside an included file surfaces as a render_error at run time.
    """
    from jinja2 import TemplateSyntaxError, meta

    from aicli.templates.sandbox import SandboxEnv

    env = SandboxEnv()
    names: set[str] = set()
    for key, source in (("prompt", suite.prompt), ("system", suite.system)):
        if not source:
            continue
        try:
            names |= meta.find_undeclared_variables(env.parse(source))
        except TemplateSyntaxError as exc:
            raise suite_error(
                suite.file, f"`{key}` is not valid Jinja2 (its line {exc.lineno}): {exc.message}"
            ) from None
    return names - set(env.globals)


def _check_inline_vars(suite: Suite, case: Case, used: set[str]) -> None:
    missing = sorted(used - set(case.vars))
    if missing:
        raise suite_error(
            suite.file,
            f"the prompt uses variable(s) {', '.join(missing)} that the case does not set",
            line=case.line,
            case=case.name,
            hint="add them to the case's `vars` (or to `defaults.vars`)",
        )
