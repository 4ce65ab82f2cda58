"""What /health reports: doctor's checks (aicli.health) mapped to dependencies and one status,
with results reused per worker (provider probes for 30 s)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aicli import __version__
from aicli.cache import ResponseCache
from aicli.config import Config
from aicli.health import Check, run_checks

DEEP_TTL_S = 30.0  # a provider probe is reused this long: /health must not hammer providers
SHALLOW_TTL_S = 2.0  # the local checks (cache, prompts) are cheap but not free
PROBE_TIMEOUT_S = 2.0


@dataclass
class HealthCache:
    """The last checks of each kind, per worker; one probe at a time."""

    results: dict[bool, tuple[float, list[Check]]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    clock: Callable[[], float] = time.monotonic

    async def checks(self, cfg: Config, deep: bool) -> list[Check]:
        ttl = DEEP_TTL_S if deep else SHALLOW_TTL_S
        async with self.lock:
            cached = self.results.get(deep)
            if cached is not None and self.clock() - cached[0] < ttl:
                return cached[1]
            found = await run_checks(cfg, offline=False, providers=deep, timeout_s=PROBE_TIMEOUT_S)
            self.results[deep] = (self.clock(), found)
            return found


def worker_cache_check(cache: ResponseCache | None, pinged: list[Check]) -> Check | None:
    """What this worker does about the cache: uses it, or bypasses it (and with it the shared
    single-flight and budget) until its probe gets an answer. A ping that answers while the
    worker bypasses the cache has the probe try at once."""
    if cache is None:
        return None
    where = f"{cache.backend_name} cache at {cache.location}"
    if cache.available:
        return Check("cache.worker", "ok", f"this worker uses the {where}", None, "cache")
    if pinged and all(c.status == "ok" for c in pinged):
        cache.retry_now()
    retry = cache.retry_in_s
    when = "" if retry is None else f"; it tries the cache again in {max(1, round(retry))} s"
    return Check(
        "cache.worker",
        "fail",
        f"this worker is bypassing the {where}: answers are neither read nor stored{when}",
        "check the cache backend; the worker goes back to it by itself once it answers",
        "cache",
    )


# A warning (a model the provider does not list) is shown, but only a failure counts as down.
_DEPENDENCY = {"ok": "ok", "skip": "ok", "warn": "warn", "fail": "down"}


def _summary(checks: list[Check]) -> dict[str, Any]:
    worst = "fail" if any(c.status == "fail" for c in checks) else (
        "warn" if any(c.status == "warn" for c in checks) else "ok"
    )  # fmt: skip
    return {"status": _DEPENDENCY[worst], "checks": [c.to_json() for c in checks]}


def report(cfg: Config, checks: list[Check], deep: bool) -> tuple[int, dict[str, Any]]:
    cache = [c for c in checks if c.area == "cache"]
    in_use = not any(c.name == "cache.worker" and c.status == "fail" for c in cache)
    prompts = [c for c in checks if c.area == "prompts"]
    providers: dict[str, Any] = {}
    for name in sorted({t.provider for t in cfg.tiers.values()}):
        mine = [c for c in checks if c.area == "provider" and _is_about(c, name, cfg)]
        providers[name] = _summary(mine) if deep else {"status": "not_checked"}
    down = [n for n, p in providers.items() if p["status"] == "down"]
    if deep and providers and len(down) == len(providers):
        status = "unhealthy"  # no tier has a provider that answers
    elif down or any(c.status == "fail" for c in cache + prompts):
        status = "degraded"  # a cache that is down still answers, without the cache
    else:
        status = "healthy"
    body = {
        "status": status,
        "version": __version__,
        "dependencies": {
            "cache": {**_summary(cache), "in_use": in_use},
            "providers": providers,
            "prompts": _summary(prompts),
        },
    }
    return (503 if status == "unhealthy" else 200), body


def _is_about(check: Check, provider: str, cfg: Config) -> bool:
    if check.name == f"provider.{provider}" or check.name.startswith(f"provider.{provider}."):
        return True
    if check.name.startswith("tier."):
        tier = check.name.split(".")[1]
        return tier in cfg.tiers and cfg.tiers[tier].provider == provider
    return False
