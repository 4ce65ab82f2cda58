"""/metrics of a real `aicli serve` process: every family, and every label set the config makes
known, is there at zero before the first request, so alerts on them never see "no data"."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aicli.serve.metrics import FAILURE_KINDS
from tests.fake_openai import FakeOpenAI
from tests.helpers import TEST_KEY, TEST_KEY_ENV
from tests.serve_process import ServeProcess, base_env
from tests.test_serve import write_config

TIERS = ("premium", "standard", "economy", "echo")
FAMILIES = {
    "aicli_requests_total": "counter",
    "aicli_cache_hits_total": "counter",
    "aicli_cache_misses_total": "counter",
    "aicli_tokens_total": "counter",
    "aicli_cost_usd_total": "counter",
    "aicli_request_duration_seconds": "histogram",
    "aicli_fallbacks_total": "counter",
    "aicli_provider_errors_total": "counter",
    "aicli_inflight_requests": "gauge",
}


def samples(text: str) -> dict[tuple[str, str], float]:
    return {
        (s.name, json.dumps(s.labels, sort_keys=True)): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(got: dict[tuple[str, str], float], name: str, **labels: str) -> float | None:
    return got.get((name, json.dumps(labels, sort_keys=True)))


@pytest.mark.parametrize("workers", [1, 2])
def test_every_family_and_known_label_set_starts_at_zero(
    server: FakeOpenAI, tmp_path: Path, workers: int
) -> None:
    config = write_config(tmp_path / "cfg", server.base_url)
    env = base_env(tmp_path / "home")
    env[TEST_KEY_ENV] = TEST_KEY
    svc = ServeProcess(config, env, workers=workers, log_path=tmp_path / "serve.log").start()
    try:
        text = httpx.get(f"{svc.url}/metrics", timeout=30).text
        families = {f.name: f.type for f in text_string_to_metric_families(text)}
        for name, kind in FAMILIES.items():
            family = name.removesuffix("_total")  # the parser names counters without it
            assert families.get(family) == kind, (name, sorted(families))
        got = samples(text)
        for tier in TIERS:
            for name in ("aicli_fallbacks_total", "aicli_cache_hits_total",
                         "aicli_cache_misses_total", "aicli_cost_usd_total"):  # fmt: skip
                assert value(got, name, tier=tier) == 0, (name, tier)
            for kind in FAILURE_KINDS:
                assert value(got, "aicli_provider_errors_total", tier=tier, kind=kind) == 0
            for kind in ("prompt", "completion"):
                assert value(got, "aicli_tokens_total", tier=tier, kind=kind) == 0
            for endpoint in ("generate", "chat"):
                labels = {"endpoint": endpoint, "tier": tier, "status": "200"}
                assert value(got, "aicli_requests_total", **labels) == 0
        for endpoint in ("generate", "chat"):
            for cached in ("true", "false"):
                count = value(
                    got, "aicli_request_duration_seconds_count", endpoint=endpoint, cached=cached
                )
                assert count == 0, (endpoint, cached)
        assert value(got, "aicli_inflight_requests") == 0

        # the series that started at zero are the ones that move
        server.script("premium-model", ["500"])
        answer = httpx.post(
            f"{svc.url}/generate", json={"prompt": "hello", "tier": "premium"}, timeout=30
        )
        assert answer.status_code == 200 and answer.json()["fallback_used"], answer.text
        after = samples(httpx.get(f"{svc.url}/metrics", timeout=30).text)
        assert value(after, "aicli_fallbacks_total", tier="premium") == 1
        errors = value(after, "aicli_provider_errors_total", tier="premium", kind="server_error")
        assert errors == 1
        assert value(after, "aicli_fallbacks_total", tier="standard") == 0
    finally:
        assert svc.stop() == 0, svc.log()
