"""`aicli report merge`: the JSON reports of a run's shards -> one report, in any format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aicli.cli import options, report_view
from aicli.cli.output import handle_errors

report_app = typer.Typer(no_args_is_help=True)


@report_app.callback()
def _group() -> None:
    """Work with the JSON reports test-prompts writes (-o FILE.json)."""


@report_app.command("merge")
def merge(
    reports: Annotated[
        list[Path],
        typer.Argument(
            metavar="REPORT.json...", help="JSON reports of one run's shards.", show_default=False
        ),
    ],
    output: report_view.OutputOpt = None,
    json_out: report_view.JsonOpt = False,
    baseline: report_view.BaselineOpt = None,
    fail_on: report_view.FailOnOpt = report_view.FailOn.any,
    alpha: report_view.AlphaOpt = 0.05,
    pass_rate: report_view.PassRateOpt = 100.0,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="List passed cases too.")
    ] = False,
    log_format: options.LogFormatOpt = None,
    debug: options.DebugOpt = False,
) -> None:
    """Merge JSON reports (the shards of one run) into one report.

    Prints the terminal summary and writes any -o format; the last stdout line is
    `N passed, N failed`. Give the run's own --pass-rate: every verdict is derived again.
    Exit codes: 0 no case failed, 1 a case failed, 2 an unreadable report, an unknown
    format_version, or the same case+tier+repeat in two reports.

    \b
    Examples:
      aicli report merge shard-*.json -o report.html -o "$GITHUB_STEP_SUMMARY.md"
      aicli report merge shard-*.json --baseline main.json --fail-on regressions -o summary.md
      aicli report merge shard-*.json --baseline main.json --fail-on significant -o pr.md
    """
    with handle_errors(debug, verbose=verbose, log_format=log_format):
        from aicli.reports import close_writers
        from aicli.reports.read import merge_reports, read_report
        from aicli.reports.summary import summarize
        from aicli.suites.session import attach_baseline

        base = report_view.read_baseline(baseline, fail_on)
        loaded = [read_report(p) for p in reports]
        results = merge_reports(loaded)
        durations = [r.duration_s for r in loaded if r.duration_s is not None]
        # Every figure is derived again from the runs the reports hold, never read back, so
        # merged shards give exactly the intervals and p-values of one run.
        summary = summarize(
            results,
            interrupted=any(r.interrupted for r in loaded),
            duration_s=max(durations) if durations else None,  # shards run side by side
            pass_threshold=pass_rate / 100,
            max_repeat=max((r.max_repeat or 0 for r in loaded), default=0) or None,
        )
        attach_baseline(summary, results, base, None, alpha=alpha)
        writers, json_on_stdout = report_view.open_outputs(list(output or []), json_out)
        for r in results:
            for w in writers:
                w.add(r)
        close_writers(writers, summary)
        report_view.show_report(
            summary, results, order=None, verbose=verbose, to_stderr=json_on_stdout
        )
        code = report_view.exit_code(summary, fail_on, pass_rate)
        if code:
            raise typer.Exit(code)
