"""The hard cost cap (issue 9, item 8): a server that counts one token per character (CJK text)
cannot push spending past --max-cost, for one call or for a concurrent suite. Spending is
summed from the usage the test server reported, not from what aicli says it spent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.test_prompts.helpers import last_line, write

PRICE = {"input_per_1m": 100.0, "output_per_1m": 100.0}  # $0.0001 a token either way
CJK = "漢字かな交じり文の試験です"  # 13 characters, 39 UTF-8 bytes


def spent(server: Any) -> float:
    """What the server billed: the usage it reported for every answer, at PRICE."""
    tokens = sum(r["usage"]["total_tokens"] for r in server.requests if "usage" in r)
    return tokens * PRICE["input_per_1m"] / 1_000_000


def cjk_config(make_config: Any, server: Any, max_tokens: int) -> None:
    server.tokens_per_char = 1.0
    make_config(
        defaults={"max_tokens": max_tokens},
        tiers={"standard": {"price": PRICE, "fallback": []}},
    )


def test_generate_never_spends_past_the_cap(cli: Any, server: Any, make_config: Any) -> None:
    # 260 characters in, 100 out: $0.036 real. The old 3-characters-a-token guess reserved
    # $0.019, under a $0.03 cap, and the call spent $0.036 with exit 0.
    cjk_config(make_config, server, max_tokens=100)
    result = cli("generate", "--max-cost", "0.03", CJK * 20)
    assert result.exit_code == 4, result
    assert "budget" in result.stderr and result.stdout == ""
    assert server.requests == []  # refused before anything was sent
    result = cli("generate", "--json", "--max-cost", "0.2", CJK * 20)
    assert result.exit_code == 0, result
    assert abs(json.loads(result.stdout)["cost_usd"] - spent(server)) < 1e-9
    assert spent(server) <= 0.2
    assert server.requests[0]["body"]["max_tokens"] == 100


def test_max_tokens_is_always_sent(cli: Any, server: Any, make_config: Any) -> None:
    make_config(defaults={"max_tokens": None})
    assert cli("generate", "hi").exit_code == 0
    assert server.requests[0]["body"]["max_tokens"] == 4096


def test_a_concurrent_suite_never_spends_past_the_cap(
    cli: Any, server: Any, make_config: Any
) -> None:
    # 16 cases of 300 characters: $0.035 each; -j 8 with a $0.10 cap spent $0.27 before
    cjk_config(make_config, server, max_tokens=50)
    cases = "".join(
        f"  - {{name: c{i:02d}, vars: {{i: {i}}}, assert: [{{type: contains, value: 漢}}]}}\n"
        for i in range(16)
    )
    write("prompts/cjk.test.yaml", f"suite: cjk\nprompt: '{{{{ i }}}}{CJK * 23}'\ncases:\n{cases}")
    result = cli("test-prompts", "-j", "8", "--max-cost", "0.10", "--no-cache", "-o", "r.json")
    assert result.exit_code == 4, result
    assert "budget reached" in result.stderr
    assert 0 < spent(server) <= 0.10
    data = json.loads(Path("r.json").read_text())
    statuses = [r["status"] for r in data["results"]]
    assert statuses.count("passed") == len(server.requests) and "skipped" in statuses
    skipped = [r["reason"] for r in data["results"] if r["status"] == "skipped"]
    assert all(reason.startswith("budget") for reason in skipped)
    assert abs(data["summary"]["cost_usd"] - spent(server)) < 1e-9
    assert last_line(result.stdout).endswith("skipped")


def test_usage_reported_over_the_bound_is_counted_and_stops_spending(
    cli: Any, server: Any, make_config: Any
) -> None:
    cjk_config(make_config, server, max_tokens=10)
    server.usage_override = {"prompt_tokens": 5000, "completion_tokens": 10, "total_tokens": 5010}
    result = cli("generate", "--max-cost", "0.10", "hello")
    assert result.exit_code == 4, result
    assert result.stdout == "hello\n"  # paid for: printed, never thrown away
    assert "reported usage" in result.stderr and "$0.501," in result.stderr

    write(
        "prompts/m.test.yaml",
        "suite: m\nprompt: 'n {{ i }}'\ncases:\n"
        + "".join(f"  - {{name: c{i}, vars: {{i: {i}}}, assert: [{{type: contains, value: n}}]}}\n"
                  for i in range(4)),
    )  # fmt: skip
    server.reset()
    server.tokens_per_char = 1.0
    server.usage_override = {"prompt_tokens": 5000, "completion_tokens": 10, "total_tokens": 5010}
    result = cli("test-prompts", "-j", "1", "--max-cost", "0.10", "--no-cache")
    assert result.exit_code == 4, result
    assert len(server.requests) == 1  # the overrun is counted and nothing more is sent
    assert last_line(result.stdout) == "1 passed, 0 failed, 3 skipped"


def test_negative_usage_is_no_refund(cli: Any, server: Any, make_config: Any) -> None:
    # A server reporting negative tokens would have lowered the amount spent, without limit.
    cjk_config(make_config, server, max_tokens=10)
    server.usage_override = {"prompt_tokens": -(10**6), "completion_tokens": 5, "total_tokens": 0}
    write(
        "prompts/m.test.yaml",
        "suite: m\nprompt: 'n {{ i }}'\ncases:\n"
        + "".join(f"  - {{name: c{i}, vars: {{i: {i}}}, assert: [{{type: contains, value: n}}]}}\n"
                  for i in range(30)),
    )  # fmt: skip
    result = cli("test-prompts", "-j", "4", "--max-cost", "0.02", "--no-cache")
    assert result.exit_code == 4, result
    # each call is charged its whole bound, about $0.003 (29 tokens): at most 6 fit in $0.02
    assert 0 < len(server.requests) <= 6
    assert "negative token counts" in result.stderr
