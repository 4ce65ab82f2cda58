"""`aicli test-prompts` and the response cache: reuse, --no-cache, --cache-only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.test_prompts.helpers import write


def test_cache_reuse_no_cache_and_cache_only(cli: Any, people: Any) -> None:
    assert cli("test-prompts").exit_code == 0
    assert len(people.requests) == 2
    hit = cli("test-prompts", "-o", "hit.json")
    assert hit.exit_code == 0 and len(people.requests) == 2
    assert json.loads(Path("hit.json").read_text())["summary"]["cache_hits"] == 2
    only = cli("test-prompts", "--cache-only")
    assert only.exit_code == 0 and len(people.requests) == 2
    fresh = cli("test-prompts", "--no-cache", "-o", "fresh.json")
    assert fresh.exit_code == 0 and len(people.requests) == 4
    assert json.loads(Path("fresh.json").read_text())["summary"]["cache_hits"] == 0
    write("prompts/new.test.yaml", "suite: new\nprompt: brand new\ncases: [{name: n}]\n")
    miss = cli("test-prompts", "--cache-only", "-k", "new/")
    assert miss.exit_code == 1 and "api_error" in miss.stdout
    assert "not in the cache" in miss.stdout and len(people.requests) == 4
    both = cli("test-prompts", "--no-cache", "--cache-only")
    assert both.exit_code == 2 and "exclude each other" in both.stderr
