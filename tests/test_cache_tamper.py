"""A cache restored from CI storage is untrusted: nothing outside it is read, written or deleted.

Each test tampers with a real cache made by `aicli generate`, then runs the CLI on it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

PROMPT = "what is the capital of France?"


def _entry_json(content: str) -> str:
    now = time.time()
    entry = {
        "version": 1,
        "content": content,
        "model_used": "standard-model",
        "provider": "fake",
        "tier": "standard",
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        "cost_usd": 0.0,
        "latency_ms": 1.0,
        "created": now,
        "expires": now + 3600,
        "template_checksum": None,
    }
    return json.dumps(entry)


def _cached(run_aicli: Any, cache_dir: Path) -> Path:
    """Fill the cache with one answer for PROMPT; returns the entries database."""
    done = run_aicli("generate", PROMPT)
    assert done.exit_code == 0, done
    db = cache_dir / "entries" / "cache.db"
    assert db.is_file()
    return db


def _set_filenames(db: Path, filename: str, as_file: bool = True) -> None:
    """Point every row at filename; as_file: also say the value lives in that file (mode text)."""
    with sqlite3.connect(db) as con:
        con.execute("UPDATE Cache SET filename = ?", (filename,))
        if as_file:
            con.execute("UPDATE Cache SET mode = 3, value = NULL")  # diskcache's MODE_TEXT
    con.close()


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file of the user's outside the cache, in a folder of its own, that reads as an answer."""
    folder = tmp_path / "precious" / "deep"
    folder.mkdir(parents=True)
    path = folder / "notes.txt"
    path.write_text(_entry_json("SECRET FILE CONTENT"))
    return path


def _intact(victim: Path) -> None:
    assert victim.is_file(), "a file outside the cache was deleted"
    assert "SECRET FILE CONTENT" in victim.read_text()


@pytest.mark.parametrize("as_file", [True, False], ids=["value-in-file", "value-inline"])
@pytest.mark.parametrize("form", ["absolute", "dotdot"])
def test_a_value_path_outside_the_cache_is_never_read_nor_deleted(
    run_aicli: Any,
    server: Any,
    make_config: Any,
    isolate: Any,
    victim: Path,
    form: str,
    as_file: bool,
) -> None:
    make_config()
    db = _cached(run_aicli, isolate.cache_dir)
    entries = isolate.cache_dir / "entries"
    name = str(victim) if form == "absolute" else os.path.relpath(victim, entries)
    _set_filenames(db, name, as_file)

    done = run_aicli("generate", PROMPT)  # the row is damage: a miss, the server answers
    assert done.exit_code == 0, done
    assert "SECRET" not in done.stdout and done.stdout == f"{PROMPT}\n"
    assert "aicli: warning:" in done.stderr and "Traceback" not in done.stderr
    assert len(server.requests) == 2
    _intact(victim)

    _set_filenames(db, name, as_file)  # the fresh answer's row, pointed outside again
    for args in (("cache", "prune"), ("cache", "clear", "--yes")):
        done = run_aicli(*args)
        assert done.exit_code == 0, done
        _intact(victim)
    assert victim.parent.is_dir()  # its (otherwise empty) folders stay too


def test_symlinked_folders_inside_the_cache_are_not_followed(
    run_aicli: Any, server: Any, make_config: Any, isolate: Any, victim: Path
) -> None:
    make_config()
    db = _cached(run_aicli, isolate.cache_dir)
    entries = isolate.cache_dir / "entries"
    # A planted `entries/ab -> <outside>` link, and a row naming a file through it.
    (entries / "ab").symlink_to(victim.parent.parent, target_is_directory=True)
    planted = victim.parent.parent / "cd" / ("0" * 28 + ".val")
    planted.parent.mkdir()
    planted.write_text(victim.read_text())
    _set_filenames(db, f"ab/cd/{planted.name}")
    # And a value file that is itself a link to the user's file.
    (entries / "ef" / "01").mkdir(parents=True)
    link = entries / "ef" / "01" / ("1" * 28 + ".val")
    link.symlink_to(victim)

    done = run_aicli("generate", PROMPT)
    assert done.exit_code == 0, done
    assert "SECRET" not in done.stdout
    assert planted.is_file()
    with sqlite3.connect(db) as con:
        con.execute("UPDATE Cache SET filename = ?", (f"ef/01/{link.name}",))
    con.close()
    done = run_aicli("generate", PROMPT)
    assert done.exit_code == 0, done
    assert "SECRET" not in done.stdout

    done = run_aicli("cache", "clear", "--yes")
    assert done.exit_code == 0, done
    _intact(victim)
    assert planted.is_file()
    assert not link.is_symlink()  # the link itself is the cache's to delete


def test_a_symlinked_database_is_moved_aside_not_written(
    run_aicli: Any, server: Any, make_config: Any, isolate: Any, tmp_path: Path
) -> None:
    make_config()
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE mine (x)")
    con.close()
    before = other.read_bytes()
    entries = isolate.cache_dir / "entries"
    entries.mkdir(parents=True, mode=0o700)
    isolate.cache_dir.chmod(0o700)
    (entries / "cache.db").symlink_to(other)

    done = run_aicli("generate", PROMPT)
    assert done.exit_code == 0, done
    assert done.stdout == f"{PROMPT}\n"
    assert "symbolic link" in done.stderr
    assert other.read_bytes() == before
    assert run_aicli("generate", "--json", PROMPT).stdout.count('"cached": true') == 1
    assert run_aicli("cache", "clear", "--yes").exit_code == 0
    assert other.read_bytes() == before
    assert not list(isolate.cache_dir.glob("*.corrupt-*"))


def test_clear_removes_orphan_value_files_left_by_a_killed_writer(
    run_aicli: Any, server: Any, make_config: Any, isolate: Any, victim: Path
) -> None:
    make_config()
    _cached(run_aicli, isolate.cache_dir)
    entries = isolate.cache_dir / "entries"
    orphans = [entries / "aa" / "bb" / ("2" * 28 + ".val"), entries / "cc" / "dd" / "x.val"]
    for orphan in orphans:
        orphan.parent.mkdir(parents=True)
        orphan.touch()  # kill -9 between the file and its row leaves it empty
    (entries / "ee").symlink_to(victim.parent, target_is_directory=True)

    done = run_aicli("cache", "clear", "--yes")
    assert done.exit_code == 0, done
    assert not any(o.exists() for o in orphans)
    assert not (entries / "aa").exists() and not (entries / "cc").exists()
    assert sorted(p.name for p in entries.rglob("*.val")) == []
    _intact(victim)
    stats = json.loads(run_aicli("cache", "stats", "--json").stdout)
    assert stats["entries"] == 0


def test_a_small_size_limit_never_evicts_the_entry_just_written(
    run_aicli: Any, server: Any, make_config: Any
) -> None:
    make_config(cache={"size_limit_mb": 1})
    server.set_answer("*", "z" * 600_000)  # two answers do not fit in 1 MB, one does
    for prompt in ("first", "second"):
        assert run_aicli("generate", prompt).exit_code == 0
        again = json.loads(run_aicli("generate", "--json", prompt).stdout)
        assert again["cached"] is True, prompt
    assert len(server.requests) == 2
    first = json.loads(run_aicli("generate", "--json", "first").stdout)
    assert first["cached"] is False  # the older one made room


def test_an_answer_larger_than_the_size_limit_is_printed_not_cached(
    run_aicli: Any, server: Any, make_config: Any
) -> None:
    make_config(cache={"size_limit_mb": 1})
    server.set_answer("*", "y" * 1_100_000)
    done = run_aicli("generate", "big")
    assert done.exit_code == 0, done
    assert done.stdout == "y" * 1_100_000 + "\n"
    assert "not cached" in done.stderr
    assert json.loads(run_aicli("generate", "--json", "big").stdout)["cached"] is False


def test_a_hard_link_or_a_fifo_as_value_file_is_not_read(
    run_aicli: Any, server: Any, make_config: Any, isolate: Any, victim: Path
) -> None:
    make_config()
    db = _cached(run_aicli, isolate.cache_dir)
    folder = isolate.cache_dir / "entries" / "ab" / "cd"
    folder.mkdir(parents=True)
    linked = folder / ("3" * 28 + ".val")
    os.link(victim, linked)  # the same file as the user's, under a name the cache would use
    fifo = folder / ("4" * 28 + ".val")
    os.mkfifo(fifo)  # a read would block forever
    for name in (linked, fifo):
        _set_filenames(db, f"ab/cd/{name.name}")
        done = run_aicli("generate", PROMPT, timeout=30)
        assert done.exit_code == 0, done
        assert "SECRET" not in done.stdout and "unreadable" in done.stderr
    assert run_aicli("cache", "clear", "--yes").exit_code == 0
    _intact(victim)
