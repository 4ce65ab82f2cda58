"""`aicli test-prompts` concurrency and Ctrl-C: cases overlap, reports stay valid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_prompts.helpers import last_line, many_cases, write
from tests.helpers import child_env


@pytest.mark.slow
def test_200_cases_really_overlap(cli: Any, server: Any, make_config: Any) -> None:
    make_config()
    write("prompts/m.test.yaml", many_cases(200))
    server.latency = 0.1
    result = cli("test-prompts", "-j", "16", "--no-cache")
    assert result.exit_code == 0, result
    assert last_line(result.stdout) == "200 passed, 0 failed"
    assert len(server.requests) == 200
    assert server.max_in_flight >= 8
    assert server.max_in_flight <= 16


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="needs SIGINT")
def test_ctrl_c_leaves_valid_reports(server: Any, make_config: Any) -> None:
    make_config()
    write("prompts/m.test.yaml", many_cases(40))
    server.latency = 0.4
    proc = subprocess.Popen(
        [sys.executable, "-m", "aicli", "test-prompts", "-j", "2", "--no-cache",
         "-o", "r.json", "-o", "r.xml", "-o", "r.jsonl", "-o", "r.html"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, env=child_env(None),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = Path("r.jsonl").read_text().splitlines() if Path("r.jsonl").exists() else []
            if len(done) >= 3:
                break
            time.sleep(0.05)
        else:
            pytest.fail("no results arrived")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (stdout, stderr)
    assert "interrupted" in stderr and "Traceback" not in stderr
    data = json.loads(Path("r.json").read_text())
    summary = data["summary"]
    assert summary["interrupted"] is True
    assert 3 <= summary["passed"] < 40
    assert summary["passed"] + summary["skipped"] == 40 == len(data["results"])
    root = ET.parse("r.xml").getroot()
    assert root.get("interrupted") == "true" and root.get("tests") == "40"
    assert len(Path("r.jsonl").read_text().splitlines()) == 40
    assert "<html" in Path("r.html").read_text()
    assert (
        last_line(stdout) == f"{summary['passed']} passed, 0 failed, {summary['skipped']} skipped"
    )
    assert len(server.requests) < 40
    # one line says how far it got, not a table row per unstarted case
    assert f"interrupted after {summary['passed']}/40: the reports hold" in stderr
    assert stdout.count("│ skipped") + stdout.count(" skipped ") <= 1
