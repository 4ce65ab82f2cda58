"""`aicli test-prompts` llm-rubric assertions graded by a grader tier."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.test_prompts.helpers import last_line, write


def test_llm_rubric_with_a_grader_tier(cli: Any, server: Any, make_config: Any) -> None:
    make_config(tiers={"grader": {"model": "grader-model", "provider": "fake"}})
    write(
        "prompts/r.test.yaml",
        """\
        suite: r
        prompt: "Tell me about {{ animal }}"
        cases:
          - name: cat
            vars: {animal: cats}
            assert: [{type: llm-rubric, value: Mentions whiskers}]
          - name: dog
            vars: {animal: dogs}
            assert: [{type: llm-rubric, value: Mentions whiskers}]
        """,
    )
    server.set_answer("standard-model", lambda b: f"{b['messages'][-1]['content']}: whiskers"
                      if "cats" in str(b) else "Dogs bark.")  # fmt: skip

    def verdict(body: dict[str, Any]) -> str:
        output = body["messages"][-1]["content"]
        ok = "whiskers" in output.split("</Output>")[0]
        why = "it mentions whiskers" if ok else "no whiskers anywhere"
        return json.dumps({"reason": why, "pass": ok, "score": 1.0 if ok else 0.1})

    server.set_answer("grader-model", verdict)
    result = cli("test-prompts", "-o", "r.json")
    assert result.exit_code == 1, result
    assert "no whiskers anywhere" in result.stdout  # the judge's reason is shown
    assert last_line(result.stdout) == "1 passed, 1 failed"
    graded = server.requests_for("grader-model")
    assert len(graded) == 2 and all(r["body"]["temperature"] == 0 for r in graded)
    data = json.loads(Path("r.json").read_text())
    cat = next(r for r in data["results"] if r["case"] == "cat")
    assert "it mentions whiskers" in cat["assertions"][0]["reason"]

    server.reset()
    server.set_answer("economy-model", lambda b: '{"pass": true, "score": 1, "reason": "fine"}')
    server.set_answer("standard-model", "Dogs bark.")
    forced = cli("test-prompts", "--grader", "economy", "--no-cache")
    assert forced.exit_code == 0, forced
    assert len(server.requests_for("economy-model")) == 2
    assert server.requests_for("grader-model") == []
