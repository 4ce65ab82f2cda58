"""`--repeat auto`: which runs a case still needs before its Wilson interval leaves the threshold.

The runner asks after each run; a case whose runs so far are all in gets the runs it needs
whatever they give (`aicli.stats.runs_still_needed`), at most `--max-repeat` in all, so running
them side by side costs no call a one-at-a-time loop would not also make.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aicli.reports.results import CaseResult, Tally
from aicli.stats import runs_still_needed

if TYPE_CHECKING:
    from aicli.suites.plan import Job

MIN_RUNS = 3  # every case runs at least this often
DEFAULT_MAX = 10


@dataclass
class _Group:
    """A case on one tier: runs queued, runs done, and how they went."""

    planned: int = 0
    done: int = 0
    tally: Tally = field(default_factory=Tally)
    stopped: bool = False  # a run was skipped (budget, a stop): queue no more


class AutoRepeat:
    """Counts each case+tier's runs and says which to run next."""

    def __init__(self, threshold: float, most: int) -> None:
        self.threshold = threshold
        self.most = most
        self._groups: dict[tuple[str, str], _Group] = {}

    def planned(self, jobs: list[Job]) -> None:
        for job in jobs:
            self._groups.setdefault((job.case.id, job.tier), _Group()).planned += 1

    def after(self, job: Job, result: CaseResult) -> range:
        """The repeat indexes to queue now that `job` gave `result` (none while others of its
        case are still out)."""
        group = self._groups[(job.case.id, job.tier)]
        group.done += 1
        if result.status == "skipped":
            group.stopped = True
        else:
            group.tally = group.tally.plus(result.status == "passed")
        if group.done < group.planned or group.stopped:
            return range(0)
        more = runs_still_needed(group.tally.passed, group.tally.runs, self.threshold, self.most)
        first = group.planned
        group.planned += more
        return range(first, first + more)
