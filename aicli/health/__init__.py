"""Health checks of a setup (config, providers, cache, prompts) as typed results; `aicli doctor`
prints them and `serve`'s /health maps them, so no check is written twice.

Checks run concurrently with short timeouts: a dead endpoint costs seconds. No check ever puts a
key in its detail or hint (only the names of the variables that hold them). Layout: model.py
(Check, statuses, exit codes), providers.py (key, endpoint, auth, models), local.py (cache,
prompts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aicli.errors import AicliError, ConfigError
from aicli.health.model import (
    DEFAULT_TIMEOUT_S,
    STATUSES,
    Area,
    Check,
    Overall,
    Status,
    exit_code,
    overall,
)

if TYPE_CHECKING:
    from aicli.config import Config

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "STATUSES",
    "Area",
    "Check",
    "Overall",
    "Status",
    "diagnose",
    "exit_code",
    "overall",
    "run_checks",
]


async def diagnose(
    config_path: str | Path | None = None,
    *,
    offline: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[Check]:
    """Every check, starting with finding and validating the config (what `aicli doctor` runs)."""
    from aicli.config import find_config, load_config

    try:
        found, why = find_config(config_path)
        cfg = load_config(config_path)
    except ConfigError as exc:
        checks = [Check("config", "fail", exc.message, exc.hint, "config")]
        skipped = "not checked: the config is invalid"
        return checks + [Check(n, "skip", skipped, None, a) for n, a in _AFTER_CONFIG]
    if found is None:
        detail = (
            "no config file (none given by --config or $AICLI_CONFIG, no ./aicli.yaml or "
            "$XDG_CONFIG_HOME/aicli/config.yaml): using the built-in defaults"
        )
    else:
        detail = f"{found.resolve()} (from {why}) is valid"
    first = Check("config", "ok", detail, None, "config")
    return [first, *await run_checks(cfg, offline=offline, timeout_s=timeout_s)]


_AFTER_CONFIG: tuple[tuple[str, Area], ...] = (
    ("providers", "provider"),
    ("cache", "cache"),
    ("prompts", "prompts"),
)


async def run_checks(
    cfg: Config,
    *,
    offline: bool = False,
    providers: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[Check]:
    """The checks of a loaded config, run concurrently: providers (network ones skipped when
    `offline`; all left out unless `providers`), the cache, the prompts."""
    from aicli.health.local import cache_checks, prompt_checks
    from aicli.health.providers import provider_checks

    jobs: list[Awaitable[list[Check]]] = []
    if providers:
        used: dict[str, list[str]] = {}
        for tier_name, tier in sorted(cfg.tiers.items()):
            used.setdefault(tier.provider, []).append(tier_name)
        for name in sorted(cfg.providers):
            if name not in used:
                continue  # the built-in openai provider, say, when no tier uses it
            jobs.append(
                provider_checks(cfg, name, used[name], offline=offline, timeout_s=timeout_s)
            )
    jobs.append(_threaded(cache_checks, cfg, area="cache", timeout_s=timeout_s))
    jobs.append(_threaded(prompt_checks, cfg, area="prompts", timeout_s=timeout_s))
    results = await asyncio.gather(*jobs)
    return [check for group in results for check in group]


async def _threaded(
    fn: Callable[[Config], list[Check]], cfg: Config, *, area: Area, timeout_s: float
) -> list[Check]:
    """Run a blocking check in a thread, bounded in time, and never let it raise."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(fn, cfg), timeout_s * 2)
    except asyncio.TimeoutError:
        return [Check(area, "fail", f"no answer within {timeout_s * 2:.0f} s", None, area)]
    except AicliError as exc:
        return [Check(area, "fail", exc.message, exc.hint, area)]
    except Exception as exc:  # a check must report, never crash the report
        from aicli.scrub import scrub

        detail = f"unexpected {type(exc).__name__}: {scrub(str(exc))[:200]}"
        return [Check(area, "fail", detail, None, area)]
