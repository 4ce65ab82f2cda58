"""Memory limits for one sandboxed render: checks that run before the memory is spent.

Every operation that can multiply memory (`*`, `+`, `~`, `%`, padding, replace, join) is checked
against the per-render size limit before it runs, and each result is charged to a running total.
"""

from __future__ import annotations

import functools
import re
import string
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from jinja2 import Undefined
from jinja2.exceptions import SecurityError

MAX_OUTPUT = 1_000_000  # characters of rendered text (or twice the variables, if larger)
TOTAL_FACTOR = 50  # all intermediate strings/lists of one render: at most 50x the limit
# Integers a render may build: one multiplication of two such numbers takes about a
# millisecond, while C-level big-number arithmetic cannot be interrupted by the time limit.
MAX_INT_BITS = 100_000


class Violation(SecurityError):
    """A sandbox rule was broken; the message is safe to show (it holds no Python internals)."""


class Budget(BaseException):
    """Rendering ran out of time or output; BaseException so template code cannot swallow it."""


@dataclass
class Limits:
    """One render's bounds: characters per value and in all, the deadline, what is used."""

    size: int
    total: int
    deadline: float
    used: int = 0


state = threading.local()


def current() -> Limits:
    """The limits of the render running on this thread."""
    limits = getattr(state, "limits", None)
    if limits is None:  # compile-time constant folding happens outside a render
        return Limits(MAX_OUTPUT, MAX_OUTPUT * TOTAL_FACTOR, float("inf"))
    return limits  # type: ignore[no-any-return]


def _sized(value: Any) -> int | None:
    return len(value) if isinstance(value, (str, bytes, list, tuple, dict)) else None


def account(result: Any) -> Any:
    """Charge a freshly built string/list against the per-render limits; refuse huge numbers."""
    check_int(result)
    n = _sized(result)
    if n is not None:
        lim = current()
        if n > lim.size:
            raise Violation(f"a value of {n} characters/items exceeds the limit of {lim.size}")
        lim.used += n
        if lim.used > lim.total:
            raise Violation("rendering builds too much text (memory limit)")
    return result


def check_size(n: int, what: str) -> None:
    lim = current()
    if n > lim.size:
        raise Violation(f"{what} would build {n} characters/items (limit {lim.size})")


_PCT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d*)(?:\.(\*|\d*))?[hlL]?[a-zA-Z%]")


def _check_percent(fmt: str) -> None:
    for width, precision in _PCT_SPEC.findall(fmt):
        for part in (width, precision):
            if part == "*":
                raise Violation("'*' widths in % formatting are not allowed")
            if part:
                check_size(int(part), "a % format width")


def check_format_spec(fmt: str, args: Iterable[Any]) -> None:
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises its own error
    for _, _, spec, _ in fields:
        for digits in re.findall(r"\d+", spec or ""):
            check_size(int(digits), "a format width")
        if spec and "{" in spec:  # nested width taken from the arguments
            for arg in args:
                if isinstance(arg, int) and not isinstance(arg, bool):
                    check_size(abs(arg), "a format width")


def _check_replace(text: Any, old: Any, new: Any, count: Any = -1) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        hits = text.count(old) if old else len(text) + 1
        if isinstance(count, int) and count >= 0:
            hits = min(hits, count)
        check_size(len(text) + hits * max(0, len(new) - len(old)), "replace()")


def _check_join(sep: Any, items: list[Any]) -> None:
    check_size(len(str(sep)) * max(0, len(items) - 1), "join()")


def _bits(value: Any) -> int:
    return value.bit_length() if isinstance(value, int) else 0


def check_int(value: Any) -> Any:
    """Refuse an integer over MAX_INT_BITS (made by a filter, a method or an operator)."""
    if _bits(value) > MAX_INT_BITS:
        raise Violation(f"a number larger than {MAX_INT_BITS} bits (the limit)")
    return value


def check_binop(op: str, left: Any, right: Any) -> None:
    check_int(left)
    check_int(right)
    if op == "*":
        if _bits(left) + _bits(right) > MAX_INT_BITS:
            raise Violation(f"a product larger than {MAX_INT_BITS} bits (the limit)")
        for seq, n in ((left, right), (right, left)):
            size = _sized(seq)
            if size is not None and isinstance(n, int):
                check_size(size * max(n, 0), "'*'")
    elif op == "+":
        a, b = _sized(left), _sized(right)
        if a is not None and b is not None:
            check_size(a + b, "'+'")
    elif op == "**":
        ints = isinstance(left, int) and isinstance(right, int)
        if ints and abs(left) > 1 and right > 0 and abs(left).bit_length() * right > MAX_INT_BITS:
            raise Violation("a power too large to compute")
    elif op == "%" and isinstance(left, str):
        _check_percent(left)


def str_method_guard(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Pre-check str methods that can multiply memory; returns the (maybe listed) args."""
    owner, name = method.__self__, method.__name__
    if name in ("center", "ljust", "rjust", "zfill"):
        for n in (*args, *kwargs.values()):
            if isinstance(n, int):
                check_size(n, f"{name}()")
    elif name == "expandtabs":
        size = (args[0] if args else kwargs.get("tabsize", 8)) or 0
        if isinstance(size, int):
            check_size(len(owner) + owner.count("\t") * size, "expandtabs()")
    elif name == "replace" and len(args) >= 2:
        _check_replace(owner, *args[:3])
    elif name == "join" and args:
        items = list(args[0])
        _check_join(owner, items)
        return (items, *args[1:])
    return args


def int_method_guard(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """`(1).to_bytes(10**9)` would allocate a gigabyte before anything could be counted."""
    if method.__name__ == "to_bytes":
        for n in (*args, *kwargs.values()):
            if isinstance(n, int):
                check_size(n, "to_bytes()")


def guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    skip = 2 if hasattr(func, "jinja_pass_arg") else 1  # context/env arg, then the value

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        value, rest = (args[skip - 1] if len(args) >= skip else None), args[skip:]
        if name in ("center", "indent", "batch", "slice", "wordwrap"):
            for n in (*rest, *kwargs.values()):
                if isinstance(n, int) and not isinstance(n, bool):
                    check_size(abs(n), f"|{name}")
                elif name == "indent" and isinstance(n, str) and isinstance(value, str):
                    check_size(len(n) * (value.count("\n") + 1) + len(value), "|indent")
        elif name == "replace":
            _check_replace(value, *rest[:3])
        elif name == "format" and isinstance(value, str):
            _check_percent(value)
        elif name == "join" and value is not None and not isinstance(value, Undefined):
            items = list(value)
            _check_join(rest[0] if rest else kwargs.get("d", ""), items)
            args = (*args[: skip - 1], items, *rest)
        return account(func(*args, **kwargs))

    return guarded
