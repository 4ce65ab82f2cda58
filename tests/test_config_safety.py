"""Config mistakes that would leak: a provider with no endpoint, a key pasted in the wrong form,
prices that are no numbers; and `-v` / `--json` report only the redaction that was done."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers import TEST_KEY, TEST_KEY_ENV, run_aicli

EMAIL = "jane.doe@example.com"


@pytest.mark.parametrize("base_url", [None, "", "   "], ids=["missing", "empty", "blank"])
@pytest.mark.parametrize("local", [True, False], ids=["local", "remote"])
def test_a_provider_must_say_where_it_goes(
    cli: Any, server: Any, make_config: Any, base_url: str | None, local: bool
) -> None:
    provider: dict[str, Any] = {"api_key_env": TEST_KEY_ENV, "local": local}
    if base_url is not None:
        provider["base_url"] = base_url
    make_config(providers={"near": provider}, tiers={"standard": {"provider": "near"}})
    done = cli("generate", f"mail {EMAIL}")
    assert done.exit_code == 2, done
    assert done.stderr.startswith("aicli: error: ")
    assert "providers.near.base_url: required" in done.stderr
    assert ("unredacted" in done.stderr) is local
    assert server.requests == []


def test_an_echo_provider_needs_no_url(cli: Any, make_config: Any) -> None:
    make_config(providers={"offline": {"type": "echo"}}, tiers={"echo": {"provider": "offline"}})
    assert cli("generate", "-t", "echo", "hi").stdout == "hi\n"


def _local_config(make_config: Any, server: Any) -> None:
    make_config(
        providers={"near": {"base_url": server.base_url, "local": True}},
        tiers={"standard": {"provider": "near", "fallback": []}},
    )


def test_a_local_tier_reports_no_redaction(cli: Any, server: Any, make_config: Any) -> None:
    _local_config(make_config, server)
    for _ in range(2):  # a fresh answer, then a cache hit
        done = cli("generate", "--json", f"mail {EMAIL}")
        assert done.exit_code == 0, done
        assert json.loads(done.stdout)["redactions"] == {}
    assert server.requests[0]["messages"][-1]["content"] == f"mail {EMAIL}"  # sent as written
    verbose = cli("generate", "-v", f"mail {EMAIL}")
    assert verbose.exit_code == 0, verbose
    assert "redacted" not in verbose.stderr
    # A remote tier still redacts, and says so.
    remote = cli("generate", "-t", "economy", "--json", f"mail {EMAIL}")
    assert json.loads(remote.stdout)["redactions"] == {"email": 1}


def _write(make_config: Any, server: Any, yaml_text: str) -> None:
    make_config(
        "providers:\n"
        f"  fake: {{base_url: '{server.base_url}', api_key_env: {yaml_text}}}\n"
        "tiers:\n  standard: {model: m, provider: fake}\n"
    )


DIGITS_KEY = "81726354908172635490"


@pytest.mark.parametrize(
    "pasted, secret",
    [
        (f"['{TEST_KEY}']", TEST_KEY),
        (f"{{k: '{TEST_KEY}'}}", TEST_KEY),
        (DIGITS_KEY, DIGITS_KEY),
        (f"[{DIGITS_KEY}]", DIGITS_KEY),
    ],
    ids=["list", "mapping", "digits", "list-of-digits"],
)
def test_a_key_pasted_into_api_key_env_in_any_form_is_never_echoed(
    server: Any, make_config: Any, pasted: str, secret: str
) -> None:
    _write(make_config, server, pasted)
    for debug in ((), ("--debug",)):
        done = run_aicli("generate", *debug, "hello")
        assert done.exit_code == 2, done
        assert "providers.fake.api_key_env" in done.stderr
        assert secret not in done.output and secret[-8:] not in done.output
    assert server.requests == []


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
@pytest.mark.parametrize(
    "where",
    [
        "tiers.standard.price.input_per_1m",
        "tiers.standard.price.output_per_1m",
        "budget.max_cost_usd",
        "defaults.timeout_seconds",
    ],
)
def test_prices_and_limits_must_be_finite(
    cli: Any, server: Any, make_config: Any, where: str, value: float
) -> None:
    override: dict[str, Any] = {}
    node = override
    *parents, leaf = where.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value  # written by yaml as .inf / -.inf / .nan
    make_config(**override)
    done = cli("generate", "--json", "hi")
    assert done.exit_code == 2, done
    assert where in done.stderr and "finite" in done.stderr
    assert "Infinity" not in done.stdout and "NaN" not in done.stdout
    assert server.requests == []


def test_an_invalid_base_url_is_refused_without_its_password(cli: Any, make_config: Any) -> None:
    make_config(providers={"fake": {"base_url": "http://u:hunter2hunter2pw@host:99999/v1"}})
    done = cli("generate", "hi")
    assert done.exit_code == 2, done
    assert "providers.fake.base_url" in done.stderr and "***@host:99999" in done.stderr
    assert "hunter2" not in done.output
