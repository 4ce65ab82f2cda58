"""The `aicli render` tests' fixture: `prompts` writes template files under a fresh prompts_dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Isolated


@pytest.fixture
def prompts(isolate: Isolated) -> Any:
    """write(relpath, text) under work/prompts, with work/aicli.yaml pointing prompts_dir at it."""
    root = isolate.work / "prompts"
    root.mkdir()
    (isolate.work / "aicli.yaml").write_text("prompts_dir: prompts\n", encoding="utf-8")

    def write(rel: str, text: str) -> Path:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    write.root = root  # type: ignore[attr-defined]
    return write
