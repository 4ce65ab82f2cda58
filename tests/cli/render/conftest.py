"""The `aicli render` tests' fixture: `prompts` writes template files under a fresh prompts_dir."""

from __future__ import annotations

import pytest

from tests.cli.render.helpers import Prompts
from tests.helpers import Isolated


@pytest.fixture
def prompts(isolate: Isolated) -> Prompts:
    """prompts(relpath, text) writes under work/prompts; work/aicli.yaml sets prompts_dir to it."""
    root = isolate.work / "prompts"
    root.mkdir()
    (isolate.work / "aicli.yaml").write_text("prompts_dir: prompts\n", encoding="utf-8")
    return Prompts(root)
