"""`aicli test-prompts` budget (exit 4), redaction and --no-redact, verbosity of big runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.test_prompts.helpers import last_line, many_cases, write


def test_budget_reached_is_exit_4(cli: Any, server: Any, make_config: Any) -> None:
    # each call reserves its worst case (150 tokens out: $0.00009) and spends about $0.00006
    make_config(defaults={"max_tokens": 150}, tiers={"standard": {"fallback": []}})
    write("prompts/m.test.yaml", many_cases(6))
    server.set_answer("*", lambda b: b["messages"][-1]["content"] + " " + "x" * 400)
    result = cli("test-prompts", "--max-cost", "0.0001", "-j", "1", "-o", "r.json")
    assert result.exit_code == 4, result
    data = json.loads(Path("r.json").read_text())
    statuses = [r["status"] for r in data["results"]]
    assert "passed" in statuses and "skipped" in statuses
    assert statuses.count("passed") == len(server.requests) < 6
    skipped = [r["reason"] for r in data["results"] if r["status"] == "skipped"]
    assert all(reason.startswith("budget") for reason in skipped)
    assert data["summary"]["cost_usd"] <= 0.0001
    assert "budget" in result.stderr
    assert last_line(result.stdout).endswith("skipped")


def test_redaction_and_no_redact(cli: Any, server: Any, make_config: Any) -> None:
    make_config()
    write(
        "prompts/e.test.yaml",
        """\
        suite: e
        prompt: "Reply to {{ who }}"
        cases:
          - name: mail
            vars: {who: ada@example.com}
            assert: [{type: contains, value: ada@example.com}]
        """,
    )
    assert cli("test-prompts", "--no-cache").exit_code == 0
    assert server.requests[-1]["messages"][-1]["content"] == "Reply to [EMAIL_1]"
    assert cli("test-prompts", "--no-cache", "--no-redact").exit_code == 0
    assert server.requests[-1]["messages"][-1]["content"] == "Reply to ada@example.com"


def test_passed_rows_of_big_runs_need_verbose(cli: Any, make_config: Any) -> None:
    make_config()
    write("prompts/m.test.yaml", many_cases(51, tier="echo"))
    quiet = cli("test-prompts")
    assert quiet.exit_code == 0, quiet
    assert "(51 passed results not listed; -v lists them)" in quiet.stdout
    assert "c007" not in quiet.stdout
    loud = cli("test-prompts", "-v")
    assert "c007" in loud.stdout and last_line(loud.stdout) == "51 passed, 0 failed"
