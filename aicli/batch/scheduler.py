"""Gathers a run's calls into one batch per tier, submits them, polls, and answers each call.

A call parks here until the batch that holds it ends. The batch is sent when every job of the
run that is still going is parked (nothing more can come), or when no call has arrived for a
short while; the grader calls that follow the answers make a second batch the same way. A call
whose request is already in a batch the state file names (a killed run started again) waits for
that batch instead of being sent again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aicli.batch.files import write_request_files
from aicli.batch.results import parse_lines
from aicli.batch.state import TERMINAL, BatchRecord, RunState, chunk_name

if TYPE_CHECKING:
    from aicli.batch.api import BatchAPI, BatchView

log = logging.getLogger("aicli.batch")
CHUNK_KEY = "aicli_chunk"


@dataclass
class Settled:
    """How a parked call ended: the chat completion body, or why it must take the usual path."""

    body: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class _Parked:
    custom_id: str
    tier: str
    provider: str
    model: str
    body: dict[str, Any]
    futures: list[asyncio.Future[Settled]] = field(default_factory=list)


@dataclass
class BatchOptions:
    timeout_s: float = 24 * 3600.0  # --batch-timeout
    poll_first_s: float = 1.0  # polling backs off from this ...
    poll_max_s: float = 60.0  # ... to this
    gather_s: float = 2.0  # send what is gathered when no call came for this long
    cancel_wait_s: float = 60.0  # after a cancel, how long to wait for its partial results


class BatchScheduler:
    """One run's batches: the parked calls, the submits, the pollers."""

    def __init__(
        self,
        state: RunState,
        api_for: Callable[[str], BatchAPI],
        opts: BatchOptions,
        on_progress: Callable[[str], None] = lambda text: None,
    ) -> None:
        self.state = state
        self.api_for = api_for  # provider name -> its Batch API
        self.opts = opts
        self.on_progress = on_progress
        self.live = 0  # jobs of the run still going (the runner says)
        self._parked = 0  # calls waiting here, sent or not
        self._queue: dict[str, _Parked] = {}  # not sent yet, by custom_id
        self._waiting: dict[str, list[asyncio.Future[Settled]]] = {}  # sent, by custom_id
        self._pollers: dict[str, asyncio.Task[None]] = {}  # by our chunk name
        self._flushing: asyncio.Task[None] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._adopting: dict[str, asyncio.Task[None]] = {}
        self.submitted = 0  # requests sent in batches by this run
        self.stopped: str | None = None  # the run stopped: send nothing more

    # ---- what the runner tells ----------------------------------------------------------

    def job_started(self) -> None:
        self.live += 1

    def job_finished(self) -> None:
        self.live -= 1
        self._check()

    def stop(self, reason: str) -> None:
        """The run stops (the budget, a fatal error, Ctrl-C): no new call is taken. Calls
        already parked hold their reservations, so they still go in the batch."""
        self.stopped = reason
        self._check()

    async def aclose(self) -> None:
        for task in [*self._pollers.values(), *self._adopting.values()]:
            task.cancel()
        if self._flushing is not None:
            self._flushing.cancel()
        tasks = [*self._pollers.values(), *self._adopting.values()]
        if self._flushing is not None:
            tasks.append(self._flushing)
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    # ---- a call ---------------------------------------------------------------------------

    async def answer(
        self, custom_id: str, tier: str, provider: str, model: str, body: dict[str, Any]
    ) -> Settled:
        """Park one call until its batch ends."""
        if self.stopped is not None:
            return Settled(error=f"not sent: {self.stopped}")
        fut: asyncio.Future[Settled] = asyncio.get_running_loop().create_future()
        record = self.state.batch_for(custom_id)
        if record is not None and not record.active and record.status != "not_submitted":
            # An earlier run's batch already held it and ended without a usable answer (the
            # answer would be in the cache): never in a second batch.
            return Settled(error=f"its earlier batch {record.id} ended without an answer")
        if record is not None and record.active:
            self._waiting.setdefault(custom_id, []).append(fut)
            self._follow(record)
        elif custom_id in self._waiting:  # the same request from another job: one line
            self._waiting[custom_id].append(fut)
        elif custom_id in self._queue:
            self._queue[custom_id].futures.append(fut)
        else:
            self._queue[custom_id] = _Parked(custom_id, tier, provider, model, body, [fut])
        self._parked += 1
        self._check()
        self._arm_idle()
        try:
            return await fut
        finally:
            self._parked -= 1

    def _check(self) -> None:
        if self._queue and self._parked >= self.live and self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    def _arm_idle(self) -> None:
        # A job waiting elsewhere (say, for an identical request in flight) is not parked here;
        # the timer still sends the batch once calls stop coming.
        if self._idle is not None:
            self._idle.cancel()
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._idle = None
            if self._queue and self._flushing is None:
                self._flushing = loop.create_task(self._flush())

        self._idle = loop.call_later(self.opts.gather_s, fire)

    # ---- sending ----------------------------------------------------------------------------

    async def _flush(self) -> None:
        try:
            while self._queue:
                queued, self._queue = self._queue, {}
                groups: dict[tuple[str, str, str], list[_Parked]] = {}
                for parked in queued.values():
                    groups.setdefault((parked.provider, parked.tier, parked.model), []).append(
                        parked
                    )
                for (provider, tier, model), items in groups.items():
                    await self._submit(provider, tier, model, items)
        finally:
            self._flushing = None
        self._check()

    async def _submit(self, provider: str, tier: str, model: str, items: list[_Parked]) -> None:
        from aicli.batch.api import BatchAPIError

        api = self.api_for(provider)
        by_id = {p.custom_id: p for p in items}
        with tempfile.TemporaryDirectory(prefix="aicli-batch-") as tmp:
            try:
                files = write_request_files(((p.custom_id, p.body) for p in items), Path(tmp))
            except (OSError, ValueError) as exc:  # no room for the file, a giant request
                why = f"the batch file could not be written ({type(exc).__name__}: {exc})"
                for p in items:
                    _settle(p.futures, Settled(error=why))
                return
            for index, f in enumerate(files):
                record = BatchRecord(
                    chunk=chunk_name(self.state.fingerprint, tier, len(self.state.batches) + index),
                    tier=tier, provider=provider, model=model, custom_ids=f.custom_ids,
                )  # fmt: skip
                waiting = [by_id[cid] for cid in f.custom_ids]
                for p in waiting:
                    self._waiting.setdefault(p.custom_id, []).extend(p.futures)
                # Written before the submit: a run killed from here on finds the batch again.
                self.state.add(record)
                self.state.save()
                try:
                    file_id = await api.upload(f.path)
                    made = await api.create(file_id, {CHUNK_KEY: record.chunk})
                except BatchAPIError as exc:
                    log.warning("%s", exc, extra={"event": "batch.submit_failed", "tier": tier})
                    record.status, record.collected = "not_submitted", True
                    self.state.save()
                    self._release(record.custom_ids, Settled(error=str(exc)))
                    continue
                finally:
                    f.path.unlink(missing_ok=True)
                record.id, record.status = made.id, made.status
                record.counts = made.counts
                self.state.save()
                self.submitted += len(f.custom_ids)
                self.on_progress(
                    f"batch {made.id} (tier {tier}): {len(f.custom_ids)} requests submitted"
                )
                self._follow(record)

    def _release(self, custom_ids: list[str], settled: Settled) -> None:
        for cid in custom_ids:
            _settle(self._waiting.pop(cid, []), settled)

    # ---- waiting ----------------------------------------------------------------------------

    def _follow(self, record: BatchRecord) -> None:
        if record.chunk not in self._pollers:
            task = asyncio.get_running_loop().create_task(self._poll(record))
            self._pollers[record.chunk] = task

    async def _poll(self, record: BatchRecord) -> None:
        from aicli.batch.api import BatchAPIError

        api = self.api_for(record.provider)
        try:
            if record.id is None and not await self._adopt(api, record):
                return
            assert record.id is not None
            started = time.monotonic()
            delay = self.opts.poll_first_s
            cancelled_at: float | None = None
            while True:
                try:
                    batch = await api.retrieve(record.id)
                except BatchAPIError as exc:
                    log.warning("%s", exc, extra={"event": "batch.poll_failed"})
                    batch = None
                if batch is not None:
                    self._note(record, batch)
                    if batch.status in TERMINAL:
                        await self._collect(api, record, batch)
                        return
                now = time.monotonic()
                if cancelled_at is None and now - started > self.opts.timeout_s:
                    cancelled_at = now
                    self.on_progress(f"batch {record.id}: --batch-timeout passed; cancelling it")
                    with contextlib.suppress(BatchAPIError):
                        await api.cancel(record.id)
                if cancelled_at is not None and now - cancelled_at > self.opts.cancel_wait_s:
                    self._give_up(record, "the batch did not end in time (--batch-timeout)")
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.opts.poll_max_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a poller must never leave calls parked forever
            self._give_up(record, f"batch follow-up failed: {type(exc).__name__}")
            raise

    async def _adopt(self, api: BatchAPI, record: BatchRecord) -> bool:
        """A record written before its create's reply came back: find the batch, or learn that
        it was never made (then its calls are sent again, which is not a second submit)."""
        from aicli.batch.api import BatchAPIError

        try:
            found = await api.find(CHUNK_KEY, record.chunk)
        except BatchAPIError as exc:
            self._give_up(record, str(exc), keep=True)
            return False
        if found is None:
            record.status, record.collected = "not_submitted", True
            self.state.save()
            self._give_up(record, "its batch was never created")
            return False
        record.id, record.status = found.id, found.status
        self.state.save()
        return True

    def _note(self, record: BatchRecord, batch: BatchView) -> None:
        if (batch.status, batch.counts) != (record.status, record.counts):
            record.status, record.counts = batch.status, batch.counts
            self.state.save()
            total = batch.counts.get("total", len(record.custom_ids))
            done = batch.counts.get("completed", 0)
            failed = batch.counts.get("failed", 0)
            self.on_progress(
                f"batch {record.id} (tier {record.tier}): {batch.status},"
                f" {done}/{total} done, {failed} failed"
            )

    async def _collect(self, api: BatchAPI, record: BatchRecord, batch: BatchView) -> None:
        from aicli.batch.api import BatchAPIError

        asked = set(record.custom_ids)
        answered: set[str] = set()
        foreign = 0
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id is None:
                continue
            collected: list[bytes] = []
            try:
                async for line in api.lines(file_id):
                    collected.append(line)
            except BatchAPIError as exc:  # keep the lines that came
                log.warning("%s", exc, extra={"event": "batch.download_failed"})
            for result in parse_lines(collected, f"batch {record.id}"):
                if result.custom_id not in asked:
                    foreign += 1
                    continue
                if result.custom_id in answered:
                    continue
                answered.add(result.custom_id)
                settled = Settled(body=result.body, error=result.error)
                _settle(self._waiting.pop(result.custom_id, []), settled)
        if foreign:
            log.warning(
                "batch %s: ignored %d result line(s) for requests it was not sent", record.id,
                foreign, extra={"event": "batch.foreign_lines", "count": foreign},
            )  # fmt: skip
        why = batch.errors or f"the batch ended {batch.status}"
        self._release(sorted(asked - answered), Settled(error=why))
        record.collected = True
        self.state.save()

    def _give_up(self, record: BatchRecord, why: str, *, keep: bool = False) -> None:
        """Send this record's parked calls the usual way; `keep`: the batch is still followed
        next run (its results may still fill the cache then)."""
        if not keep and record.id is None:
            record.collected = True
        self.state.save()
        self._release(record.custom_ids, Settled(error=why))


def _settle(futures: list[asyncio.Future[Settled]], settled: Settled) -> None:
    for fut in futures:
        if not fut.done():
            fut.set_result(settled)
