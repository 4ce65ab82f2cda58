"""The suites shipped in the repository replay green; the SDK loads only when needed."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_prompts.helpers import last_line, many_cases, write
from tests.helpers import REPO_ROOT, child_env


def test_shipped_suites_replay_green(
    run_aicli: Any, server: Any, isolate: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(REPO_ROOT)
    assert not (REPO_ROOT / "aicli.yaml").exists()
    xml, page = tmp_path / "report.xml", tmp_path / "report.html"
    result = run_aicli(
        "test-prompts", "--replay", "prompts/recordings/shipped.jsonl", "-o", xml, "-o", page
    )
    assert result.exit_code == 0, result
    assert last_line(result.stdout) == "18 passed, 0 failed"
    root = ET.parse(xml).getroot()
    assert (root.get("failures"), root.get("errors")) == ("0", "0")
    suites = {s.get("name", "").split(" ")[0] for s in root.iter("testsuite")}
    assert suites == {"extraction", "summarize", "classify", "commit-message"}
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert server.requests == []
    assert not isolate.cache_dir.exists()  # a replay never touches the cache


@pytest.mark.slow
def test_shipped_recording_matches_the_hand_written_answers() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "make_recording.py"), "--check"],
        capture_output=True, text=True, env=child_env(None), timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "up to date" in proc.stdout


def _imports_of(*args: str) -> list[str]:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "aicli", *args],
        capture_output=True, text=True, env=child_env(None), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()]


def test_the_sdk_is_loaded_up_front_only_when_every_case_calls_a_model(
    server: Any, make_config: Any
) -> None:
    make_config()
    write("prompts/many.test.yaml", many_cases(3))
    up_front = _imports_of("test-prompts", "--no-cache")
    assert up_front.index("openai") < up_front.index("aicli.engine")  # before the run starts
    assert len(server.requests) == 3
    lazily = _imports_of("test-prompts")  # cache misses: the first call loads it
    assert lazily.index("aicli.engine") < lazily.index("openai")
    assert len(server.requests) == 6
    assert "openai" not in _imports_of("test-prompts")  # all cache hits: never loaded
    assert "openai" not in _imports_of("test-prompts", "--no-cache", "-t", "echo")
    assert len(server.requests) == 6
