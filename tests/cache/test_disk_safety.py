"""The disk cache is safe to keep: owner-only files and folders, no code run from its contents."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from aicli.cache import ResponseCache
from aicli.errors import CacheError
from tests.cache.helpers import disk_cache, disk_stats, entry


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_files_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b" / "cache"
    old = os.umask(0)
    c = disk_cache(directory)
    try:
        assert not directory.exists()  # nothing touches the disk until first use
        await c.set("big", entry("q" * 50_000))
        await c.set("small", entry("small"))
        await c.record_hit(entry())
        assert os.umask(0) == 0  # our umask was put back
    finally:
        os.umask(old)
        await c.aclose()
    for folder in (tmp_path / "a", tmp_path / "a" / "b", directory):
        assert _mode(folder) == 0o700, folder
    for path in directory.rglob("*"):
        assert _mode(path) == (0o700 if path.is_dir() else 0o600), path
    assert any(p.suffix == ".val" for p in directory.rglob("*"))


async def test_existing_loose_cache_directory_is_tightened(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o755)
    empty.chmod(0o755)
    await disk_stats(empty)
    assert _mode(empty) == 0o700
    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    unrelated.chmod(0o755)
    (unrelated / "notes.txt").write_text("mine")
    await disk_stats(unrelated)
    assert _mode(unrelated) == 0o755  # not obviously ours: left alone


async def test_world_writable_directory_is_refused(cache_dir: Path, disk: ResponseCache) -> None:
    cache_dir.mkdir()
    cache_dir.chmod(0o777)
    with pytest.raises(CacheError) as info:
        await disk.get("k")
    assert info.value.exit_code == 2
    assert "every user can write" in info.value.message
    assert "chmod 700" in (info.value.hint or "")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
@pytest.mark.parametrize("which", ["top", "entries"])
async def test_directory_owned_by_another_user_is_refused(
    cache_dir: Path, which: str, disk: ResponseCache
) -> None:
    cache_dir.mkdir(mode=0o700)
    target = cache_dir if which == "top" else cache_dir / "entries"
    target.mkdir(mode=0o700, exist_ok=True)
    os.chown(target, 12345, 12345)
    with pytest.raises(CacheError) as info:  # a read, which comes first, refuses it
        await disk.get("k")
    assert "owned by another user (uid 12345)" in info.value.message
    assert "AICLI_CACHE_DIR" in (info.value.hint or "")


async def test_a_file_as_cache_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(CacheError, match="not a directory"):
        await disk_stats(path)
