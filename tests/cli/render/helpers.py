"""What the `aicli render` tests share: a template file's text, render expecting JSON, expecting
exit 2."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import cli


@dataclass
class Prompts:
    """The `prompts` fixture: prompts(relpath, text) writes a file under `root` and returns it."""

    root: Path

    def __call__(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path


def tpl(
    name: str = "greet",
    version: str = "1.0.0",
    template: str = "Hello {{ who }}!",
    variables: dict[str, Any] | None = None,
    **extra: Any,
) -> str:
    data: dict[str, Any] = {"name": name, "version": version, "template": template, **extra}
    data["variables"] = {"who": {"type": "string"}} if variables is None else variables
    return yaml.safe_dump(data, sort_keys=False)


def rendered(*args: str, input: str | None = None) -> dict[str, Any]:
    res = cli("render", *args, "--json", input=input)
    assert res.exit_code == 0, res
    return json.loads(res.stdout)  # type: ignore[no-any-return]


def fails(*args: str, input: str | None = None) -> str:
    """Run `aicli render ARGS`, expect exit 2 with nothing on stdout; return stderr."""
    res = cli("render", *args, input=input)
    assert res.exit_code == 2, res
    assert res.stdout == "", res
    assert res.stderr.startswith("aicli: error: "), res
    assert "Traceback" not in res.stderr
    return res.stderr
