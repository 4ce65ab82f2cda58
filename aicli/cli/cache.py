"""`aicli cache stats | clear | prune`: look into and tidy the cache of answers (disk or Redis)."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from aicli.cli import options
from aicli.cli.output import (
    handle_errors,
    info,
    is_tty,
    out,
    print_json,
    stdout_console,
)
from aicli.errors import ExitCode

if TYPE_CHECKING:
    from aicli.cache import ResponseCache
    from aicli.config import Config

T = TypeVar("T")
cache_app = typer.Typer(no_args_is_help=True)


@cache_app.callback()
def _group(
    ctx: typer.Context,
    config: options.ConfigOpt = None,
    log_format: options.LogFormatOpt = None,
) -> None:
    """Inspect and manage the cache of answers (shared by every aicli process).

    The disk cache lives in $AICLI_CACHE_DIR, else cache.dir in the config, else
    $XDG_CACHE_HOME/aicli (~/.cache/aicli). With cache.backend: redis (or
    $AICLI_CACHE_BACKEND=redis) these commands work on the Redis namespace instead; an
    unreachable Redis is exit 3.
    """
    options.pass_config_down(ctx, config, log_format)


def _with_cache(
    config: Path | None,
    op: Callable[[ResponseCache], Awaitable[T]],
    *,
    cfg: Config | None = None,
) -> T:
    """op(the configured cache) in one event loop; the cache is closed after."""
    from aicli.cache import open_cache
    from aicli.config import load_config

    cache = open_cache(cfg or load_config(config))

    async def go() -> T:
        try:
            return await op(cache)
        finally:
            await cache.aclose()

    import asyncio  # not at the top: every command imports this module (start-up time)

    return asyncio.run(go())


def _plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n} {word if n == 1 else (words or word + 's')}"


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit} ({n:,} bytes)"
        size /= 1024
    raise AssertionError("unreachable")


def _money(amount: float) -> str:
    from aicli.cost import usd

    return usd(amount)


def _rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    lookups = s["hits"] + s["misses"]
    rate = f"{s['hit_rate'] * 100:.1f}% ({s['hits']:,} of {lookups:,} lookups)" if lookups else "-"
    size = "size on disk" if s["backend"] == "disk" else "memory used"
    return [
        ("backend", s["backend"]),
        ("location", s["location"]),
        ("entries", f"{s['entries']:,}"),
        (size, _human_size(s["size_bytes"])),
        ("hits", f"{s['hits']:,}"),
        ("misses", f"{s['misses']:,}"),
        ("hit rate", rate),
        ("tokens saved", f"{s['tokens_saved']:,}"),
        ("cost saved", _money(s["cost_saved_usd"])),
        ("oldest entry", s["oldest"] or "-"),
        ("newest entry", s["newest"] or "-"),
        ("spent today", _spent_today(s)),
    ]


def _spent_today(s: dict[str, Any]) -> str:
    spent = f"{_money(s['spend_today_usd'])} (UTC, by aicli serve)"
    budget = s.get("daily_budget_usd")
    return spent if budget is None else f"{spent} of the {_money(budget)} daily budget"


async def _stats(cache: ResponseCache, budget: float | None) -> dict[str, Any]:
    """The cache's stats, and the service's spend today (kept apart: `clear` never resets it)."""
    from aicli.ledger import spend_today

    # read first: stats() closes the stores at its end (a truer size on disk)
    spent = await cache._admin_op(lambda: spend_today(cache))
    s = await cache.stats()
    s["oldest"], s["newest"] = _iso(s["oldest"]), _iso(s["newest"])  # SPEC: ISO 8601, UTC
    s["spend_today_usd"] = round(spent, 9)
    if budget is not None:
        s["daily_budget_usd"] = budget
    return s


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    from datetime import datetime, timezone

    moment = datetime.fromtimestamp(ts, tz=timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@cache_app.command("stats", short_help="Entries, size, hit rate and the money saved.")
def stats(
    json_out: options.JsonObjectOpt = False,
    config: options.ConfigOpt = None,
    log_format: options.LogFormatOpt = None,
    debug: options.DebugOpt = False,
) -> None:
    """Show entries, size, hit rate, the tokens and dollars the cache saved, and today's spend.

    Counters (hits, misses, tokens and dollars saved) are shared by every process using the
    cache and persist until `aicli cache clear`. Today's spend (UTC) is what `aicli serve`
    counted against serve.daily_budget_usd; `clear` and `prune` never reset it.
    """
    with handle_errors(debug, log_format=log_format):
        from aicli.config import load_config

        cfg = load_config(config)
        budget = cfg.serve.daily_budget_usd
        s = _with_cache(config, lambda cache: _stats(cache, budget), cfg=cfg)
        if json_out:
            print_json(s)
            return
        rows = _rows(s)
        if is_tty():
            from rich.table import Table

            table = Table(title="aicli cache", show_header=False, title_justify="left")
            table.add_column(style="bold")
            table.add_column()
            for key, value in rows:
                table.add_row(key, value)
            stdout_console().print(table)
        else:
            width = max(len(key) for key, _ in rows)
            for key, value in rows:
                out(f"{key.ljust(width)}  {value}")


@cache_app.command("clear", short_help="Delete every cached answer.")
def clear(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_out: options.JsonObjectOpt = False,
    config: options.ConfigOpt = None,
    log_format: options.LogFormatOpt = None,
    debug: options.DebugOpt = False,
) -> None:
    """Delete every cached answer and reset the counters (not the service's daily spend).

    Asks first when run on a terminal (--yes skips the question); from a script or CI, where
    nobody can answer, it clears without asking.
    """
    with handle_errors(debug, log_format=log_format):
        if not yes and is_tty(sys.stdin) and is_tty(sys.stderr):
            s = _with_cache(config, lambda cache: cache.stats())
            question = (
                f"Delete {_plural(s['entries'], 'cached answer')} in {s['location']}"
                " and reset the counters?"
            )
            if not typer.confirm(question, default=False, err=True):
                info("aicli: nothing was deleted")
                raise typer.Exit(ExitCode.OK)

        async def clear_it(cache: ResponseCache) -> dict[str, Any]:
            return _done(cache, "cleared", await cache.clear())

        done = _with_cache(config, clear_it)
        if json_out:
            print_json(done)
        else:
            cleared = _plural(done["cleared"], "entry", "entries")
            out(f"cleared {cleared} from {done['location']}; counters reset")


def _done(cache: ResponseCache, what: str, count: int) -> dict[str, Any]:
    """What `clear` and `prune --json` print: how many, and where."""
    directory = cache.directory
    return {
        what: count,
        "directory": None if directory is None else str(directory),
        "location": cache.location,
    }


@cache_app.command("prune", short_help="Delete expired answers.")
def prune(
    json_out: options.JsonObjectOpt = False,
    config: options.ConfigOpt = None,
    log_format: options.LogFormatOpt = None,
    debug: options.DebugOpt = False,
) -> None:
    """Delete expired entries and print how many.

    Expired entries are otherwise kept (until evicted by cache.size_limit_mb) so that a stale
    answer can be served when every tier fails.
    """
    with handle_errors(debug, log_format=log_format):

        async def prune_it(cache: ResponseCache) -> dict[str, Any]:
            return _done(cache, "pruned", await cache.prune())

        done = _with_cache(config, prune_it)
        count = done["pruned"]
        if json_out:
            print_json(done)
        else:
            out(f"pruned {_plural(count, 'expired entry', 'expired entries')}")
