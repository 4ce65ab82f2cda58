"""SHA-256 hex digests (template checksums, cache keys, shards) without loading OpenSSL.

`import hashlib` initialises OpenSSL (about 3 ms, a twentieth of `aicli render`); CPython's own
SHA-256 module gives the same digests and loads in a tenth of a millisecond."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _builtin_sha256() -> Callable[[bytes], Any]:
    import importlib

    for name in ("_sha256", "_sha2"):  # CPython 3.10/3.11, then 3.12+
        try:
            found: Callable[[bytes], Any] = importlib.import_module(name).sha256
            return found
        except (ImportError, AttributeError):
            continue
    import hashlib  # other Pythons

    return hashlib.sha256


_sha256 = _builtin_sha256()


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of `data` as 64 hex digits, as hashlib.sha256(data).hexdigest()."""
    return str(_sha256(data).hexdigest())
