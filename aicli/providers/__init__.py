"""Providers: one interface (base.Provider) over the openai SDK and the offline echo provider."""

from __future__ import annotations

from aicli.config import Config
from aicli.providers.base import Provider


def make_provider(cfg: Config, name: str, *, pool_size: int = 0) -> Provider:
    """Build the provider called `name` in the config (imports the SDK only for openai types).

    `pool_size`: how many calls may be in flight at once, so connections are kept for them."""
    provider = cfg.provider(name)
    if provider.type == "echo":
        from aicli.providers.echo import EchoProvider

        return EchoProvider(name)
    from aicli.providers.openai import OpenAIProvider

    return OpenAIProvider(name, provider, cfg.base_url(name), pool_size=pool_size)
