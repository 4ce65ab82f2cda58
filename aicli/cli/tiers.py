"""`aicli tiers`: every tier after inheritance, with its provider, fallback chain and price."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer

from aicli.cli import options
from aicli.cli.output import handle_errors, is_tty, out, print_json, stdout_console

_COLUMNS = ("tier", "provider", "model", "fallback chain", "price in/out per 1M", "cache_ttl",
            "rate_limit", "max_tokens", "timeout", "base_url")  # fmt: skip


def tiers(
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON list of tiers.")] = False,
    config: options.ConfigOpt = None,
    log_format: options.LogFormatOpt = None,
    debug: options.DebugOpt = False,
) -> None:
    """List the tiers: provider, model, the resolved fallback chain, price, cache_ttl,
    rate_limit, max_tokens and timeout after inheritance from `defaults`.

    The default tier is marked with `*`. Change them in your config file (aicli config path).
    """
    with handle_errors(debug, log_format=log_format):
        from aicli.config import load_config

        cfg = load_config(config)
        rows = [describe(cfg, name) for name in cfg.tiers]
        if json_out:
            print_json(rows)
            return
        table = [_cells(row) for row in rows]
        if is_tty():
            from rich.table import Table

            grid = Table(title=f"aicli tiers ({cfg.source})", title_justify="left")
            for column in _COLUMNS:
                grid.add_column(column)
            for cells in table:
                grid.add_row(*cells)
            stdout_console().print(grid)
            return
        widths = [max([len(c), *(len(r[i]) for r in table)]) for i, c in enumerate(_COLUMNS)]
        for cells in [list(_COLUMNS), *table]:
            out("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())


def describe(cfg: Any, name: str) -> dict[str, Any]:
    """One tier as `aicli tiers --json` shows it."""
    from aicli.scrub import without_credentials

    tier = cfg.tier(name)
    provider = cfg.provider(tier.provider)
    return {
        "name": name,
        "default": name == cfg.default_tier,
        "provider": tier.provider,
        "base_url": None
        if provider.type == "echo"
        else without_credentials(cfg.base_url(tier.provider)),
        "model": tier.model,
        "fallback": list(tier.fallback),
        "fallback_chain": cfg.fallback_chain(name),
        "price": dataclasses.asdict(tier.price),
        "cache_ttl": tier.cache_ttl,
        "rate_limit": tier.rate_limit,
        "max_tokens": tier.max_tokens,
        "timeout_seconds": tier.timeout_seconds,
        "max_retries": tier.max_retries,
        "temperature": tier.temperature,
    }


def _cells(row: dict[str, Any]) -> list[str]:
    price = row["price"]
    return [
        row["name"] + (" *" if row["default"] else ""),
        row["provider"],
        row["model"],
        " > ".join(row["fallback_chain"]),
        f"${price['input_per_1m']:g} / ${price['output_per_1m']:g}",
        f"{row['cache_ttl']}s",
        f"{row['rate_limit']:g}/min" if row["rate_limit"] else "none",
        str(row["max_tokens"]),
        f"{row['timeout_seconds']:g}s",
        row["base_url"] or "-",
    ]
