"""Secrets and file safety: scrub API keys from any text, create owner-only files atomically."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

_secrets: set[str] = set()
_SECRET_ENV = re.compile(r"(API_?KEY|TOKEN|SECRET)", re.IGNORECASE)


def register_secret(value: str) -> None:
    """Remember a key value so that scrub() removes it from every message aicli prints."""
    if len(value) >= 8:
        _secrets.add(value)


def scrub(text: str) -> str:
    """Replace every known key value (and the env's key-like variables) with `***`."""
    for name, value in os.environ.items():
        if _SECRET_ENV.search(name) and len(value) >= 8:
            _secrets.add(value)
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
        # Servers often echo a key masked as "sk-...abcd"; drop the tail they show too.
        tail = secret[-4:]
        text = re.sub(r"(\w{2,8}-)?\*{3,}" + re.escape(tail), "***", text)
        text = re.sub(r"\.\.\." + re.escape(tail) + r"\b", "...***", text)
    return text


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (and parents) so that the last component is 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    return path


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files created inside are owner-only (0600 files, 0700 directories)."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a whole file or nothing: temp file in the same folder, fsync, rename; mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
