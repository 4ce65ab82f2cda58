"""The house rules of ../shared/ARCHITECTURE.md that code can check: every module says what it
owns, the README's Layout names every module, imports never go in a circle and only point down
the floors, and nothing below the front doors (cli/, serve/) imports Typer or FastAPI."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "aicli"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(path: Path, *, typing_too: bool) -> set[str]:
    """The aicli modules (and third-party roots) a module imports, at its top and inside its
    functions (lazy imports still point somewhere); `typing_too`: also those under
    TYPE_CHECKING, which never run."""
    found: set[str] = set()
    package = _name(path) if path.name == "__init__.py" else _name(path).rpartition(".")[0]

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If) and _is_type_checking(node):
                if typing_too:
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(node.body)
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(node, field, []):
                        visit(child.body if isinstance(child, ast.ExceptHandler) else [child])

    visit(_tree(path).body)
    return found


KNOWN = {_name(p) for p in MODULES}


def _internal(names: set[str]) -> set[str]:
    return {n for n in names if n in KNOWN}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_says_in_its_first_docstring_line_what_it_owns(path: Path) -> None:
    doc = ast.get_docstring(_tree(path))
    assert doc and doc.splitlines()[0].strip(), f"{path} has no module docstring"


def test_the_readme_layout_names_every_module() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme.split("### Layout", 1)[1].split("```", 2)[1]
    words = set(re.findall(r"[\w.]+", layout))
    missing = [
        str(p.relative_to(PACKAGE))
        for p in MODULES
        if p.name != "__init__.py" and p.name not in words and p.stem not in words
    ]
    assert not missing, f"README Layout does not mention: {missing}"


def test_imports_never_go_in_a_circle() -> None:
    """Lazy imports count (they still point somewhere); type-only imports do not."""
    graph = {_name(p): _internal(_imports(p, typing_too=False)) for p in MODULES}
    # a package's __init__ importing its own submodules is how packages re-export: not a circle
    for name, deps in graph.items():
        deps.discard(name)
        if any(p.name == "__init__.py" and _name(p) == name for p in MODULES):
            graph[name] = {d for d in deps if not d.startswith(name + ".")}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                walk(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node, [node])
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize(
    "path",
    [p for p in MODULES if not {"cli", "serve"} & set(p.relative_to(PACKAGE).parts[:-1])
     and p.name != "__main__.py"],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)  # fmt: skip
def test_nothing_below_the_front_doors_imports_typer_or_fastapi(path: Path) -> None:
    roots = {n.split(".")[0] for n in _imports(path, typing_too=True)}
    assert not roots & {"typer", "fastapi", "starlette", "uvicorn"}, path


# ---- floors: imports only point down --------------------------------------------------------
# Top first. A module's floor is that of the longest name below that it is, or is inside of
# ("aicli" alone is the package root: its version). A module may import its own floor or a
# lower one, never a higher one; lazy and type-only imports count too.
LAYERS: list[tuple[str, set[str]]] = [
    ("front door 1: the CLI (starts the service, lazily)", {"aicli.cli", "aicli.__main__"}),
    ("front door 2: the HTTP service", {"aicli.serve"}),
    # health's checks load the suites and templates the way a run would
    ("running suites; the checks behind doctor and /health", {"aicli.suites", "aicli.health"}),
    ("report writers and readers; the batch transport under the suites",
     {"aicli.reports", "aicli.batch"}),
    ("the engine: one request, one way", {"aicli.engine"}),
    ("the engine's steps and decisions", {"aicli.planning", "aicli.calling", "aicli.tier_walk"}),
    ("the parts below the engine",
     {"aicli.cache", "aicli.providers", "aicli.resilience", "aicli.ledger", "aicli.cost",
      "aicli.quota", "aicli.recording", "aicli.replay", "aicli.request_builder"}),
    # reports/results.py (with the diffs and tallies it is built from) holds the types that
    # suites/ and reports/ share: one floor down, as ARCHITECTURE.md says
    ("settings, templates, redaction; the result types",
     {"aicli.config", "aicli.config_check", "aicli.settings", "aicli.redact", "aicli.templates",
      "aicli.reports.results", "aicli.reports.changes", "aicli.reports.tally"}),
    ("helpers with no say in a request; a suite's types",
     {"aicli.digest", "aicli.regexes", "aicli.jsontext", "aicli.yamlsafe", "aicli.stats",
      "aicli.offload", "aicli.scrub", "aicli.safetext", "aicli.private_files", "aicli.logs",
      "aicli.config_schema",
      "aicli.suites.model"}),
    ("the bottom: types and errors", {"aicli", "aicli.types", "aicli.errors"}),
]  # fmt: skip

# (importer, imported) -> why this import may point up. Empty: no import does today.
UPWARD_EXCEPTIONS: dict[tuple[str, str], str] = {}


def _floor(module: str) -> int:
    """The module's floor, counted from the bottom (0)."""
    best: tuple[int, int] | None = None  # (length of the matching name, floor)
    for index, (_, names) in enumerate(LAYERS):
        for name in names:
            inside = module.startswith(name + ".") and name != "aicli"
            if (module == name or inside) and (best is None or len(name) > best[0]):
                best = (len(name), len(LAYERS) - 1 - index)
    assert best is not None, f"{module} has no floor: add it to LAYERS in {__file__}"
    return best[1]


def test_every_module_has_a_floor() -> None:
    for name in sorted(KNOWN):
        _floor(name)


def test_imports_point_only_down_the_floors() -> None:
    found: set[tuple[str, str]] = set()
    for path in MODULES:
        name = _name(path)
        for dep in _internal(_imports(path, typing_too=True)):
            if _floor(dep) > _floor(name):
                found.add((name, dep))
    upward = [
        f"{a} ({LAYERS[-1 - _floor(a)][0]}) imports {b} ({LAYERS[-1 - _floor(b)][0]})"
        for a, b in sorted(found - set(UPWARD_EXCEPTIONS))
    ]
    assert not upward, "imports pointing up a floor:\n" + "\n".join(upward)
    stale = sorted(set(UPWARD_EXCEPTIONS) - found)
    assert not stale, f"UPWARD_EXCEPTIONS no longer needed: {stale}"


def test_floors_name_no_module_that_is_gone() -> None:
    names = {n for _, group in LAYERS for n in group}
    gone = sorted(n for n in names if not any(k == n or k.startswith(n + ".") for k in KNOWN))
    assert not gone, f"LAYERS names modules that no longer exist: {gone}"


# ---- the tests' own house --------------------------------------------------------------------


def test_tests_import_helpers_from_helpers_not_conftest() -> None:
    """conftest.py holds fixtures (pytest finds them); what tests import lives in helpers.py."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if any("conftest" in name.split(".") for name in _imports(path, typing_too=True))
    ]
    assert not offenders, f"import from tests.helpers, not conftest: {offenders}"
