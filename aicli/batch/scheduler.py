"""A batch run in rounds: collect what the engine would send, submit it, wait, answer it.

The suite runs once with every batch tier collecting its calls instead of making them (the
jobs end at once: nothing waits in memory). What was collected goes into one batch per tier
and model, submitted and followed until it ends; its answers are kept by custom_id. The suite
then runs again: answered calls take their answer, and calls that only now can be made (the
grader calls of llm-rubric, whose prompt holds the answer) are collected for a second batch.
When a round collects nothing, the last round runs with every tier live and writes the reports.
A call whose request is already in a batch the state file names (a killed run started again)
is followed there, never sent again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aicli.batch.files import RequestFiles
from aicli.batch.results import parse_lines
from aicli.batch.state import TERMINAL, BatchRecord, RunState, chunk_name

if TYPE_CHECKING:
    from aicli.batch.api import BatchAPI, BatchView

log = logging.getLogger("aicli.batch")
CHUNK_KEY = "aicli_chunk"
_LENGTH = 2**32 - 1  # the low bits of an answer's place in the answers file: its length
MAX_ROUNDS = 6  # answers, graders, and room to spare: a loop that never settles still ends


@dataclass
class Settled:
    """How a batch ended for one request: the chat completion body, or why there is none."""

    body: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class BatchOptions:
    timeout_s: float = 24 * 3600.0  # --batch-timeout
    poll_first_s: float = 1.0  # polling backs off from this ...
    poll_max_s: float = 60.0  # ... to this
    cancel_wait_s: float = 60.0  # after a cancel, how long to wait for its partial results


class BatchScheduler:
    """One run's batches: what a round collected, the submits, the waiting, the answers."""

    def __init__(
        self,
        state: RunState,
        api_for: Callable[[str], BatchAPI],
        opts: BatchOptions,
        on_progress: Callable[[str], None] = lambda text: None,
        *,
        cap_usd: float | None = None,
    ) -> None:
        self.state = state
        self.api_for = api_for  # provider name -> its Batch API
        self.opts = opts
        self.on_progress = on_progress
        self.cap_usd = cap_usd  # --max-cost: what may be submitted, worst case at batch price
        self.final = False  # the last round: what has no answer takes the usual path
        self.submitted = 0  # requests this run sent in batches
        # custom_id -> where its result line's body lies in the answers file (offset << 32 |
        # length: one int, parsed when used), or why there is none. 50,000 answers stay on disk.
        self._answers: dict[str, int | str] = {}
        self._spool: int | None = None  # the answers file's descriptor, opened on first answer
        self._spooled = 0  # its length
        self._refused: set[str] = set()  # over the cap: never submitted
        self.bought: dict[str, float] = {}  # custom_id -> what its batch answer saved
        self._reserved = 0.0
        self._groups: dict[tuple[str, str, str], RequestFiles] = {}
        self._collected: set[str] = set()
        self._follow: dict[str, BatchRecord] = {}  # by our chunk name
        self._tmp = tempfile.TemporaryDirectory(prefix="aicli-batch-")

    # ---- during a round -----------------------------------------------------------------

    def answer(self, custom_id: str) -> Settled | None:
        """The batch's answer for this request, or None when no batch answered it yet."""
        got = self._answers.get(custom_id)
        if got is None:
            record = self.state.batch_for(custom_id)
            if record is not None and record.collected and record.status != "not_submitted":
                # an earlier run's batch held it and ended without an answer: never twice
                return Settled(error=f"its batch {record.id} ended without an answer")
            return None
        if isinstance(got, str):
            return Settled(error=got)
        assert self._spool is not None
        return Settled(body=json.loads(os.pread(self._spool, got & _LENGTH, got >> 32)))

    def refused(self, custom_id: str) -> bool:
        return custom_id in self._refused

    def collect(
        self, custom_id: str, tier: str, provider: str, model: str, body: dict[str, Any],
        worst_usd: float,
    ) -> None:  # fmt: skip
        """Take a request into this round's batch of its tier (or follow the batch of an
        earlier run that holds it)."""
        record = self.state.batch_for(custom_id)
        if record is not None and record.active:
            self._follow.setdefault(record.chunk, record)
            return
        if custom_id in self._collected or custom_id in self._refused:
            return
        if self.cap_usd is not None and self._reserved + worst_usd > self.cap_usd + 1e-12:
            self._refused.add(custom_id)
            return
        files = self._groups.get((provider, tier, model))
        if files is None:
            files = self._groups[(provider, tier, model)] = RequestFiles(Path(self._tmp.name))
        try:
            files.add(custom_id, body)
        except (OSError, ValueError) as exc:  # no room for the file, a giant request
            self._answers[custom_id] = f"not sent in a batch ({type(exc).__name__}: {exc})"
            return
        self._reserved += worst_usd
        self._collected.add(custom_id)

    @property
    def pending(self) -> bool:
        """Whether this round left anything to submit or to wait for."""
        return bool(self._groups or self._follow)

    # ---- between rounds -----------------------------------------------------------------

    async def settle_round(self) -> None:
        """Submit what the round collected, then wait until every batch it needs has ended."""
        groups, self._groups = self._groups, {}
        self._collected = set()  # from here on the state file names the batch of each
        for (provider, tier, model), files in groups.items():
            await self._submit(provider, tier, model, files)
        following, self._follow = self._follow, {}
        await asyncio.gather(*(self._poll(record) for record in following.values()))

    async def _submit(self, provider: str, tier: str, model: str, files: RequestFiles) -> None:
        from aicli.batch.api import BatchAPIError

        api = self.api_for(provider)
        for f in files.close():
            record = BatchRecord(
                chunk=chunk_name(self.state.fingerprint, tier, len(self.state.batches)),
                tier=tier, provider=provider, model=model, custom_ids=f.custom_ids,
            )  # fmt: skip
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
                self._fail(record.custom_ids, str(exc))
                continue
            finally:
                f.path.unlink(missing_ok=True)
            record.id, record.status, record.counts = made.id, made.status, made.counts
            self.state.save()
            self.submitted += len(f.custom_ids)
            self.on_progress(
                f"batch {made.id} (tier {tier}): {len(f.custom_ids)} requests submitted"
            )
            self._follow[record.chunk] = record

    def _fail(self, custom_ids: list[str], why: str) -> None:
        for cid in custom_ids:
            self._answers.setdefault(cid, why)

    async def _poll(self, record: BatchRecord) -> None:
        from aicli.batch.api import BatchAPIError

        api = self.api_for(record.provider)
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
                # still followed by the next run: its results may fill the cache then
                self._fail(record.custom_ids, "the batch did not end in time (--batch-timeout)")
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.opts.poll_max_s)

    async def _adopt(self, api: BatchAPI, record: BatchRecord) -> bool:
        """A record written before its create's reply came back: find the batch by its chunk
        name, or learn that it was never made (then its requests are collected again next
        round, which is not a second submit)."""
        from aicli.batch.api import BatchAPIError

        try:
            found = await api.find(CHUNK_KEY, record.chunk)
        except BatchAPIError as exc:
            self._fail(record.custom_ids, str(exc))
            return False
        if found is None:
            record.status, record.collected = "not_submitted", True
            self.state.save()
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
            # Downloaded to a file first, then read a line at a time: a result file of 50,000
            # answers is never held whole.
            fd, name = tempfile.mkstemp(suffix=".jsonl", dir=self._tmp.name)
            download = Path(name)
            with open(fd, "wb") as fh:
                try:
                    async for line in api.lines(file_id):  # each without its line break
                        fh.write(line + b"\n")
                except BatchAPIError as exc:  # keep the lines that came
                    log.warning("%s", exc, extra={"event": "batch.download_failed"})
            with download.open("rb") as fh:
                for result in parse_lines((x[:-1] for x in fh), f"batch {record.id}"):
                    if result.custom_id not in asked:
                        foreign += 1
                        continue
                    if result.custom_id in answered:
                        continue
                    cid = sys.intern(result.custom_id)  # the one string the state holds too
                    answered.add(cid)
                    if result.body is not None:
                        self._answers[cid] = self._spool_body(result.body)
                    else:
                        self._answers[cid] = result.error or "failed"
            download.unlink()
        if foreign:
            log.warning(
                "batch %s: ignored %d result line(s) for requests it was not sent", record.id,
                foreign, extra={"event": "batch.foreign_lines", "count": foreign},
            )  # fmt: skip
        self._fail(sorted(asked - answered), batch.errors or f"the batch ended {batch.status}")
        record.collected = True
        self.state.save()

    def _spool_body(self, body: dict[str, Any]) -> int:
        """Append a result line's body to the answers file; where it lies, as one int."""
        data = json.dumps(body).encode()
        if self._spool is None:
            path = Path(self._tmp.name) / "answers.jsonl"
            self._spool = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.pwrite(self._spool, data, self._spooled)
        where = self._spooled << 32 | len(data)
        self._spooled += len(data)
        return where

    def close(self) -> None:
        for files in self._groups.values():
            files.discard()
        self._groups = {}
        if self._spool is not None:
            os.close(self._spool)
            self._spool = None
        self._tmp.cleanup()
