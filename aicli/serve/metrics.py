"""Prometheus metrics: SPEC's families with low-cardinality labels, correct with many workers.

With PROMETHEUS_MULTIPROC_DIR set (the runner sets a private one), every worker writes its
values there and /metrics sums all workers; without it (one process, tests), the app keeps its
own registry. Labels are tier, endpoint, status, cached and error kind: never a prompt, user,
token or request id.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from aicli.providers.base import ProviderFailure
from aicli.types import Result

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def _multiproc_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


FAILURE_KINDS = (
    "timeout",
    "connection",
    "malformed",
    "empty",
    "schema",
    "rate_limited",
    "auth",
    "server_error",
    "client_error",
)  # every value failure_kind gives: the `kind` label of aicli_provider_errors_total
MODEL_ENDPOINTS = ("generate", "chat")  # the endpoints a tier answers (the `endpoint` label)


def failure_kind(failure: ProviderFailure) -> str:
    status = failure.status
    if failure.kind != "status" or status is None:
        return failure.kind  # connection, timeout, malformed, empty, schema
    if status == 429:
        return "rate_limited"
    if status in (401, 403):
        return "auth"
    return "server_error" if status >= 500 else "client_error"


class Metrics:
    """The metric objects of one app; `render()` is the /metrics body.

    Every family, and each label set the config makes known (its tiers, the model endpoints,
    the error kinds), starts at zero: a dashboard or alert on `aicli_fallbacks_total` sees 0,
    not "no data", until the first fallback."""

    def __init__(self, tiers: Sequence[str] = ()) -> None:
        shared = _multiproc_dir() is not None
        # Multiprocess values live in files, not in a registry; else one registry per app.
        self._own: CollectorRegistry | None = None if shared else CollectorRegistry()
        reg: Any = self._own
        self.requests = Counter(
            "aicli_requests_total",
            "HTTP requests answered, by endpoint, requested tier and status code",
            ["endpoint", "tier", "status"],
            registry=reg,
        )
        self.cache_hits = Counter(
            "aicli_cache_hits_total", "Answers served from the cache", ["tier"], registry=reg
        )
        self.cache_misses = Counter(
            "aicli_cache_misses_total", "Answers a provider had to give", ["tier"], registry=reg
        )
        self.tokens = Counter(
            "aicli_tokens_total", "Tokens used, by kind", ["tier", "kind"], registry=reg
        )
        self.cost = Counter("aicli_cost_usd_total", "Money spent", ["tier"], registry=reg)
        self.duration = Histogram(
            "aicli_request_duration_seconds",
            "Time to answer a model request",
            ["endpoint", "cached"],
            buckets=_BUCKETS,
            registry=reg,
        )
        self.fallbacks = Counter(
            "aicli_fallbacks_total",
            "Answers that came from a fallback tier",
            ["tier"],
            registry=reg,
        )
        self.provider_errors = Counter(
            "aicli_provider_errors_total",
            "Failed calls to a tier's provider, by kind",
            ["tier", "kind"],
            registry=reg,
        )
        self.in_flight = Gauge(
            "aicli_inflight_requests",
            "Model requests in flight",
            registry=reg,
            multiprocess_mode="livesum",
        )
        # Every worker reads the same shared counter: the latest reading is the day's spend.
        self.spend_today = Gauge(
            "aicli_spend_today_usd",
            "Money spent today (UTC) by every worker and replica sharing the cache",
            registry=reg,
            multiprocess_mode="livemostrecent",
        )
        self._start_at_zero(list(tiers))

    def _start_at_zero(self, tiers: list[str]) -> None:
        """Create each known series (a labelled family has no sample before its first child;
        in multiprocess mode the child's zero is written to this worker's file)."""
        for tier in tiers:
            for counter in (self.cache_hits, self.cache_misses, self.cost, self.fallbacks):
                counter.labels(tier)
            for kind in ("prompt", "completion"):
                self.tokens.labels(tier, kind)
            for kind in FAILURE_KINDS:
                self.provider_errors.labels(tier, kind)
            for endpoint in MODEL_ENDPOINTS:
                self.requests.labels(endpoint, tier, "200")
        for endpoint in MODEL_ENDPOINTS:
            for cached in ("true", "false"):
                self.duration.labels(endpoint, cached)

    def answered(self, tier: str, result: Result) -> None:
        """Count one model answer; `tier` is the tier requested."""
        if result.cached:
            self.cache_hits.labels(tier).inc()
        else:
            self.cache_misses.labels(tier).inc()
            self.cost.labels(tier).inc(result.cost_usd)
            self.tokens.labels(tier, "prompt").inc(result.usage.prompt_tokens)
            self.tokens.labels(tier, "completion").inc(result.usage.completion_tokens)
        if result.fallback_used:
            self.fallbacks.labels(tier).inc()

    def render(self) -> tuple[bytes, str]:
        if self._own is not None:
            return generate_latest(self._own), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
