"""A full disk never costs an answer: cache write and counter failures are warnings.

Real error paths only: a tiny tmpfs filled to the last byte (needs root to mount), and, anywhere,
RLIMIT_FSIZE in the aicli subprocess (the kernel refuses to grow a file past the limit).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import child_env


def _fill(folder: Path) -> None:
    """Write to folder's file system until it is full (ENOSPC)."""
    with contextlib.suppress(OSError), (folder / "filler").open("wb") as fh:
        while True:
            fh.write(b"x" * 4096)
            fh.flush()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Any]:
    """mount(path, kb): a tmpfs of kb KiB at path, unmounted after the test."""
    mounted: list[Path] = []

    def mount(path: Path, kb: int) -> Path:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={kb}k,mode=0700", "tmpfs", str(path)],
            capture_output=True,
        )
        if done.returncode != 0:
            pytest.skip("mounting a tmpfs needs root; the RLIMIT_FSIZE tests cover the rest")
        mounted.append(path)
        return path

    try:
        yield mount
    finally:
        for path in reversed(mounted):
            subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_paid_answer_is_printed_when_the_cache_disk_is_full(
    run_aicli: Any, server: Any, make_config: Any, isolate: Any, tmpfs: Any
) -> None:
    make_config()
    cache = tmpfs(isolate.tmp / "small", 512) / "cache"
    env = {"AICLI_CACHE_DIR": str(cache)}
    assert run_aicli("generate", "first", env=env).exit_code == 0
    _fill(cache.parent)
    for args in (("generate", "second"), ("generate", "--refresh", "third")):
        done = run_aicli(*args, env=env)
        assert done.exit_code == 0, done
        assert done.stdout == f"{args[-1]}\n"
        assert done.stderr.count("aicli: warning:") == 1, done
        assert "carrying on without the cache" in done.stderr and "Traceback" not in done.stderr
    assert len(server.requests) == 3


def test_a_cache_hit_is_served_when_its_counters_cannot_be_written(
    run_aicli: Any, server: Any, make_config: Any, isolate: Any, tmpfs: Any
) -> None:
    make_config()
    assert run_aicli("generate", "hello").exit_code == 0
    counters = isolate.cache_dir / "counters"
    for item in counters.iterdir():
        item.unlink()
    tmpfs(counters, 256)
    assert run_aicli("cache", "stats").exit_code == 0  # a fresh counters store on the tmpfs
    _fill(counters)
    done = run_aicli("generate", "--json", "hello")
    assert done.exit_code == 0, done
    assert json.loads(done.stdout)["cached"] is True
    assert "could not update the cache counters" in done.stderr
    assert done.stderr.count("aicli: warning:") == 1
    assert len(server.requests) == 1


def _limited(limit: int) -> Any:
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill

    return preexec


@pytest.mark.parametrize("stream", ["--no-stream", "--stream"])
def test_a_paid_answer_is_printed_when_the_cache_cannot_grow(
    run_aicli: Any, server: Any, make_config: Any, stream: str
) -> None:
    make_config()
    assert run_aicli("generate", "fill the cache once").exit_code == 0  # its database exists
    answer = "a" * 200_000  # its value file would pass the 128 KiB file size limit
    server.set_answer("*", answer)
    server.chunk_size = 8192  # streamed well within timeout_seconds, a deadline for the whole
    done = subprocess.run(
        [sys.executable, "-m", "aicli", "generate", stream, "big answer"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=child_env(None),
        cwd=os.getcwd(),
        preexec_fn=_limited(128 * 1024),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == answer + "\n"
    assert "could not save the answer in the cache" in done.stderr
    assert "File too large" in done.stderr and "Traceback" not in done.stderr
    assert len(server.requests) == 2


def _suite() -> Path:
    suite = Path("prompts") / "disk.test.yaml"
    suite.parent.mkdir(exist_ok=True)
    suite.write_text(
        "suite: disk\nprompt: hello\ntier: echo\ncases:\n"
        "  - name: a\n    assert:\n      - {type: contains, value: hello}\n"
    )
    return suite


@pytest.mark.parametrize("output", ["--record rec.jsonl", "-o report.json", "-o report.xml"])
def test_a_recording_or_report_that_cannot_be_written_is_one_error_line(
    make_config: Any, output: str
) -> None:
    make_config()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "aicli",
            "test-prompts",
            "--no-cache",
            *output.split(),
            str(_suite()),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=child_env(None),
        cwd=os.getcwd(),
        preexec_fn=_limited(10),  # no file may grow past 10 bytes
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    target = output.split()[1]
    errors = [line for line in done.stderr.splitlines() if line.startswith("aicli: error:")]
    assert len(errors) == 1 and target in errors[0], done.stderr
    assert "File too large" in errors[0] and "bug" not in done.stderr
