"""Config data against the settings dataclasses without importing pydantic (start-up time).

`check` accepts only what pydantic would accept too (strict: no "200" for a number, no "yes"
for a bool; ints do for floats, .inf/.nan do not; unknown keys are errors), and builds the
dataclasses from it. When it answers None, the caller asks `pydantic_model`, generated from the
same classes, which either accepts the data after all or words the error.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

_NO = object()


@dataclass(frozen=True)
class Limit:
    """Bounds of a number, or a string's minimum length and pattern (pydantic's gt/ge/le/
    min_length/pattern)."""

    gt: float | None = None
    ge: float | None = None
    le: float | None = None
    min_len: int | None = None
    pattern: str | None = None  # searched for in a string, as pydantic's `pattern`

    def allows(self, value: Any) -> bool:
        if isinstance(value, str):
            long_enough = self.min_len is None or len(value) >= self.min_len
            return long_enough and (
                self.pattern is None or re.search(self.pattern, value) is not None
            )
        return (
            (self.gt is None or value > self.gt)
            and (self.ge is None or value >= self.ge)
            and (self.le is None or value <= self.le)
        )


def is_settings(kind: Any) -> bool:
    """A settings dataclass (the class, not an instance)."""
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


@functools.cache
def hints(cls: Any) -> dict[str, Any]:
    """Field name -> annotation (with its Annotated limits) of a settings dataclass."""
    fields = dataclasses.fields(cls)
    if all(not isinstance(f.type, str) for f in fields):  # no string annotations to evaluate
        return {f.name: f.type for f in fields}
    every = typing.get_type_hints(cls, include_extras=True)
    return {f.name: every[f.name] for f in fields}


def check(cls: Any, data: Any) -> Any:
    """An instance of the dataclass `cls` made from `data`, or None when unsure it is valid."""
    got = _value(cls, data)
    return None if got is _NO else got


def _value(kind: Any, value: Any) -> Any:
    origin, args = get_origin(kind), get_args(kind)
    if origin is typing.Annotated:
        got = _value(args[0], value)
        limits = [m for m in args[1:] if isinstance(m, Limit)]
        return got if got is _NO or all(m.allows(got) for m in limits) else _NO
    if origin is Union or origin is types.UnionType:
        if value is None:
            return None if type(None) in args else _NO
        for option in args:
            if option is not type(None) and (got := _value(option, value)) is not _NO:
                return got
        return _NO
    if origin is Literal:
        return value if any(type(value) is type(a) and value == a for a in args) else _NO
    if origin is list:
        if not isinstance(value, list):
            return _NO
        items = [_value(args[0], v) for v in value]
        return _NO if any(i is _NO for i in items) else items
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            return _NO
        entries = {k: _value(args[1], v) for k, v in value.items()}
        return _NO if any(v is _NO for v in entries.values()) else entries
    if is_settings(kind):
        fields = hints(kind)
        if not isinstance(value, dict) or not set(value) <= set(fields):
            return _NO
        made = {k: _value(fields[k], v) for k, v in value.items()}
        if any(v is _NO for v in made.values()):
            return _NO
        try:
            return kind(**made)
        except TypeError:  # a required key is missing
            return _NO
    if kind is bool or kind is str:
        return value if type(value) is kind else _NO
    if kind is int:
        return value if type(value) is int else _NO
    if kind is float:  # finite only, as pydantic with allow_inf_nan=False
        try:
            number = float(value) if type(value) in (int, float) else None
        except OverflowError:  # an int too big for a float
            return _NO
        return number if number is not None and math.isfinite(number) else _NO
    return _NO


@functools.cache
def pydantic_model(cls: Any) -> Any:
    """A strict pydantic model with the fields, defaults and limits of the dataclass `cls`."""
    from pydantic import ConfigDict, Field, create_model

    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        kind = _for_pydantic(hints(cls)[f.name])
        if f.default is not dataclasses.MISSING:
            fields[f.name] = (kind, f.default)
        elif f.default_factory is not dataclasses.MISSING:
            factory = f.default_factory
            made = _for_pydantic(factory) if is_settings(factory) else factory
            fields[f.name] = (kind, Field(default_factory=made))
        else:
            fields[f.name] = (kind, ...)
    config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)
    return create_model(cls.__name__, __config__=config, **fields)


def _for_pydantic(kind: Any) -> Any:
    """The annotation with dataclasses swapped for their models and Limits for Fields."""
    from pydantic import Field

    if is_settings(kind):
        return pydantic_model(kind)
    origin, args = get_origin(kind), get_args(kind)
    if origin is typing.Annotated:
        extra = [
            Field(gt=m.gt, ge=m.ge, le=m.le, min_length=m.min_len, pattern=m.pattern)
            if isinstance(m, Limit)
            else m
            for m in args[1:]
        ]
        return typing.Annotated.__class_getitem__((_for_pydantic(args[0]), *extra))
    if origin is Union or origin is types.UnionType:
        return Union[tuple(_for_pydantic(a) for a in args)]  # noqa: UP007
    if origin is list:
        return list.__class_getitem__(_for_pydantic(args[0]))
    if origin is dict:
        return dict.__class_getitem__((args[0], _for_pydantic(args[1])))
    return kind
