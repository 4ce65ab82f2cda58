"""Opening a batch run: the state file for this run's fingerprint, the scheduler, and a
BatchProvider for every provider that sets `batch: true` (the others answer as usual)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aicli.batch.scheduler import MAX_ROUNDS, BatchOptions, BatchScheduler
from aicli.batch.state import RunState, run_fingerprint, state_dir

if TYPE_CHECKING:
    from aicli.config import Config
    from aicli.providers.base import Provider


@dataclass
class BatchSettings:
    """What `test-prompts --batch` asked for."""

    timeout_s: float = 24 * 3600.0  # --batch-timeout
    only: bool = False  # --batch-only
    poll_first_s: float = 1.0
    poll_max_s: float = 60.0


def batch_providers(cfg: Config, tiers: Iterable[str]) -> list[str]:
    """The providers, among these tiers and their fallbacks, that speak the Batch API."""
    names: list[str] = []
    for first in tiers:
        for name in cfg.fallback_chain(first):
            provider = cfg.tier(name).provider
            if cfg.provider(provider).batch and provider not in names:
                names.append(provider)
    return names


def open_batch(
    cfg: Config,
    tiers: Iterable[str],
    settings: BatchSettings,
    fingerprint_parts: dict[str, Any],
    on_progress: Callable[[str], None],
    cap_usd: float | None,
) -> tuple[BatchScheduler, dict[str, Provider], dict[str, Provider]]:
    """The run's scheduler, the providers that stand in for the batch ones, and those that hold
    every other network provider's calls while rounds collect."""
    from aicli.cache import resolve_cache_dir
    from aicli.providers import import_shallow

    import_shallow("aicli.batch.provider")
    from aicli.batch.api import BatchAPI
    from aicli.batch.provider import BatchProvider, HeldProvider
    from aicli.providers.openai import OpenAIProvider

    fingerprint = run_fingerprint(fingerprint_parts)
    directory = state_dir(resolve_cache_dir(cfg))
    _private(directory)
    state = RunState.load(directory / f"{fingerprint}.json", fingerprint)
    directs: dict[str, OpenAIProvider] = {}
    apis: dict[str, BatchAPI] = {}

    def api_for(name: str) -> BatchAPI:
        if name not in apis:
            apis[name] = BatchAPI(directs[name])
        return apis[name]

    opts = BatchOptions(
        timeout_s=settings.timeout_s,
        poll_first_s=settings.poll_first_s,
        poll_max_s=settings.poll_max_s,
    )
    scheduler = BatchScheduler(state, api_for, opts, on_progress, cap_usd=cap_usd)
    providers: dict[str, Provider] = {}
    for name in batch_providers(cfg, tiers):
        directs[name] = OpenAIProvider(name, cfg.provider(name), cfg.base_url(name))
        providers[name] = BatchProvider(cfg, directs[name], scheduler, only=settings.only)
    held: dict[str, Provider] = {
        name: HeldProvider(name)
        for name, p in cfg.providers.items()
        if name not in providers and p.type != "echo"  # echo is offline and free: it answers
    }
    return scheduler, providers, held


def _private(directory: Path) -> None:
    from aicli.errors import CacheError
    from aicli.private_files import PrivateDir, prepare_private_dir

    rules = PrivateDir(
        "batch state", "$AICLI_CACHE_DIR or cache.dir", "batch ids", error=CacheError
    )
    prepare_private_dir(directory, rules)


async def collect_rounds(
    scheduler: BatchScheduler,
    run_round: Callable[[], Awaitable[bool]],
    on_progress: Callable[[str], None],
) -> None:
    """Run the suite in collecting rounds until one collects nothing, settling the batches
    after each; `run_round` runs the suite once and says whether it was interrupted."""
    for number in range(1, MAX_ROUNDS + 1):
        if await run_round():
            raise KeyboardInterrupt  # Ctrl-C in a round: the batches go on, the state is kept
        if not scheduler.pending:
            return
        on_progress(f"batch round {number}: waiting for the batches")
        await scheduler.settle_round()
    on_progress(f"batch: still collecting after {MAX_ROUNDS} rounds; the rest goes the usual way")
