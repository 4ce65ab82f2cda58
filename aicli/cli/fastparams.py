"""Typer's value coercion for plain parameters without importing pydantic (start-up time).

Typer 0.2x coerces every parameter value through a pydantic TypeAdapter built on first use;
importing pydantic and building the adapters costs ~90 ms, more than the whole of `aicli render`
should take. A plain value (a str for `str`, a bool for `bool`, a path, a number written plainly
and inside its range, None) needs no adapter: this answers those and hands everything else (a
bad or out-of-range number, an enum, a file) to Typer's own coercion, built lazily as before,
which also words the error. With a Typer that lacks these internals nothing changes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args, get_origin


class _Light:
    """Stands in for Typer's RuntimeParam of one parameter (the same `coerce` contract)."""

    def __init__(self, param: Any, build: Any, coerce_path: Any) -> None:
        self._param = param
        self._build = build  # typer._coercion.build_runtime_param
        self._coerce_path = coerce_path  # typer._param_types.coerce_cli_path
        self._full: Any = None
        descriptor = param.type_descriptor
        self._info = descriptor.parameter_info
        annotation = descriptor.annotation
        self._item = get_args(annotation)[0] if get_origin(annotation) is list else annotation
        self._list = get_origin(annotation) is list

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        many = param.multiple or param.nargs == -1
        if value is None:
            return () if many else None
        if self._list and isinstance(value, (list, tuple)):
            items = [self._one(v, param, ctx) for v in value]
            if all(v is not _NO for v in items):
                return items
        elif not self._list and not isinstance(value, (list, tuple)):
            got = self._one(value, param, ctx)
            if got is not _NO:
                return got
        return self._typer().coerce(value, param=param, ctx=ctx)

    def _one(self, value: Any, param: Any, ctx: Any) -> Any:
        item, info = self._item, self._info
        if item is str and isinstance(value, str):
            return value
        if item is bool and isinstance(value, bool):
            return value
        if item is Path and isinstance(value, (str, Path)):
            # Typer's own checks (exists, readable, ...) run; only the pydantic step is skipped.
            return self._coerce_path(Path(value), info, path_type=Path, param=param, ctx=ctx)
        if item in (int, float) and not info.clamp:
            number = _number(item, value)
            low, high = info.min, info.max
            if number is not None and (low is None or number >= low):  # noqa: SIM102
                if high is None or number <= high:
                    return number
        return _NO

    def _typer(self) -> Any:
        if self._full is None:
            self._full = self._build(self._param.type_descriptor)
        return self._full


_NO = object()
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")


def _number(kind: Any, value: Any) -> Any:
    """`-j 16` as an int, `--pass-rate 90.5` as a float; None for anything less plain."""
    if type(value) is kind or (kind is float and type(value) is int):
        return kind(value)
    if isinstance(value, str) and (_INT if kind is int else _FLOAT).fullmatch(value):
        return kind(value)
    return None


def install(command: Any) -> None:
    """Give every parameter of `command` (and of its subcommands) the light coercion."""
    try:
        from typer._coercion import build_runtime_param
        from typer._param_types import coerce_cli_path
    except ImportError:  # another Typer: keep its own coercion
        return

    def lighten(param: Any) -> None:
        descriptor = getattr(param, "type_descriptor", None)
        if (
            descriptor is None
            or getattr(param, "_runtime_param", 0) is not None
            or descriptor.parameter_info.parser is not None
            or descriptor.file_annotation is not None
        ):
            return
        param._runtime_param = _Light(param, build_runtime_param, coerce_cli_path)

    def with_light_help(original: Any) -> Any:
        def get_help_option(ctx: Any) -> Any:  # --help is made on first use, per command
            option = original(ctx)
            if option is not None:
                lighten(option)
            return option

        return get_help_option

    stack = [command]
    while stack:
        cmd = stack.pop()
        stack.extend(getattr(cmd, "commands", {}).values())
        for param in getattr(cmd, "params", ()):
            lighten(param)
        if hasattr(cmd, "get_help_option") and "get_help_option" not in vars(cmd):
            cmd.get_help_option = with_light_help(cmd.get_help_option)
