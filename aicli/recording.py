"""Recordings: the JSONL line of one answer, written by the Recorder (`--record`) and read back.

One line per answer:
  {"key", "tier", "model", "provider", "template": {name, version, checksum} | null,
   "content", "usage", "cost_usd", "latency_ms", "created",
   "asked": {"endpoint", "model", "prompt"}}
A later line with the same key wins, so re-recording into a file updates it. `asked` tells what
the request was made of (the endpoint and the prompt as 12-hex digests, the model asked for), so
that a replay miss can name what changed (replay.py); recordings without it still replay.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from aicli.errors import UsageError
from aicli.private_files import close_durably
from aicli.safetext import valid_text
from aicli.types import Message, TemplateRef, Usage

if TYPE_CHECKING:
    from aicli.cache import CacheEntry

_TAIL_MAX = 64 * 1024 * 1024  # how far back a torn last line is looked for
log = logging.getLogger("aicli")


def request_facts(base_url: str, model: str, messages: list[Message]) -> dict[str, str]:
    """What a request was made of, as `asked` records it: digests, never the text itself."""
    from aicli.digest import sha256_hex

    def digest(value: Any) -> str:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return sha256_hex(text.encode("utf-8"))[:12]

    said = [{"role": m["role"], "content": m["content"]} for m in messages]
    endpoint = digest((base_url or "").rstrip("/"))
    return {"endpoint": endpoint, "model": model, "prompt": digest(said)}


def entry_to_line(
    key: str,
    entry: CacheEntry,
    template: TemplateRef | None = None,
    asked: dict[str, str] | None = None,
) -> dict[str, Any]:
    checksum = template.checksum if template else entry.template_checksum
    tpl = (
        {"name": template.name, "version": template.version, "checksum": template.checksum}
        if template
        else ({"name": None, "version": None, "checksum": checksum} if checksum else None)
    )
    line: dict[str, Any] = {
        "key": key,
        "tier": entry.tier,
        "model": entry.model_used,
        "provider": entry.provider,
        "template": tpl,
        "content": entry.content,
        "usage": {
            "prompt_tokens": entry.usage.prompt_tokens,
            "completion_tokens": entry.usage.completion_tokens,
            "total_tokens": entry.usage.total_tokens,
        },
        "cost_usd": entry.cost_usd,
        "latency_ms": entry.latency_ms,
        "created": entry.created,
        **({"asked": asked} if asked else {}),
    }
    if entry.tool_calls:  # only then: a plain answer's line keeps its shape
        line["tool_calls"], line["finish_reason"] = entry.tool_calls, entry.finish_reason
    return line


class Recorder:
    """Appends one line per answer and flushes it at once; safe across threads and tasks.

    Re-recording into an existing file appends; `close()` then compacts the file (last line per
    key wins, first-seen order kept) so a committed recording does not grow with every run.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.count = 0
        self._failed: OSError | None = None  # the first write that failed
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise UsageError(f"--record {path}: cannot write: {exc.strerror}") from None
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o600)  # an existing file keeps its mode otherwise
        try:
            _drop_torn_tail(fd, path)
            _check_lines(fd, path)  # before the run: a file that is no recording stays untouched
        except OSError as exc:
            os.close(fd)
            raise UsageError(f"--record {path}: cannot write: {exc.strerror}") from None
        except UsageError:
            os.close(fd)
            raise
        self._f: IO[bytes] | None = os.fdopen(fd, "ab")

    def write(
        self,
        key: str,
        entry: CacheEntry,
        template: TemplateRef | None = None,
        asked: dict[str, str] | None = None,
    ) -> None:
        line = json.dumps(entry_to_line(key, entry, template, asked), ensure_ascii=False) + "\n"
        data = valid_text(line).encode("utf-8")
        with self._lock:
            if self._f is None:
                raise UsageError(f"--record {self.path}: the recording is already closed")
            if self._failed is not None:
                return
            try:
                self._f.write(data)
                self._f.flush()
            except OSError as exc:  # a full disk: the run goes on, close() says so
                self._failed = exc
                return
            self.count += 1

    def close(self) -> None:
        with self._lock:
            if self._f is None:
                return
            f, self._f = self._f, None
            try:
                close_durably(f)
                if self.count and self._failed is None:  # repeats and hits record a key again
                    self._rewrite_unique()
            except OSError as exc:
                self._failed = self._failed or exc
            if self._failed is not None:
                raise UsageError(
                    f"--record {self.path}: cannot write: {self._failed.strerror or self._failed}"
                    " (the recording is incomplete)",
                    "free some disk space, then record again",
                )

    def _rewrite_unique(self) -> None:
        """Drop lines that a later line with the same key replaced (atomic rewrite, 0600)."""
        from aicli.private_files import atomic_write_text

        latest: dict[str, bytes] = {}
        lines = 0
        with open(self.path, "rb") as fh:
            for raw in fh:
                lines += 1
                try:
                    key, _entry = parse_line(raw)
                except ValueError:
                    return  # not ours to repair (the file changed under us): left as it is
                latest[key] = raw if raw.endswith(b"\n") else raw + b"\n"  # keeps first position
        if lines != len(latest):
            atomic_write_text(self.path, b"".join(latest.values()).decode("utf-8"))

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drop_torn_tail(fd: int, path: Path) -> None:
    """Make the next append start on a fresh line. A last line without its newline is either
    whole (the newline is added) or torn by a killed writer (it is cut off, with a warning)."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    start = max(0, size - _TAIL_MAX)
    tail = os.pread(fd, size - start, start)
    cut = tail.rfind(b"\n")
    if cut < 0 and start > 0:  # a last line longer than we look at: keep it, end it
        os.write(fd, b"\n")
        return
    line_start = start + cut + 1
    try:
        json.loads(tail[cut + 1 :].decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        log.warning(
            "--record %s: dropping a torn last line (%d bytes) that an interrupted run left behind",
            path, size - line_start,
            extra={"event": "recording.torn", "path": str(path), "bytes": size - line_start},
        )  # fmt: skip
        os.ftruncate(fd, line_start)
    else:
        os.write(fd, b"\n")


def parse_line(raw: bytes) -> tuple[str, CacheEntry]:
    """One line of a recording -> (key, CacheEntry). A file is hostile input: anything that is
    not one (bad UTF-8, bad JSON, absurd nesting, a lone surrogate, a wrong field) is a
    ValueError saying what is wrong."""
    from aicli.yamlsafe import has_lone_surrogate

    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x})") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if has_lone_surrogate(data):
        raise ValueError("a lone surrogate (a \\ud800-style escape), which is not text")
    return line_to_entry(data)


def _check_lines(fd: int, path: Path) -> None:
    """Refuse (exit 2) an existing file to record into that holds a line no recording has."""
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # /dev/null, a pipe: nothing to read back
        return
    with open(os.dup(fd), "rb") as fh:
        fh.seek(0)
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                parse_line(raw)
            except ValueError as exc:
                raise UsageError(
                    f"--record {path}:{lineno}: not a recording line: {exc}",
                    "record into a new file, or delete that line",
                ) from None


def _num(line: dict[str, Any], name: str, default: float) -> float:
    value = line.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"field {name!r} must be a number")
    return float(value)


def line_to_entry(data: Any) -> tuple[str, CacheEntry]:
    """A parsed recording line -> (key, CacheEntry); ValueError says what is wrong."""
    from aicli.cache import CacheEntry
    from aicli.cache.entries import tool_calls_of

    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    key, content = data.get("key"), data.get("content")
    if not isinstance(key, str) or not key:
        raise ValueError("field 'key' must be a non-empty string")
    if not isinstance(content, str):
        raise ValueError("field 'content' must be a string")
    for name in ("tier", "model", "provider"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise ValueError(f"field {name!r} must be a string")
    usage = data.get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise ValueError("field 'usage' must be an object")
    try:
        usage_obj = Usage.from_dict(usage)
    except (TypeError, ValueError):
        raise ValueError("field 'usage' must hold token counts") from None
    template = data.get("template")
    if template is not None and not isinstance(template, dict):
        raise ValueError("field 'template' must be an object or null")
    checksum = (template or {}).get("checksum")
    if checksum is not None and not isinstance(checksum, str):
        raise ValueError("field 'template.checksum' must be a string")
    entry = CacheEntry(
        content=content,
        model_used=data.get("model") or "",
        provider=data.get("provider") or "",
        tier=data.get("tier") or "",
        usage=usage_obj,
        cost_usd=_num(data, "cost_usd", 0.0),
        latency_ms=_num(data, "latency_ms", 0.0),
        created=_num(data, "created", time.time()),
        expires=None,  # a recording never expires
        template_checksum=checksum,
        tool_calls=tool_calls_of(data.get("tool_calls")),
        finish_reason=data["finish_reason"] if isinstance(data.get("finish_reason"), str) else None,
    )
    return key, entry
