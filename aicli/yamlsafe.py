"""Bounded reading and parsing of every YAML file aicli reads (config, suites, templates, vars).

A file may come from a pull request, so it is hostile input: the bytes read, the nesting depth
and the number of values (counting every expansion of a YAML alias, so a "billion laughs" bomb
is refused while it is still a few bytes of nodes) are all bounded before anything is built.
Nodes are composed from the parser's events with an explicit stack (no recursion, so depth
cannot crash it); libyaml's C parser is used when PyYAML was built with it.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    MappingEndEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES = 10_000_000  # one input file
MAX_DEPTH = 100  # nested lists/mappings, counting what aliases pull in
MAX_NODES = 250_000  # values in one file, counting every alias expansion

_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SURROGATE = re.compile("[\ud800-\udfff]")
LONE_SURROGATE = "a lone surrogate (a \\ud800-style escape), which is not text"


class YamlProblem(ValueError):
    """Unparseable or over a limit; `problem` is safe to show (it never echoes the file)."""

    def __init__(self, problem: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line  # 1-based
        self.column = column

    def where(self) -> str:
        """`:LINE` to append to a file name, or '' when the line is unknown."""
        return f":{self.line}" if self.line else ""


class _Open:
    """A node being composed; `size`/`depth` include what aliases inside it expand to."""

    __slots__ = ("anchor", "depth", "key", "node", "size")

    def __init__(self, node: Node, anchor: str | None) -> None:
        self.node, self.anchor = node, anchor
        self.size, self.depth = 1, 1
        self.key: Node | None = None  # a mapping's key waiting for its value


class BoundedLoader(_Base):  # type: ignore[misc]
    """SafeLoader (C when available) whose composer enforces depth and alias-expansion limits.

    Subclass it to change construction (line numbers, duplicate keys, resolvers); the limits
    are class attributes.
    """

    max_depth = MAX_DEPTH
    max_nodes = MAX_NODES

    def get_single_node(self) -> Node | None:
        self.get_event()  # stream start
        node = None
        if not self.check_event(StreamEndEvent):
            node = self._compose_document()
        if not self.check_event(StreamEndEvent):
            raise _problem("expected a single document, but found another", self.get_event())
        self.get_event()
        return node

    def _compose_document(self) -> Node:
        self.get_event()  # document start
        anchors: dict[str, tuple[Node, int, int]] = {}  # anchor -> (node, size, depth)
        open_anchors: set[str] = set()
        stack: list[_Open] = []
        distinct = 0
        root: tuple[Node, int, int] | None = None
        node: Node
        while root is None:
            event: Any = self.get_event()
            start: Any = event.start_mark  # libyaml's Mark type differs from PyYAML's
            end: Any = event.end_mark
            done: tuple[Node, int, int] | None = None
            if isinstance(event, AliasEvent):
                if event.anchor in open_anchors:
                    raise _problem(f"alias *{event.anchor} refers to a value containing it", event)
                if event.anchor not in anchors:
                    raise _problem(f"found undefined alias *{event.anchor}", event)
                done = anchors[event.anchor]
            elif isinstance(event, ScalarEvent):
                if not event.value.isascii() and _SURROGATE.search(event.value):
                    raise _problem(LONE_SURROGATE, event)  # a "\ud800" escape: not text
                tag = event.tag
                if tag is None or tag == "!":
                    tag = self.resolve(ScalarNode, event.value, event.implicit)
                node = ScalarNode(tag, event.value, start, end, event.style)
                done = (node, 1, 0)
                if event.anchor is not None:
                    anchors[event.anchor] = done
            elif isinstance(event, CollectionStartEvent):
                kind = SequenceNode if isinstance(event, SequenceStartEvent) else MappingNode
                tag = event.tag
                if tag is None or tag == "!":
                    tag = self.resolve(kind, None, event.implicit)
                node = kind(tag, [], start, None, flow_style=event.flow_style)
                if len(stack) >= self.max_depth:
                    raise _problem(f"nested deeper than {self.max_depth} levels (the limit)", event)
                if event.anchor is not None:
                    open_anchors.add(event.anchor)
                stack.append(_Open(node, event.anchor))
            elif isinstance(event, (SequenceEndEvent, MappingEndEvent)):
                top = stack.pop()
                top.node.end_mark = end
                done = (top.node, top.size, top.depth)
                if top.anchor is not None:
                    open_anchors.discard(top.anchor)
                    anchors[top.anchor] = done
            else:  # pragma: no cover - the parser emits nothing else inside a document
                raise _problem(f"unexpected {type(event).__name__}", event)
            if isinstance(event, (ScalarEvent, CollectionStartEvent)):
                distinct += 1
                if distinct > self.max_nodes:
                    raise _problem(f"holds more than {self.max_nodes} values (the limit)", event)
            if done is None:
                continue
            if not stack:
                root = done
                break
            parent = stack[-1]
            node, size, depth = done
            parent.size += size
            parent.depth = max(parent.depth, depth + 1)
            if parent.size > self.max_nodes:
                raise _problem(
                    f"YAML aliases expand to more than {self.max_nodes} values (the limit)", event
                )
            if len(stack) + depth > self.max_depth:
                raise _problem(f"nested deeper than {self.max_depth} levels (the limit)", event)
            if isinstance(parent.node, SequenceNode):
                parent.node.value.append(node)
            elif parent.key is None:
                parent.key = node
            else:
                parent.node.value.append((parent.key, node))
                parent.key = None
        self.get_event()  # document end
        return root[0]


# Dates stay the strings the author typed: everything aicli reads is JSON-shaped, and JSON has no
# date type (a datetime in a variable would break the cache key and every report).
BoundedLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _not_json(loader: BoundedLoader, node: Node) -> Any:
    tag = node.tag.rsplit(":", 1)[-1]
    raise yaml.constructor.ConstructorError(
        None, None, f"the tag !!{tag} is not allowed (only JSON-like values)", node.start_mark
    )


for _tag in ("binary", "set", "omap", "pairs", "timestamp"):  # not JSON: would break later
    BoundedLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _not_json)


def _problem(problem: str, event: Any) -> YamlProblem:
    mark = getattr(event, "start_mark", None)
    if mark is None:
        return YamlProblem(problem)
    return YamlProblem(problem, mark.line + 1, mark.column + 1)


def load(text: str, loader: type[BoundedLoader] = BoundedLoader) -> Any:
    """Parse one YAML document within the limits; raises YamlProblem (never a raw YAMLError)."""
    return load_with(loader(text))


def load_with(instance: BoundedLoader) -> Any:
    """`load` with a loader already built (to read what it recorded, e.g. line numbers)."""
    try:
        return instance.get_single_data()
    except YamlProblem:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = f"invalid YAML: {exc.problem or exc.context or 'malformed'}"
        if mark is None:
            raise YamlProblem(problem) from None
        raise YamlProblem(problem, mark.line + 1, mark.column + 1) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"invalid YAML ({type(exc).__name__})") from None
    except (ValueError, OverflowError, TypeError) as exc:  # int("1" * 5000), !!int abc, ...
        raise YamlProblem(f"invalid YAML value: {_first_line(exc)}") from None
    except RecursionError:  # defensive: construction is bounded by max_depth
        raise YamlProblem(f"nested deeper than {instance.max_depth} levels (the limit)") from None
    finally:
        instance.dispose()


def read_text(path: str | Path, max_bytes: int = MAX_BYTES) -> str:
    """A file's UTF-8 text, refusing devices, folders, sockets and anything over `max_bytes`.

    Pipes (`<(cmd)`, a named FIFO) are read up to the limit. Every refusal is an OSError whose
    `strerror` says why in words, so callers show `exc.strerror` alone.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)  # non-blocking: opening a FIFO with no writer must not hang
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise OSError(errno.EISDIR, "it is a folder, not a file")
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            raise OSError(errno.EINVAL, "not a regular file (a device or socket)")
        if stat.S_ISREG(mode) and os.fstat(fd).st_size > max_bytes:
            raise OSError(errno.EFBIG, f"larger than the {_mb(max_bytes)} limit")
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        total = 0
        while total <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:  # /proc files and pipes report no size up front
            raise OSError(errno.EFBIG, f"larger than the {_mb(max_bytes)} limit")
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise OSError(errno.EILSEQ, "not UTF-8 text") from None


def has_lone_surrogate(value: Any) -> bool:
    """Whether JSON-like data (from json.loads) holds a lone surrogate in a string or key: no
    UTF-8 can carry one, so every later write of it would fail. Iterative: depth cannot crash."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "integer string conversion" in text:
        return "a number with too many digits"
    return text if len(text) <= 100 else text[:99] + "…"


def _mb(n: int) -> str:
    return f"{n / 1_000_000:g} MB"
