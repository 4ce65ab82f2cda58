"""Sandbox arithmetic is bounded: no big-integer op can outlast the render time limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

SQUARES = "{% set x = 3**30000 %}{% set y = x*x %}{% set z = y*y %}{{ (z*z*z*z) % 10 }}"


def template(source: str) -> None:
    Path("aicli.yaml").write_text("prompts_dir: prompts\n")
    Path("prompts").mkdir(exist_ok=True)
    data = {"name": "t", "version": "1.0.0", "template": source, "variables": {}}
    Path("prompts/t.yaml").write_text(yaml.safe_dump(data))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (SQUARES, "a product larger than 100000 bits"),
        (
            "{% set ns = namespace(x=3) %}{% for i in range(40) %}"
            "{% set ns.x = ns.x * ns.x + 1 %}{% endfor %}{{ ns.x % 7 }}",
            "larger than 100000 bits",
        ),
        ("{{ (1).to_bytes(2000000000, 'big') | length }}", "to_bytes() would build"),
        ("{{ 'ab' * 10**9 }}", "'*' would build"),
        ("{{ [0] * 10**10 }}", "'*' would build"),
        ("{{ 7 ** 1000000 }}", "a power too large"),
        ("{{ range(10**18) | length }}", "MAX_RANGE"),
    ],
)
def test_big_arithmetic_is_refused_before_it_runs(
    run_aicli: Any, source: str, message: str
) -> None:
    template(source)
    result = run_aicli("render", "t", timeout=60)  # on a regression: minutes, or gigabytes
    assert result.exit_code == 2, result
    assert result.stderr.startswith("aicli: error: ") and message in result.stderr, result
    assert "Traceback" not in result.stderr


def test_ordinary_arithmetic_still_works(cli: Any) -> None:
    template("{{ 7 * 6 }} {{ 2**64 }} {{ 10 // 3 }} {{ 10 / 4 }} {{ 5 - 7 }} {{ (3**300) % 1000 }}")
    result = cli("render", "t")
    assert result.exit_code == 0, result
    assert result.stdout.strip() == f"42 {2**64} 3 2.5 -2 {(3**300) % 1000}"
