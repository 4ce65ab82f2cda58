"""The CLI's --max-cost under the money rules: amounts keep their significant digits, and a call
that timed out after it was sent counts its whole reservation (the provider may bill it)."""

from __future__ import annotations

from typing import Any

PRICE = {"input_per_1m": 100.0, "output_per_1m": 100.0}  # $0.0001 a token either way


def test_a_tiny_cap_is_shown_as_it_was_given(cli: Any, server: Any, make_config: Any) -> None:
    make_config(tiers={"standard": {"price": PRICE, "fallback": []}})
    result = cli("generate", "--max-cost", "0.0000001", "hello")
    assert result.exit_code == 4, result
    assert result.stderr.startswith("aicli: error: ") and "Traceback" not in result.stderr
    assert "over the $0.0000001 budget" in result.stderr  # was "$0.000000"
    assert server.requests == []


def test_a_timed_out_call_counts_its_reservation(cli: Any, server: Any, make_config: Any) -> None:
    make_config(
        defaults={"max_tokens": 10, "timeout_seconds": 0.5, "max_retries": 0},
        tiers={"standard": {"price": PRICE, "fallback": ["economy"]},
               "economy": {"price": PRICE}},
    )  # fmt: skip
    server.script("standard-model", ["delay:2"])  # answered (and billed) after we gave up
    # one call's worst case is $0.0031: the first call's timeout counts all of it, so the
    # fallback call no longer fits a $0.006 cap
    result = cli("generate", "--max-cost", "0.006", "hello")
    assert result.exit_code == 4, result
    assert "already spent" in result.stderr
    assert [r["model"] for r in server.requests] == ["standard-model"]
