"""Providers: one interface (base.Provider) over the openai SDK and the offline echo provider."""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Iterable

from aicli.config import Config
from aicli.providers.base import HttpTransport, Provider, Traits

_SDK_MODULE = "aicli.providers.openai"
# Each provider type's traits (a new type adds its row, not checks of its name elsewhere).
TRAITS: dict[str, Traits] = {
    "openai": Traits(),
    "echo": Traits(gated=False, remote=False),
}


def traits(cfg: Config, name: str) -> Traits:
    """The traits of the provider called `name` in the config."""
    return TRAITS[cfg.provider(name).type]


def make_provider(
    cfg: Config, name: str, *, pool_size: int = 0, transport: HttpTransport = "httpx"
) -> Provider:
    """Build the provider called `name` in the config (imports the SDK only for openai types).

    `pool_size`: how many calls may be in flight at once, so connections are kept for them;
    `transport`: the HTTP client under the SDK (see base.HttpTransport)."""
    provider = cfg.provider(name)
    if provider.type == "echo":
        from aicli.providers.echo import EchoProvider

        return EchoProvider(name)
    import_shallow(_SDK_MODULE)
    from aicli.providers.openai import OpenAIProvider

    return OpenAIProvider(
        name, provider, cfg.base_url(name), pool_size=pool_size, transport=transport
    )


def preload(cfg: Config, tiers: Iterable[str]) -> None:
    """Import the SDK now if any of these tiers (or a tier they fall back to) calls a model
    over the network; a front door calls this before its event loop starts."""
    for first in tiers:
        for name in cfg.fallback_chain(first):
            if traits(cfg, cfg.tier(name).provider).remote:
                import_shallow(_SDK_MODULE)
                return


def import_shallow(module: str) -> None:
    """Import `module` (and what it imports) from a new thread, whose call stack starts empty.

    CPython 3.11 frees a 16 KB frame-stack chunk each time the call depth falls back below it.
    The openai SDK's import makes ~10,000 calls in loops; deep in an event loop they straddle
    such a boundary, costing ~11,000 mmap/munmap pairs and their page faults (~0.1 s of system
    time, ~0.15 s of wall time). From a fresh thread the import runs as shallow as a top-level
    `import openai` does, whoever calls this. The caller waits, as for a plain import (so never
    call this from a module's top level: the thread would wait for that module's import lock).
    """
    if module in sys.modules:
        return
    failed: list[BaseException] = []

    def load() -> None:
        try:
            importlib.import_module(module)
        except BaseException as exc:  # raised again in the caller's thread
            failed.append(exc)

    loader = threading.Thread(target=load, name="aicli-import", daemon=True)
    loader.start()
    loader.join()
    if failed:
        raise failed[0]
