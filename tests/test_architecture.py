"""The house rules of ../shared/ARCHITECTURE.md that code can check: every module says what it
owns, the README's Layout names every module, imports never go in a circle, and nothing below
the front doors (cli/, serve/) imports Typer or FastAPI."""

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
