"""The prompts shipped in the repository render, and match the committed lock."""

from __future__ import annotations

import pytest

from tests.cli.render.helpers import rendered
from tests.helpers import REPO_ROOT, Isolated

SHIPPED = REPO_ROOT / "prompts"
SAMPLES: dict[str, list[str]] = {
    "extraction@1.1.0": [
        "--var", "text=Apple Inc., based in Cupertino, is a technology company.",
        "--var", 'fields=[{"name": "company", "description": "Company name"}]',
    ],
    "extraction@1.2.0": [
        "--var", "text=Apple Inc., based in Cupertino, is a technology company.",
        "--var", 'fields=[{"name": "company", "description": "Company name"},'
        ' {"name": "founded", "description": "Year founded", "type": "integer"}]',
    ],
    "summarize": ["--var", "bullets=2", "--var", "audience=executives"],
    "classify": ["--var", "text=The app crashes on start", "--var", 'labels=["bug", "feature"]'],
    "commit-message": ["--var", "style=plain"],
}  # fmt: skip
STDIN = {"summarize": "Revenue rose 12% in Q3.", "commit-message": "diff --git a/x b/x\n+hi\n"}


@pytest.fixture
def shipped(isolate: Isolated) -> None:
    (isolate.work / "aicli.yaml").write_text(f"prompts_dir: {SHIPPED.as_posix()}\n", "utf-8")


@pytest.mark.parametrize("ref", sorted(SAMPLES))
def test_shipped_prompts_render_with_sample_vars(shipped: None, ref: str) -> None:
    out = rendered(ref, *SAMPLES[ref], input=STDIN.get(ref))
    assert out["system"] and out["prompt"] and len(out["checksum"]) == 12
    assert "{{" not in out["prompt"] and "{%" not in out["prompt"]
    if ref in STDIN:
        assert STDIN[ref].strip() in out["prompt"]


def test_shipped_prompts_match_the_committed_lock() -> None:
    from aicli.templates import TemplateStore

    store = TemplateStore(SHIPPED)
    templates = store.all()  # raises on a changed locked version
    names = {t.name for t in templates}
    assert {"extraction", "summarize", "classify", "commit-message"} <= names
    assert {t.version for t in templates if t.name == "extraction"} >= {"1.1.0", "1.2.0"}
    assert set(store.lock_status().values()) == {"locked"}, store.lock_status()
    assert all(t.description for t in templates)


def test_extraction_versions_differ(shipped: None) -> None:
    args = SAMPLES["extraction@1.1.0"]
    old, new = rendered("extraction@1.1.0", *args), rendered("extraction@1.2.0", *args)
    assert old["checksum"] != new["checksum"] and old["prompt"] != new["prompt"]
    assert rendered("extraction", *args)["version"] == "1.2.0"
