"""What a new user meets first: the distribution's name in every install hint, the package's
declared dependencies (doctor without the test extra's httpx), and the top-level help."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomllib

from tests.helpers import REPO_ROOT, child_env, run_aicli

# ---- the name ---------------------------------------------------------------------------------


def test_one_constant_names_the_distribution_pyproject_declares() -> None:
    from aicli import DISTRIBUTION, install_hint

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == DISTRIBUTION == "aicli-prod"
    assert project["scripts"] == {"aicli": "aicli.__main__:main"}  # the command keeps its name
    hint = install_hint("serve")
    assert "pip install 'aicli-prod[serve]'" in hint and "pip install -e '.[serve]'" in hint


def test_no_install_hint_names_the_other_projects_distribution() -> None:
    """`aicli[...]` on the index installs an unrelated project: no hint may say it."""
    sources = [*(REPO_ROOT / "aicli").rglob("*.py"), *(REPO_ROOT / "aicli").glob("*.yaml")]
    sources += [REPO_ROOT / "config.example.yaml", REPO_ROOT / "aicli" / "defaults.json"]
    offenders = [
        f"{p.relative_to(REPO_ROOT)}:{n}"
        for p in sources
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"(?<![-\w])aicli\[", line)
    ]
    assert offenders == []


# ---- dependencies ------------------------------------------------------------------------------

# The test extra installs httpx; a plain `pip install -e .` does not (the SDK ships httpx2).
_WITHOUT_HTTPX = (
    "import sys; sys.modules['httpx'] = None; sys.argv = ['aicli', *sys.argv[1:]];"
    " from aicli.cli.app import main; main()"
)


def test_doctor_probes_endpoints_without_the_test_extras_httpx(make_config: Any) -> None:
    """The regression: `aicli doctor --json` was `unexpected ModuleNotFoundError: httpx`."""
    make_config()
    proc = subprocess.run(
        [sys.executable, "-c", _WITHOUT_HTTPX, "doctor", "--json"],
        capture_output=True, text=True, env=child_env(None), stdin=subprocess.DEVNULL,
        timeout=60,
    )  # fmt: skip
    assert "unexpected" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    # the fake server was reached and listed its models: the HTTP probe really ran
    assert checks["provider.fake.endpoint"]["status"] == "ok", checks
    assert checks["provider.fake.auth"]["status"] == "ok", checks


def test_every_import_in_the_package_is_declared() -> None:
    """deptry: no missing, transitive or test-only import in aicli/ (also run by .ci/run)."""
    deptry = Path(sys.executable).with_name("deptry")
    if not deptry.exists():
        pytest.fail("deptry is in the test extra: pip install -e '.[test]'")
    proc = subprocess.run(
        [str(deptry), "."], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---- help --------------------------------------------------------------------------------------


def test_top_level_help_lists_every_environment_variable_and_exit_code() -> None:
    result = run_aicli("--help")
    assert result.exit_code == 0
    env = result.stdout.split("Environment:")[1].split("Exit codes:")[0]
    for name in (
        "OPENAI_API_KEY", "OPENAI_BASE_URL", "AICLI_CONFIG", "AICLI_CACHE_BACKEND",
        "AICLI_CACHE_DIR", "AICLI_REDIS_URL", "AICLI_SERVE_TOKENS", "AICLI_PROGRESS_SECONDS",
        "AICLI_LOG_FORMAT", "NO_COLOR", "FORCE_COLOR", "XDG_CONFIG_HOME",
    ):  # fmt: skip
        assert re.search(rf"^ +{name} ", env, re.M), name
    codes = re.findall(r"^ +(\d+) ", result.stdout.split("Exit codes:")[1], re.M)
    assert codes == ["0", "1", "2", "3", "4", "130", "143"]


@pytest.mark.parametrize("args", [[], ["cache"], ["report"], ["config"]])
def test_no_command_prints_the_help_and_exits_0(args: list[str]) -> None:
    result = run_aicli(*args)
    assert result.exit_code == 0, result
    assert result.stdout.startswith(f"Usage: aicli {' '.join(args)}".rstrip())
    assert result.stderr == ""


@pytest.mark.parametrize("columns", ["60", "80", "100", "120"])
def test_no_number_wraps_inside_the_generate_help(columns: str) -> None:
    result = run_aicli("generate", "--help", env={"COLUMNS": columns})
    lines = result.stdout.splitlines()
    for above, below in itertools.pairwise(lines):
        broken = re.search(r"\d$", above) and re.match(r"\s*\d", below)
        assert not broken, f"{above!r} / {below!r}"
    assert "64-bit" in result.stdout


@pytest.mark.parametrize(
    ("seed", "code"), [("-9223372036854775808", 0), ("9223372036854775807", 0),
                       ("9223372036854775808", 2), ("-9223372036854775809", 2)],
)  # fmt: skip
def test_seed_range_is_still_checked(seed: str, code: int) -> None:
    result = run_aicli("generate", "-t", "echo", f"--seed={seed}", "hi")
    assert result.exit_code == code, result
    if code:
        assert "64-bit integer" in result.stderr and "Traceback" not in result.stderr


def test_a_broken_limit_is_said_once() -> None:
    prompts = REPO_ROOT / "prompts"
    cfg = Path.cwd() / "aicli.yaml"
    cfg.write_text(f"prompts_dir: {prompts}\n", encoding="utf-8")
    result = run_aicli("render", "summarize", "--var", "input=x", "--var", "bullets=21")
    assert result.exit_code == 2
    assert "variable 'bullets': 21 is greater than the maximum of 20\n" in result.stderr
    assert "(maximum" not in result.stderr


def _styled(stream: str) -> bool:
    return "\x1b[" in stream


@pytest.mark.parametrize(
    ("env", "coloured"),
    [
        ({"TERM": "dumb", "FORCE_COLOR": "1"}, True),
        ({"TERM": "dumb", "FORCE_COLOR": "3"}, True),
        ({"TERM": "xterm-256color", "FORCE_COLOR": "1"}, True),
        ({"TERM": "dumb", "FORCE_COLOR": "1", "NO_COLOR": "1"}, False),
        ({"TERM": "dumb"}, False),
    ],
)
def test_force_color_is_honoured_even_under_term_dumb(env: dict[str, str], coloured: bool) -> None:
    replay = str(REPO_ROOT / "prompts" / "recordings" / "shipped.jsonl")
    cfg = Path.cwd() / "aicli.yaml"
    cfg.write_text(f"prompts_dir: {REPO_ROOT / 'prompts'}\n", encoding="utf-8")
    result = run_aicli("test-prompts", "--replay", replay, env={"NO_COLOR": None, **env})
    assert result.exit_code == 0, result
    assert _styled(result.stdout) is coloured
    assert result.stdout.splitlines()[-1] == "18 passed, 0 failed"  # the last line stays plain
