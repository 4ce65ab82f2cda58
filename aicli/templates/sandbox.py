"""The Jinja2 sandbox: untrusted templates render with bounded time, memory, output and files.

Templates can arrive in a pull request, so rendering assumes they are hostile:
- `ImmutableSandboxedEnvironment` blocks `_private`/internal attributes and unsafe calls;
- `StrictUndefined` turns every unknown name into an error, never blank text;
- `{% include %}`/`{% import %}`/`{% extends %}` take only literal paths inside the prompts
  folder; the files are read (and vetted) once at load time, so rendering touches no file;
- a per-thread trace on template code stops rendering after RENDER_SECONDS, and the
  operations that can blow up memory (`*`, `+`, `~`, `%`, padding, replace, join) are checked
  against a size limit before they run.
"""

from __future__ import annotations

import functools
import json
import re
import sys
import time
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from jinja2 import DictLoader, StrictUndefined, Undefined, meta, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from aicli import yamlsafe
from aicli.errors import TemplateError
from aicli.templates import guards
from aicli.templates.guards import TOTAL_FACTOR, Budget, Limits, Violation

RENDER_SECONDS = 2.0
MAX_INCLUDE_BYTES = 1_000_000


class _CodeGen(CodeGenerator):
    """Route `~` through the environment so concatenation is size-checked too."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def _tojson(value: Any, indent: int | None = None) -> str:
    """Plain JSON (Jinja's default escapes <, > and & for HTML, which prompts do not want)."""
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _printable(value: Any) -> bool:
    stack, seen = [value], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > 100_000:
            return False
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif not isinstance(item, (str, int, float, type(None))):
            return False
    return True


def _finalize(value: Any) -> Any:
    if isinstance(value, Undefined) or _printable(value):
        return value  # an Undefined raises when Jinja turns it into text
    raise Violation("only text, numbers, booleans, lists and mappings can be printed")


class SandboxEnv(ImmutableSandboxedEnvironment):
    """The one Jinja environment aicli renders with (see the module docstring)."""

    code_generator_class = _CodeGen
    intercepted_binops = frozenset({"*", "+", "-", "**", "%", "/", "//"})

    def __init__(self, includes: Mapping[str, str] | None = None) -> None:
        super().__init__(
            loader=DictLoader(dict(includes or {})),
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            finalize=_finalize,
            auto_reload=False,
        )
        for name in ("lipsum", "cycler", "joiner"):  # nothing a prompt needs; more surface
            self.globals.pop(name, None)
        self.filters["tojson"] = _tojson
        self.filters = {name: guards.guard_filter(name, f) for name, f in self.filters.items()}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        guards.check_binop(operator, left, right)
        return guards.account(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(__obj, (types.BuiltinMethodType, types.MethodType)) and isinstance(
            getattr(__obj, "__self__", None), str
        ):
            args = guards.str_method_guard(__obj, args, kwargs)
        elif isinstance(__obj, types.BuiltinMethodType) and isinstance(
            getattr(__obj, "__self__", None), int
        ):
            guards.int_method_guard(__obj, args, kwargs)
        return guards.account(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            guards.check_format_spec(fmt, (*args, *kwargs.values()))
            return guards.account(wrapped(*args, **kwargs))  # type: ignore[no-any-return]

        return checked

    def bounded_concat(self, parts: tuple[Any, ...]) -> str:
        texts = [str(p) for p in parts]
        guards.check_size(sum(map(len, texts)), "'~'")
        return guards.account("".join(texts))  # type: ignore[no-any-return]


# ---- load time: parse, vet includes, find the names a template uses ------------------------


def _include_path(name: str, root: Path, where: str) -> Path:
    """The file an include names, refusing anything that could leave `root`."""
    bad = (
        not name
        or name.startswith(("/", "\\"))
        or re.match(r"^[A-Za-z]:", name)
        or "\\" in name
        or any(part in ("", ".", "..") for part in name.split("/"))
    )
    if bad:
        raise TemplateError(
            f"{where}: include '{name}' is not allowed",
            "includes take a path relative to the prompts folder (no '..', no absolute paths)",
        )
    path = root / name
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise TemplateError(f"{where}: included file '{name}' not found in {root}") from None
    if not real.is_relative_to(root.resolve()):
        raise TemplateError(
            f"{where}: include '{name}' resolves outside the prompts folder",
            "symlinks may not point outside the prompts folder",
        )
    if not real.is_file():
        raise TemplateError(f"{where}: include '{name}' is not a file")
    return real


def _parse(env: SandboxEnv, source: str, where: str) -> nodes.Template:
    try:
        return env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"{where}, line {exc.lineno}: {exc.message}") from None


# Every way a template pulls in another file is a statement that starts with one of these words
# (default delimiters, no line statements); a text without any certainly includes nothing.
_MAY_INCLUDE = re.compile(r"\{%[-+]?\s*(?:include|import|from|extends)\b")


def may_include(source: str) -> bool:
    """False when source certainly pulls in no other file (no need to parse it to know)."""
    return _MAY_INCLUDE.search(source) is not None


def analyze(
    sources: Mapping[str, str], root: Path | None, where: str
) -> tuple[dict[str, str], set[str]]:
    """Parse sources (label -> text); return (include snapshot, names read from the context)."""
    env = _env_for(())  # parsing only: one shared environment (building one costs ~1 ms)
    includes: dict[str, str] = {}
    names: set[str] = set()
    from_includes: set[str] = set()
    assigned: set[str] = set()  # `{% set %}` in the including file is visible to its includes
    queue = []
    for label, src in sources.items():
        named = f"{where}: {label}" if label else where
        ast = _parse(env, src, named)
        names |= meta.find_undeclared_variables(ast)
        assigned |= {n.name for n in ast.find_all(nodes.Name) if n.ctx == "store"}
        queue.append((named, ast))
    while queue:
        label, ast = queue.pop()
        if label.startswith("included file"):
            from_includes |= meta.find_undeclared_variables(ast)
        for ref in meta.find_referenced_templates(ast):
            if ref is None:
                raise TemplateError(
                    f"{label}: include/import/extends needs a quoted file name",
                    "computed names are not allowed: the checksum must cover every included file",
                )
            if ref in includes:
                continue
            if root is None:
                raise TemplateError(f"{label}: include '{ref}' needs a prompts folder")
            path = _include_path(ref, root, label)
            try:
                text = yamlsafe.read_text(path, MAX_INCLUDE_BYTES)
            except OSError as exc:
                raise TemplateError(
                    f"{label}: cannot read included file '{ref}': {exc.strerror}"
                ) from None
            includes[ref] = text
            queue.append((f"included file '{ref}'", _parse(env, text, f"included file '{ref}'")))
    return includes, (names | (from_includes - assigned)) - set(env.globals)


# ---- render time ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=128)
def _env_for(includes: tuple[tuple[str, str], ...]) -> SandboxEnv:
    return SandboxEnv(dict(includes))


@functools.lru_cache(maxsize=256)
def _compiled(source: str, label: str, includes: tuple[tuple[str, str], ...]) -> Any:
    env = _env_for(includes)
    code = env.compile(source, name=label, filename=label)
    return env.template_class.from_code(env, code, env.make_globals(None))


_UNSAFE_TEXT = re.compile(r"0x[0-9a-fA-F]{4,}|__\w+__|\bobject at\b|<(?:class|function|module)\b")


def _line_of(exc: BaseException, labels: set[str]) -> int | None:
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in labels:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _explain(exc: BaseException) -> str:
    """A one-line reason that never carries object reprs or anything else from inside Python."""
    if isinstance(exc, (Violation, Budget)):
        return str(exc)
    if isinstance(exc, SecurityError):
        attr = re.match(r"access to attribute '(\w{1,60})' of", str(exc))
        what = f"attribute '{attr.group(1)}'" if attr else "this operation"
        return f"blocked by the sandbox: {what} is off limits to templates"
    if isinstance(exc, RecursionError):
        return "recursion too deep"
    if isinstance(exc, MemoryError):
        return "out of memory"
    message = str(exc).splitlines()[0] if str(exc) else ""
    if not message or len(message) > 200 or _UNSAFE_TEXT.search(message):
        return (
            "undefined name or attribute"
            if isinstance(exc, UndefinedError)
            else (type(exc).__name__)
        )
    if isinstance(exc, UndefinedError):
        return message  # "'name' is undefined"
    return f"{type(exc).__name__}: {message}"


def render_text(
    source: str,
    context: dict[str, Any],
    *,
    label: str,
    includes: Mapping[str, str],
    limit: int,
    where: str,
    undefined_hint: str | None = None,
) -> str:
    """Render one source in the sandbox; any failure is a TemplateError with a safe message."""
    limits = Limits(limit, limit * TOTAL_FACTOR, time.monotonic() + RENDER_SECONDS)
    previous_limits = getattr(guards.state, "limits", None)
    previous_trace: Any = sys.gettrace()

    def local_trace(frame: Any, event: str, arg: Any) -> Any:
        if time.monotonic() > limits.deadline:
            raise Budget(f"rendering took longer than {RENDER_SECONDS:g} s")
        return local_trace

    def global_trace(frame: Any, event: str, arg: Any) -> Any:
        # Only frames of compiled template code are timed; others go to whoever traced before
        # (coverage, a debugger), so they keep working during a render.
        if isinstance(frame.f_globals.get("environment"), SandboxEnv):
            return local_trace
        return previous_trace(frame, event, arg) if previous_trace is not None else None

    parts: list[str] = []
    try:
        template = _compiled(source, label, tuple(sorted(includes.items())))
        guards.state.limits = limits
        sys.settrace(global_trace)
        size = 0
        for chunk in template.generate(context):
            size += len(chunk)
            if size > limit:
                raise Budget(f"rendered text exceeds {limit} characters")
            if time.monotonic() > limits.deadline:
                raise Budget(f"rendering took longer than {RENDER_SECONDS:g} s")
            parts.append(chunk)
    except (Exception, Budget) as exc:
        # Jinja rewrites the traceback of an Exception to template lines; Budget skips that.
        line = _line_of(exc, {label}) if isinstance(exc, Exception) else None
        at = f", line {line}" if line else ""
        hint = undefined_hint if isinstance(exc, UndefinedError) else None
        raise TemplateError(f"{where}{at}: {_explain(exc)}", hint) from None
    finally:
        sys.settrace(previous_trace)
        guards.state.limits = previous_limits
    return "".join(parts)
