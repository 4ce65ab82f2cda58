"""`aicli render` output: plain text, --json, --list, usage errors, no network imports."""

from __future__ import annotations

import json
import os
import sys

import pytest

from tests.cli.render.helpers import Prompts, fails, rendered, tpl
from tests.helpers import REPO_ROOT, cli


def test_plain_output_is_system_separator_prompt(prompts: Prompts) -> None:
    prompts("greet.yaml", tpl(system="You are {{ who }}'s helper.", template="Hi {{ who }}\n\n"))
    res = cli("render", "greet", "--var", "who=Ann")
    assert res.exit_code == 0 and res.stderr == ""
    assert res.stdout == "You are Ann's helper.\n---\nHi Ann\n"


def test_plain_output_without_system_is_just_the_prompt(prompts: Prompts) -> None:
    prompts("greet.yaml", tpl())
    assert cli("render", "greet", "--var", "who=Ann").stdout == "Hello Ann!\n"


def test_json_output_has_the_contract_fields(prompts: Prompts) -> None:
    prompts("greet.yaml", tpl(system="Sys"))
    out = rendered("greet", "--var", "who=Ann")
    assert set(out) == {"name", "version", "checksum", "system", "prompt"}
    assert out["system"] == "Sys" and out["prompt"] == "Hello Ann!"
    prompts("greet.yaml", tpl())
    assert rendered("greet", "--var", "who=Ann")["system"] is None


def test_list_plain_and_json(prompts: Prompts) -> None:
    prompts("a.yaml", tpl(description="Say hello", tier="economy"))
    prompts("b.yaml", tpl(version="1.1.0", description="Say hello again"))
    prompts("c.yaml", tpl(name="other", description="Other one"))
    res = cli("render", "--list")
    assert res.exit_code == 0
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "CHECKSUM", "TIER", "LOCK", "DESCRIPTION"]
    assert lines[1].split()[:2] == ["greet", "1.0.0"] and "Say hello" in lines[1]
    assert "economy" in lines[1] and "new" in lines[1]
    assert lines[3].split()[0] == "other"
    data = json.loads(cli("render", "--list", "--json").stdout)
    assert [(t["name"], t["version"]) for t in data] == [
        ("greet", "1.0.0"), ("greet", "1.1.0"), ("other", "1.0.0"),
    ]  # fmt: skip
    assert {"name", "version", "checksum", "tier", "description"} <= set(data[0])
    only = json.loads(cli("render", "--list", "other", "--json").stdout)
    assert [t["name"] for t in only] == ["other"]


def test_list_with_no_templates(prompts: Prompts) -> None:
    res = cli("render", "--list")
    assert res.exit_code == 0 and res.stdout == "" and "no templates" in res.stderr
    assert json.loads(cli("render", "--list", "--json").stdout) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "missing NAME"),
        (["--list", "--lock"], "exclude each other"),
        (["greet", "--lock"], "--lock takes no NAME"),
        (["--list", "--var", "a=b"], "only apply when rendering"),
    ],
)
def test_usage_errors(prompts: Prompts, args: list[str], expected: str) -> None:
    assert expected in fails(*args)


def test_render_does_not_import_network_or_sdk_modules(prompts: Prompts) -> None:
    prompts("greet.yaml", tpl())
    code = (
        "import sys\n"
        "from aicli.cli.app import app\n"
        "try:\n"
        "    app(['render', 'greet', '--var', 'who=x'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('openai', 'httpx', 'httpx2') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=60,
    )
    assert "Hello x!" in proc.stdout and "HEAVY []" in proc.stdout, proc.stdout + proc.stderr
