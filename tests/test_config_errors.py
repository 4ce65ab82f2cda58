"""Config errors as a new user meets them: the first mistake in reading order, its key path, and
the closest name ("did you mean"). Through the CLI: one `aicli: error:` line, exit 2."""

from __future__ import annotations

from typing import Any

import pytest

CASES = [
    # (file, what the error line must say, what its hint must say)
    (
        "tiers: {premium: {fallback: standrad}}\n",
        "aicli.yaml: tiers.premium.fallback: unknown tier 'standrad' (tiers: premium);"
        " did you mean 'standard'?",
        "'standard' is a built-in tier, but a file with `tiers:` replaces all the built-in tiers",
    ),
    (
        "tiers: {premium: {model: x, provider: opnai}}\n",
        "tiers.premium.provider: unknown provider 'opnai' (providers: echo, openai);"
        " did you mean 'openai'?",
        "define it under `providers:`",
    ),
    (
        "tiers: {a: {model: m, fallback: b}, b2: {model: m}}\ndefault_tier: a\n",
        "tiers.a.fallback: unknown tier 'b' (tiers: a, b2); did you mean 'b2'?",
        "aicli config show --defaults",
    ),
    (  # file order: the fallback is written before default_tier
        "tiers: {a: {model: m, fallback: zz}}\ndefault_tier: nope\n",
        "tiers.a.fallback: unknown tier 'zz'",
        "aicli config show --defaults",
    ),
    (
        "default_tier: nope\ntiers: {a: {model: m, fallback: zz}}\n",
        "default_tier: unknown tier 'nope'",
        "aicli config show --defaults",
    ),
    (  # a schema mistake written before a reference mistake is reported first
        "defaults: {timeout_seconds: fast}\ntiers: {a: {model: m, fallback: zz}}\n",
        "defaults.timeout_seconds:",
        "aicli config show --defaults",
    ),
    (  # ... and after it, second
        "tiers: {a: {model: m, fallback: zz}}\ndefaults: {timeout_seconds: fast}\n",
        "tiers.a.fallback: unknown tier 'zz'",
        "aicli config show --defaults",
    ),
    (
        "tiers: {premium: {model: x}}\n",
        "default_tier: not set, and the default 'standard' is not one of this file's tiers"
        " (premium)",
        "add `default_tier: premium`",
    ),
    (
        "defualt_tier: echo\n",
        "defualt_tier: unknown key (expected one of: budget, cache, cooldown, default_tier,",
        "aicli config show --defaults",
    ),
    (
        "tiers: {a: {model: m, fallbak: a}}\ndefault_tier: a\n",
        "tiers.a.fallbak: unknown key (expected one of: batch_price, cache_ttl, fallback,",
        "aicli config show --defaults",
    ),
]


@pytest.mark.parametrize(("text", "message", "hint"), CASES)
def test_first_mistake_in_reading_order(cli: Any, text: str, message: str, hint: str) -> None:
    with open("aicli.yaml", "w", encoding="utf-8") as f:
        f.write(text)
    result = cli("generate", "-t", "echo", "hi")
    assert result.exit_code == 2, result
    first, second = result.stderr.splitlines()[:2]
    assert first.startswith("aicli: error: aicli.yaml: ")
    assert message in first, first
    assert second.startswith("  hint: ") and hint in second, second


def test_did_you_mean_for_a_tier_flag(cli: Any) -> None:
    result = cli("generate", "-t", "standrd", "hi")
    assert result.exit_code == 2
    assert "did you mean 'standard'?" in result.stderr


def test_the_hint_points_at_something_a_pip_user_has(cli: Any) -> None:
    with open("aicli.yaml", "w", encoding="utf-8") as f:
        f.write("colour: blue\n")
    result = cli("generate", "hi")
    assert "config.example.yaml" not in result.stderr
    assert "aicli config show --defaults" in result.stderr
    shown = cli("config", "show", "--defaults")
    assert shown.exit_code == 0 and "default_tier: standard" in shown.stdout
