"""Progress on stderr while a suite runs: a bar on a terminal, a heartbeat line in a CI log."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aicli.cli.output import info, is_tty

if TYPE_CHECKING:
    from aicli.reports.results import CaseResult

HEARTBEAT_S = 10.0  # a CI log (stderr not a terminal) gets a progress line this often


@contextlib.contextmanager
def progress(total: int | None) -> Iterator[Callable[[CaseResult], None]]:
    """A progress bar when stderr is a terminal; in a CI log, a heartbeat line now and then.
    `total` None: not known up front (--repeat auto adds runs as it goes)."""
    from aicli.logs import current_format

    if total == 0 or current_format() == "json":  # JSON logs: stderr is for log objects only
        yield lambda r: None
    elif is_tty(sys.stderr) and "NO_COLOR" not in os.environ:
        with _bar(total) as advance:
            yield advance
    else:
        with _heartbeat(total) as advance:
            yield advance


@dataclass
class _Tally:
    done: int = 0
    failed: int = 0
    cost: float = 0.0

    def add(self, r: CaseResult) -> None:
        self.done += 1
        self.failed += r.status in ("failed", "error")
        self.cost += r.cost_usd


def _heartbeat_seconds() -> float:
    """$AICLI_PROGRESS_SECONDS (at least 1), else HEARTBEAT_S."""
    raw = os.environ.get("AICLI_PROGRESS_SECONDS", "")
    try:
        return max(1.0, float(raw)) if raw else HEARTBEAT_S
    except ValueError:
        return HEARTBEAT_S


@contextlib.contextmanager
def _heartbeat(total: int | None) -> Iterator[Callable[[CaseResult], None]]:
    """`120/400 done, 3 failed, $0.41` on stderr every HEARTBEAT_S while the run lasts."""
    tally = _Tally()
    stop = threading.Event()
    every = _heartbeat_seconds()

    def beat() -> None:
        while not stop.wait(every):
            of = "" if total is None else f"/{total}"
            info(f"{tally.done}{of} done, {tally.failed} failed, ${tally.cost:.2f}")

    thread = threading.Thread(target=beat, name="aicli-heartbeat", daemon=True)
    thread.start()
    try:
        yield tally.add
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def _bar(total: int | None) -> Iterator[Callable[[CaseResult], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from aicli.cli.output import stderr_console

    with Progress(
        TextColumn("testing prompts"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=stderr_console(),
        transient=True,
    ) as bar:
        task = bar.add_task("run", total=total, failed=0)
        tally = _Tally()

        def advance(r: CaseResult) -> None:
            tally.add(r)
            bar.update(task, advance=1, failed=tally.failed)

        yield advance
