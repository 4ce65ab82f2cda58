"""The resumable state of one batch run: which request went into which batch, kept on disk.

One file per run fingerprint, `<cache dir>/batches/<fingerprint>.json`, written atomically
before each submit and after it, so a killed run started again finds every batch it made and
never submits a request twice."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aicli.errors import UsageError

STATE_VERSION = 1
MAX_STATE_BYTES = 64 * 1024 * 1024  # 50,000 ids of 64 hex digits are ~3.5 MB a batch
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass
class BatchRecord:
    """One submitted (or being submitted) batch of one tier."""

    chunk: str  # our name for it, sent as metadata: finds a batch whose create reply was lost
    tier: str
    provider: str
    model: str
    custom_ids: list[str]
    id: str | None = None  # None while the create may or may not have happened
    status: str = "submitting"
    submitted: float = field(default_factory=time.time)
    counts: dict[str, int] = field(default_factory=dict)
    collected: bool = False  # its results were read into the cache

    @property
    def active(self) -> bool:
        return not self.collected


class RunState:
    """The batches of one run (one fingerprint), with an index from custom_id to batch."""

    def __init__(self, path: Path, fingerprint: str, batches: list[BatchRecord]) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.batches = batches
        self._by_id = {cid: b for b in batches for cid in b.custom_ids}

    @classmethod
    def load(cls, path: Path, fingerprint: str) -> RunState:
        """The run's state; a new, empty one when the file does not exist yet."""
        if not path.exists():
            return cls(path, fingerprint, [])
        data = read_state(path)
        return cls(path, fingerprint, data)

    def batch_for(self, custom_id: str) -> BatchRecord | None:
        return self._by_id.get(custom_id)

    def add(self, record: BatchRecord) -> None:
        self.batches.append(record)
        for cid in record.custom_ids:
            self._by_id[cid] = record

    def save(self) -> None:
        from aicli.private_files import atomic_write_text

        body = {
            "version": STATE_VERSION,
            "fingerprint": self.fingerprint,
            "batches": [asdict(b) for b in self.batches],
        }
        atomic_write_text(self.path, json.dumps(body, separators=(",", ":")) + "\n")


def read_state(path: Path) -> list[BatchRecord]:
    """The batches a state file holds; UsageError (exit 2) naming the file when it is not one."""
    hint = (
        "it is not a batch state file aicli wrote; move it aside (its batches may still be billed)"
    )
    try:
        if not path.is_file():
            raise UsageError(f"batch state {path} is not a regular file", hint)
        if path.stat().st_size > MAX_STATE_BYTES:
            raise UsageError(f"batch state {path} is larger than {MAX_STATE_BYTES} bytes", hint)
        data: Any = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise UsageError(
            f"cannot read the batch state {path}: {type(exc).__name__}", hint
        ) from None
    try:
        if data.get("version") != STATE_VERSION:
            raise ValueError("version")
        return [_record(b) for b in data["batches"]]
    except (AttributeError, KeyError, TypeError, ValueError):
        raise UsageError(f"batch state {path} has an unknown layout", hint) from None


def _record(raw: Any) -> BatchRecord:
    if not isinstance(raw, dict):
        raise TypeError("batch")
    rec = BatchRecord(
        chunk=str(raw["chunk"]),
        tier=str(raw["tier"]),
        provider=str(raw["provider"]),
        model=str(raw["model"]),
        custom_ids=[str(c) for c in raw["custom_ids"]],
        id=None if raw.get("id") is None else str(raw["id"]),
        status=str(raw.get("status", "submitting")),
        submitted=float(raw.get("submitted", 0.0)),
        counts={str(k): int(v) for k, v in dict(raw.get("counts") or {}).items()},
        collected=bool(raw.get("collected", False)),
    )
    return rec


def state_dir(cache_dir: Path) -> Path:
    """Beside the cache: `<cache dir>/batches`."""
    return cache_dir / "batches"


def run_fingerprint(parts: dict[str, Any]) -> str:
    """A short, stable name for a run: suite files, tiers, model and parameters."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def all_states(directory: Path) -> list[RunState]:
    """Every run's state under `directory`, oldest first; unreadable files are skipped."""
    states: list[RunState] = []
    if not directory.is_dir():
        return states
    for path in sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime):
        try:
            states.append(RunState(path, path.stem, read_state(path)))
        except UsageError:
            continue
    return states


def chunk_name(fingerprint: str, tier: str, index: int) -> str:
    """Our name for one batch: the run, the tier and a counter, unique per run."""
    return f"{fingerprint}-{tier}-{index}-{os.getpid()}-{int(time.time())}"
