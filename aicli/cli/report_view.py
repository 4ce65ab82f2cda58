"""What test-prompts and report merge print and return: the terminal report and the exit code."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aicli.cli.output import info, is_tty, out, stderr_console, stdout_console
from aicli.errors import ExitCode

if TYPE_CHECKING:
    from aicli.reports import ReportWriter
    from aicli.reports.read import Report
    from aicli.reports.results import CaseResult, Summary

_SHOW_ALL_UP_TO = 50  # without -v, passed rows are left out of bigger tables
_EXPLAIN_UP_TO = 100  # without -v, failures explained in full (the table lists them all)
_LOG_WIDTH = 160
STDOUT = Path("-")  # `-o -`: the JSON report on stdout


class FailOn(str, Enum):
    any = "any"
    regressions = "regressions"
    significant = "significant"


BaselineOpt = Annotated[
    Path | None,
    typer.Option(
        "--baseline",
        metavar="REPORT.json",
        help="Compare with an earlier JSON report: each case+tier is regressed, fixed, new, "
        "removed or unchanged; per tier the change in pass rate, cost and p95 latency.",
    ),
]
FailOnOpt = Annotated[
    FailOn,
    typer.Option(
        "--fail-on",
        help="any: exit 1 for any failure. regressions: exit 1 only for regressed cases and new "
        "cases that fail. significant: exit 1 only when a case or a tier got significantly "
        "worse (Fisher exact per case, Holm-corrected; exact McNemar per tier; a case that "
        "passed every run before and fails every run now always counts). Both need --baseline.",
        case_sensitive=False,
    ),
]
OutputOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--output",
        "-o",
        metavar="FILE",
        help="Write a report; the extension picks the format: .json .jsonl .xml (JUnit) .html "
        ".md (GitHub Markdown); `-` writes the JSON report to stdout. Missing folders are "
        "created (repeatable).",
        show_default=False,
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Write the JSON report to stdout (same as -o -).")
]
PassRateOpt = Annotated[
    float,
    typer.Option(
        "--pass-rate",
        metavar="PCT",
        min=0.0,
        max=100.0,
        help="Exit 0 when at least this percentage of the runs that were not skipped passed; with "
        "repeats also the pass rate a case needs (its verdict, and where --repeat auto decides).",
    ),
]
AlphaOpt = Annotated[
    float,
    typer.Option(
        "--alpha",
        metavar="P",
        min=1e-9,
        max=0.5,
        help="Significance level of the comparison with --baseline (p-values are Holm-corrected "
        "across cases).",
    ),
]


def read_baseline(path: Path | None, fail_on: FailOn) -> Report | None:
    from aicli.errors import UsageError
    from aicli.reports.read import read_report

    if fail_on in (FailOn.regressions, FailOn.significant) and path is None:
        raise UsageError(
            f"--fail-on {fail_on.value} needs --baseline REPORT.json",
            "pass the JSON report of the run to compare with (e.g. the main branch's)",
        )
    return read_report(path) if path is not None else None


def open_outputs(paths: list[Path], json_to_stdout: bool) -> tuple[list[ReportWriter], bool]:
    """The -o writers, plus the JSON report on stdout for `-o -` / `--json`."""
    from aicli.reports import open_writers
    from aicli.reports.json import JsonWriter

    to_stdout = json_to_stdout or any(p == STDOUT for p in paths)
    writers = open_writers([p for p in paths if p != STDOUT])
    if to_stdout:
        writers.append(JsonWriter.to_stream(sys.stdout.buffer))
    return writers, to_stdout


def show_report(
    summary: Summary,
    results: list[CaseResult],
    *,
    order: dict[tuple[str, str, str, int], int] | None,
    verbose: bool,
    to_stderr: bool,
    hide_unstarted: bool = False,
) -> None:
    """The terminal report and the `N passed, N failed` line (on stderr when stdout is JSON)."""
    from aicli.reports.summary import final_line
    from aicli.reports.terminal import render_terminal
    from aicli.suites.runner import STOP_INTERRUPTED

    rank = order or {}
    # a case's runs stay together, those --repeat auto added after the planned ones included
    ranked = sorted(
        results,
        key=lambda r: (rank.get((r.suite, r.case, r.tier, 0), len(rank)), r.repeat_index),
    ) if rank else list(results)  # fmt: skip
    if hide_unstarted:  # Ctrl-C: one line says how far it got, not a row per unstarted case
        ranked = [r for r in ranked if not (r.status == "skipped" and r.reason == STOP_INTERRUPTED)]
    show_passed = verbose or len(ranked) <= _SHOW_ALL_UP_TO
    console = stderr_console() if to_stderr else stdout_console()
    stream = sys.stderr if to_stderr else sys.stdout
    if not is_tty(stream) and not os.environ.get("COLUMNS"):
        console.width = _LOG_WIDTH  # CI logs and files are wider than rich's 80-column guess
    explain = None if verbose else _EXPLAIN_UP_TO
    render_terminal(summary, ranked, console, show_passed=show_passed, explain_up_to=explain)
    say = info if to_stderr else out
    used = sorted({(t.name, t.version, t.checksum) for r in ranked if (t := r.template)})
    if used:
        say("templates: " + ", ".join(f"{n}@{v} ({c})" for n, v, c in used))
    hidden = 0 if show_passed else sum(r.status == "passed" for r in ranked)
    if hidden:
        say(f"({hidden} passed results not listed; -v lists them)")
    if summary.shard:
        say(f"shard {summary.shard}")
    say(final_line(summary))


def exit_code(summary: Summary, fail_on: FailOn, pass_rate: float = 100.0) -> int:
    """0 or 1: by --fail-on regressions or significant when asked (with a baseline), else by
    the pass rate."""
    if fail_on is FailOn.regressions and summary.baseline is not None:
        return ExitCode.FAILED if summary.baseline.blocking else ExitCode.OK
    if fail_on is FailOn.significant and summary.baseline is not None:
        return ExitCode.FAILED if summary.baseline.significantly_worse else ExitCode.OK
    return ExitCode.OK if summary.pass_rate * 100 >= pass_rate - 1e-9 else ExitCode.FAILED
