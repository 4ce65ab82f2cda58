"""Suite and case names, reasons and excerpts from suites and reports are one printable line in
the terminal, Markdown and JUnit: no escape sequence reaches a terminal, and no line a GitHub
runner would execute as a workflow command (`::error::`, `##[error]`) reaches a CI log."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

SUITE = "inj\x1b]0;TITLE\x07\u202e"
CASE = "c\n::error::from-suite\x1b[2J"
REASON = "::error file=x::pwned\n##[warning]legacy\r\n::add-mask::x\x1b[31m"
RAW = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
COMMAND = re.compile(r"^\s*(::[a-z-]+.*::|##\[)", re.IGNORECASE | re.MULTILINE)


def _safe(text: str, where: str) -> None:
    assert not RAW.search(text), (where, text)
    assert not COMMAND.search(text), (where, text)


def _suite() -> Path:
    suite = Path("prompts") / "inj.test.yaml"
    suite.parent.mkdir(exist_ok=True)
    suite.write_text(
        f"suite: {json.dumps(SUITE)}\nprompt: '::error::echoed {{{{ w }}}}'\ntier: echo\ncases:\n"
        f'  - name: {json.dumps(CASE)}\n    vars: {{w: "x\\n::warning::y"}}\n'
        f"    assert: [{{type: equals, value: {json.dumps(REASON)}}}]\n"
    )
    return suite


@pytest.mark.parametrize("columns", ["200", "40"])
def test_suite_text_reaches_no_terminal_or_ci_log_raw(
    run_aicli: Any, make_config: Any, tmp_path: Path, columns: str
) -> None:
    make_config()
    outs = {ext: tmp_path / f"r.{ext}" for ext in ("md", "xml", "json")}
    args = [a for out in outs.values() for a in ("-o", str(out))]
    done = run_aicli("test-prompts", *args, str(_suite()), env={"COLUMNS": columns})
    assert done.exit_code == 1, done
    assert "from-suite" in done.stdout  # shown, as text
    _safe(done.stdout, "stdout")
    _safe(done.stderr, "stderr")
    for ext in ("md", "xml"):
        _safe(outs[ext].read_text(), ext)
    # report merge shows a doctored report's texts the same way
    data = json.loads(outs["json"].read_text())
    for r in data["results"]:
        r["reason"] = REASON
        r["tier"] = "echo\n::error::tier"
    outs["json"].write_text(json.dumps(data))
    merged = run_aicli("report", "merge", str(outs["json"]), "-o", str(tmp_path / "m.md"),
                       env={"COLUMNS": columns})  # fmt: skip
    assert merged.exit_code == 1, merged
    assert "pwned" in merged.stdout
    _safe(merged.stdout, "merge stdout")
    _safe(merged.stderr, "merge stderr")
    _safe((tmp_path / "m.md").read_text(), "merged md")
