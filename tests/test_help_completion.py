"""First run: root --help (getting started, environment, exit codes), whole command summaries,
a prompt where a command was expected, the docs' config example, and shell completion
(Typer's scripts for bash, zsh and fish; aicli's callbacks through the `_AICLI_COMPLETE` protocol).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import Isolated

REPO = Path(__file__).resolve().parent.parent
NO_DETECT = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}


def test_root_help_has_getting_started_environment_and_exit_codes(run_aicli: Any) -> None:
    result = run_aicli("--help", env={"COLUMNS": "100"})
    assert result.exit_code == 0
    text = result.stdout
    started = text.split("Getting started:")[1].split("Environment:")[0]
    assert len(re.findall(r"^\s+(?:export .*; )?aicli ", started, re.M)) == 3
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AICLI_CONFIG", "AICLI_LOG_FORMAT"):
        assert name in text
    codes = text.split("Exit codes:")[1]
    for code in ("0", "1", "2", "3", "4", "130"):
        assert re.search(rf"^\s+{code}\s+\w", codes, re.M), code


def test_no_command_summary_is_cut_off() -> None:
    doc = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    listed = re.findall(r"^  ([a-z-]+)\s{2,}(.+)$", doc, re.M)
    assert len(listed) >= 10
    for name, summary in listed:
        if name.startswith("-"):
            continue
        assert not summary.endswith("..."), f"{name}: {summary}"


def test_placeholders_read_as_words() -> None:
    doc = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    for python_type in ("INTEGER", "FLOAT", "BOOLEAN", "<bool>", "<int>", "<float>", "<text>"):
        assert python_type not in doc
    assert "Usage: aicli generate [OPTIONS] [PROMPT]" in doc
    assert "Usage: aicli test-prompts [OPTIONS] [PATH]..." in doc


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["what is 2+2"], 'did you mean: aicli generate "what is 2+2"'),
        (["what", "is", "2+2"], 'did you mean: aicli generate "what is 2+2"'),
        (["genrate", "hello"], "did you mean: aicli generate"),
    ],
)
def test_a_prompt_where_a_command_was_expected(cli: Any, args: list[str], hint: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == f"aicli: error: no command named {args[0]!r}"
    assert lines[1] == f"  hint: {hint}"


def test_docs_config_example_is_the_built_in_defaults() -> None:
    page = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = page.split("# Configuration", 1)[1]
    example = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    defaults = yaml.safe_load((REPO / "aicli" / "defaults.yaml").read_text(encoding="utf-8"))
    for key in ("default_tier", "prompts_dir", "providers", "defaults", "tiers"):
        assert example[key] == defaults[key], key


# ---- completion -------------------------------------------------------------------------------

MARKERS = {
    "bash": "complete -o default -F _aicli_completion aicli",
    "zsh": "#compdef aicli",
    "fish": "complete --command aicli",
}


@pytest.mark.parametrize("shell", sorted(MARKERS))
def test_completion_scripts_for_each_shell(run_aicli: Any, shell: str, isolate: Isolated) -> None:
    shown = run_aicli("--show-completion", shell, env=NO_DETECT)
    assert shown.exit_code == 0, shown
    assert MARKERS[shell] in shown.stdout and "_AICLI_COMPLETE" in shown.stdout
    installed = run_aicli("--install-completion", shell, env=NO_DETECT)
    assert installed.exit_code == 0, installed
    written = [p for p in isolate.home.rglob("*") if p.is_file()]
    assert any("_AICLI_COMPLETE" in p.read_text() for p in written), written


def complete(run_aicli: Any, words: str) -> list[str]:
    """What bash would offer for the last word of `words` (the `_AICLI_COMPLETE` protocol)."""
    parts = words.split(" ")
    env = {
        "_AICLI_COMPLETE": "complete_bash",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(parts) - 1),
    }
    result = run_aicli(env=env)
    assert result.exit_code == 0, result
    assert result.stderr == ""
    return result.stdout.split()


def test_completes_tiers_templates_and_suites(run_aicli: Any, make_config: Any) -> None:
    make_config()
    prompts = Path("prompts")
    (prompts / "ci").mkdir(parents=True)
    for name in ("greet", "grade"):
        (prompts / f"{name}.yaml").write_text(
            f"name: {name}\nversion: 1.0.0\ntemplate: Hi\n", encoding="utf-8"
        )
    (prompts / "ci" / "smoke.test.yaml").write_text(
        "suite: smoke\nprompt: hi\ncases: [{name: a}]\n", encoding="utf-8"
    )
    (prompts / "broken.yaml").write_text("name: [unclosed\n", encoding="utf-8")
    assert complete(run_aicli, "aicli generate -t ") == ["premium", "standard", "economy", "echo"]
    assert complete(run_aicli, "aicli generate -t ec") == ["economy", "echo"]
    assert complete(run_aicli, "aicli test-prompts -t p") == ["premium"]
    assert complete(run_aicli, "aicli generate -T gr") == ["grade", "greet"]
    assert complete(run_aicli, "aicli render gre") == ["greet"]
    assert complete(run_aicli, "aicli render greet@") == ["greet@1.0.0"]
    assert complete(run_aicli, "aicli test-prompts ") == [
        "prompts/",
        "prompts/ci/",
        "prompts/ci/smoke.test.yaml",
    ]
    assert complete(run_aicli, "aicli te") == ["test-prompts"]


def test_completion_follows_config_and_survives_a_broken_one(
    run_aicli: Any, make_config: Any
) -> None:
    make_config("tiers: {solo: {model: m, provider: echo}}\ndefault_tier: solo\n", path="x.yaml")
    assert complete(run_aicli, "aicli --config x.yaml generate -t ") == ["solo"]
    assert complete(run_aicli, "aicli generate -c x.yaml -t ") == ["solo"]
    Path("aicli.yaml").write_text("tiers: [", encoding="utf-8")
    assert complete(run_aicli, "aicli generate -t ") == []
