"""`aicli batch list | cancel`: the batches `test-prompts --batch` submitted, and stopping them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from aicli.batch.state import TERMINAL
from aicli.cli import options
from aicli.cli.output import handle_errors, info, out, print_json

if TYPE_CHECKING:
    from aicli.batch.state import BatchRecord, RunState
    from aicli.config import Config

batch_app = typer.Typer(no_args_is_help=True)


@batch_app.callback()
def _group(
    ctx: typer.Context,
    config: options.ConfigOpt = None,
    log_format: options.LogFormatOpt = None,
) -> None:
    """Show and stop the batches of `test-prompts --batch` runs.

    Their state lives beside the disk cache, in <cache dir>/batches/<run fingerprint>.json.
    """
    options.pass_config_down(ctx, config, log_format)


@batch_app.command("list", short_help="Each batch: id, tier, counts, age and state.")
def list_batches(
    offline: Annotated[
        bool, typer.Option("--offline", help="Show what the state files say; ask no server.")
    ] = False,
    json_out: options.JsonObjectOpt = False,
    config: options.ConfigOpt = None,
    log_format: options.LogFormatOpt = None,
    debug: options.DebugOpt = False,
) -> None:
    """List the batches of every batch run, newest last, with their state on the server (or as
    last seen, with --offline)."""
    with handle_errors(debug, log_format=log_format):
        cfg, states = _states(config)
        records = [(s, b) for s in states for b in s.batches if b.id is not None]
        if not offline and records:
            _run(_refresh(cfg, [b for _, b in records if b.status not in _FINAL]))
            for state in states:
                state.save()
        now = time.time()
        rows = [_row(s, b, now) for s, b in records]
        if json_out:
            print_json({"batches": rows})
            return
        if not rows:
            info("aicli: no batches (test-prompts --batch makes them)")
            return
        for r in rows:
            counts = r["counts"]
            done = f"{counts.get('completed', 0)}/{counts.get('total', r['requests'])}"
            failed = counts.get("failed", 0)
            out(
                f"{r['id']}  tier {r['tier']}  {r['status']}  {done} done, {failed} failed"
                f"  {_age(r['age_s'])} old  run {r['run']}"
            )


@batch_app.command("cancel", short_help="Stop a batch, or every unfinished one.")
def cancel(
    batch_id: Annotated[str | None, typer.Argument(metavar="ID", help="The batch to stop.")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Stop every batch that has not ended.")
    ] = False,
    config: options.ConfigOpt = None,
    log_format: options.LogFormatOpt = None,
    debug: options.DebugOpt = False,
) -> None:
    """Ask the provider to stop a batch (the requests it already answered stay billed; the next
    batch run sends what it did not answer the usual way)."""
    with handle_errors(debug, log_format=log_format):
        from aicli.errors import UsageError

        if (batch_id is None) == (not all_):
            raise UsageError("give a batch ID or --all (not both)", "aicli batch list shows ids")
        cfg, states = _states(config)
        chosen = [
            (s, b)
            for s in states
            for b in s.batches
            if b.id is not None
            and (b.id == batch_id if batch_id is not None else b.status not in _FINAL)
        ]
        if batch_id is not None and not chosen:
            raise UsageError(
                f"no batch {batch_id[:80]!r} in the batch state files",
                "aicli batch list shows the batches aicli submitted",
            )
        _run(_cancel(cfg, [b for _, b in chosen]))
        for state in {id(s): s for s, _ in chosen}.values():
            state.save()
        for _, b in chosen:
            out(f"{b.id}  {b.status}")
        if all_ and not chosen:
            info("aicli: no unfinished batches")


_FINAL = TERMINAL | {"not_submitted"}  # ended on the server, or never made


def _states(config: Path | None) -> tuple[Config, list[RunState]]:
    from aicli.batch.state import all_states, state_dir
    from aicli.cache import resolve_cache_dir
    from aicli.config import load_config

    cfg = load_config(config)
    return cfg, all_states(state_dir(resolve_cache_dir(cfg)))


def _row(state: RunState, b: BatchRecord, now: float) -> dict[str, Any]:
    return {
        "id": b.id,
        "tier": b.tier,
        "provider": b.provider,
        "model": b.model,
        "status": b.status,
        "counts": b.counts,
        "requests": len(b.custom_ids),
        "age_s": round(max(0.0, now - b.submitted), 1),
        "run": state.fingerprint,
        "collected": b.collected,
    }


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _apis(cfg: Config) -> Any:
    from aicli.providers import import_shallow

    import_shallow("aicli.batch.api")
    from aicli.batch.api import BatchAPI
    from aicli.providers.openai import OpenAIProvider

    made: dict[str, BatchAPI] = {}

    def api_for(name: str) -> BatchAPI:
        from aicli.errors import ConfigError

        if name not in made:
            if name not in cfg.providers:
                raise ConfigError(
                    f"provider '{name}' of a batch is not in the config",
                    "use the config the batch run used (--config)",
                )
            direct = OpenAIProvider(name, cfg.provider(name), cfg.base_url(name))
            made[name] = BatchAPI(direct)
        return made[name]

    return api_for, made


async def _refresh(cfg: Config, records: list[BatchRecord]) -> None:
    """Each batch's state as the provider sees it now; one that cannot be read keeps its last."""
    from aicli.cli.output import warn

    def unreadable(b: BatchRecord, exc: Exception) -> None:
        warn(f"{exc}; showing its last known state")

    await _each(cfg, records, "retrieve", unreadable)


async def _cancel(cfg: Config, records: list[BatchRecord]) -> None:
    """Ask the provider to stop each batch; one it refuses ends the command (exit 3)."""
    from aicli.errors import NoAnswerError

    def refused(b: BatchRecord, exc: Exception) -> None:
        raise NoAnswerError(str(exc), "try again, or check the provider") from None

    await _each(cfg, records, "cancel", refused)


async def _each(
    cfg: Config,
    records: list[BatchRecord],
    op: Literal["retrieve", "cancel"],
    on_error: Callable[[BatchRecord, Exception], None],
) -> None:
    """One Batch API call per record (`retrieve` or `cancel`), its answer noted on the record;
    the providers' clients are closed after."""
    from aicli.batch.api import BatchAPIError

    api_for, made = _apis(cfg)
    try:
        for b in records:
            assert b.id is not None
            try:
                seen = await getattr(api_for(b.provider), op)(b.id)
            except BatchAPIError as exc:
                on_error(b, exc)
                continue
            b.status, b.counts = seen.status, seen.counts
    finally:
        for api in made.values():
            await api.provider.aclose()


def _run(coro: Any) -> Any:
    import asyncio  # not at the top: every command imports this module (start-up time)

    return asyncio.run(coro)
