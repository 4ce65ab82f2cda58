"""Every command's stdout going to a full disk is exit 2 and "cannot write the output", with
stdout block-buffered as in a clean environment (PYTHONUNBUFFERED unset): never Python's
"Exception ignored ... OSError" and exit 120. The CLI's everyday runs pass that way too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import child_env

pytestmark = pytest.mark.buffered


def _suite() -> Path:
    suite = Path("prompts") / "ok.test.yaml"
    suite.parent.mkdir(exist_ok=True)
    suite.write_text(
        "suite: ok\nprompt: hello\ntier: echo\ncases:\n"
        "  - name: one\n    assert: [{type: contains, value: hello}]\n"
    )
    (suite.parent / "t").mkdir(exist_ok=True)
    (suite.parent / "t" / "1.0.0.yaml").write_text("name: t\nversion: 1.0.0\ntemplate: hi\n")
    return suite


COMMANDS = [
    ("--version",),
    ("--help",),
    ("generate", "--help"),
    ("generate", "-t", "echo", "hi"),
    ("generate", "-t", "echo", "--json", "hi"),
    ("render", "--list"),
    ("render", "t"),
    ("tiers",),
    ("tiers", "--json"),
    ("config", "path"),
    ("config", "show"),
    ("cache", "stats", "--json"),
    ("test-prompts", "prompts/ok.test.yaml"),
    ("test-prompts", "--json", "prompts/ok.test.yaml"),
    ("report", "merge", "r.json"),
]


def _to_full(*args: str) -> subprocess.CompletedProcess[str]:
    env = child_env(None)
    assert "PYTHONUNBUFFERED" not in env
    with open("/dev/full", "w") as full:
        return subprocess.run(
            [sys.executable, "-m", "aicli", *args],
            stdin=subprocess.DEVNULL,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=os.getcwd(),
            timeout=60,
        )


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
def test_every_command_to_a_full_disk_is_exit_2(run_aicli: Any, make_config: Any) -> None:
    make_config()
    _suite()
    assert run_aicli("test-prompts", "-o", "r.json", "prompts/ok.test.yaml").exit_code == 0
    for args in COMMANDS:
        done = _to_full(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("aicli: error: cannot write the output") == 1, (args, done.stderr)
        assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr


def test_the_cli_works_with_stdout_block_buffered(run_aicli: Any, make_config: Any) -> None:
    make_config()
    _suite()
    version = run_aicli("--version")
    assert version.exit_code == 0 and version.stdout.startswith("aicli "), version
    done = run_aicli("generate", "-t", "echo", "--json", "hi")
    assert done.exit_code == 0 and json.loads(done.stdout)["content"] == "hi", done
    ran = run_aicli("test-prompts", "-o", "r.json", "prompts/ok.test.yaml")
    assert ran.exit_code == 0 and "1 passed" in ran.stdout, ran
    piped = subprocess.run(  # a reader that goes away early is no error
        f"{sys.executable} -m aicli --help | head -c 1",
        shell=True,
        capture_output=True,
        text=True,
        env=child_env(None),
        timeout=60,
    )
    assert piped.returncode == 0 and piped.stderr == "", piped
