"""Files only their owner may read: owner-only directories (checked, created, tightened),
atomic and durable writes (a whole file or nothing, fsynced)."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from aicli.errors import AicliError


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files created inside are owner-only (0600 files, 0700 directories)."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def close_durably(f: IO[Any]) -> None:
    """Flush, fsync and close a file we wrote, so a report or recording survives a crash."""
    try:
        f.flush()
        os.fsync(f.fileno())
    finally:
        f.close()


def atomic_write_text(path: Path, text: str) -> None:
    """Write a whole file or nothing: temp file in the same folder, fsync, rename; mode 0600."""
    import tempfile  # not at the top: a cache hit imports this module and never writes here

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


@dataclass(frozen=True)
class PrivateDir:
    """How errors about one owner-only directory read, and which AicliError they raise."""

    label: str  # "cache": "refusing to use the cache directory ..."
    setting: str  # where the user can choose another: "$AICLI_CACHE_DIR or cache.dir"
    contents: str  # what another user could read or plant there: "answers"
    error: type[AicliError] = AicliError


def prepare_private_dir(
    path: Path, rules: PrivateDir, ours: Callable[[set[str]], bool] | None = None
) -> None:
    """Create `path` (and parents) owner-only, or check that an existing one is safe to use.

    An existing directory that others can read is tightened to 0700 only when `ours` says its
    entry names are clearly ours (say, empty or already our layout): never a folder of the user's.
    """
    existed = path.is_dir()
    try:
        with private_umask():
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise rules.error(
            f"the {rules.label} path {path} exists but is not a directory",
            f"set {rules.setting} to a directory",
        ) from None
    except OSError as exc:
        raise rules.error(
            f"cannot create the {rules.label} directory {path}: {exc.strerror or exc}",
            f"set {rules.setting} to a directory you can write",
        ) from exc
    check_private_dir(path, rules)
    loose = existed and path.stat().st_mode & 0o077 and hasattr(os, "getuid")
    if loose and ours is not None and ours({p.name for p in path.iterdir()}):
        path.chmod(0o700)


def check_private_dir(path: Path, rules: PrivateDir) -> None:
    """Refuse a directory another user owns or anyone can write: they could read or plant files."""
    st = path.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise rules.error(
            f"the {rules.label} path {path} is not a directory",
            f"set {rules.setting} to a directory",
        )
    if not hasattr(os, "getuid"):  # Windows: ACLs, not modes
        return
    if st.st_uid != os.getuid():
        raise rules.error(
            f"refusing to use the {rules.label} directory {path}: it is owned by another user"
            f" (uid {st.st_uid}), who could read or plant {rules.contents}",
            f"use a directory you own: set {rules.setting}",
        )
    if st.st_mode & stat.S_IWOTH:
        raise rules.error(
            f"refusing to use the {rules.label} directory {path}: every user can write to it",
            f"run 'chmod 700 {path}', or set {rules.setting} to another directory",
        )
