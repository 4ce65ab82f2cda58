"""`aicli test-prompts`: run prompt suites, write reports, exit 0/1/2/4/130 for CI."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from aicli.cli import options
from aicli.cli.completion import suite_paths, tier_names
from aicli.cli.output import (
    error,
    handle_errors,
    info,
    is_tty,
    out,
    stdout_console,
    use_color,
)

if TYPE_CHECKING:
    from aicli.reports import ReportWriter
    from aicli.reports.results import CaseResult, Summary
    from aicli.suites.runner import Job, Runner

EXIT_INTERRUPTED = 130
_SHOW_ALL_UP_TO = 50  # without -v, passed rows are left out of bigger tables
_LOG_WIDTH = 160


def test_prompts(
    paths: list[Path] = typer.Argument(
        None,
        metavar="PATH",
        help="Suite files, or folders searched for *.test.yaml (default: prompts_dir).",
        autocompletion=suite_paths,
        show_default=False,
    ),
    tier: list[str] = typer.Option(
        [],
        "--tier",
        "-t",
        metavar="NAME",
        autocompletion=tier_names,
        help="Run every case on this tier (repeatable: tiers are compared side by side). "
        "Default: a case's tier, else its suite's, else its template's, else default_tier.",
        show_default=False,
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", metavar="MODEL", help="Override the tier's model (same provider)."
    ),
    concurrency: int = typer.Option(
        8,
        "--concurrency",
        "-j",
        metavar="N",
        min=1,
        max=1000,
        help="Model calls in flight at once.",
    ),
    repeat: int = typer.Option(
        1,
        "--repeat",
        metavar="N",
        min=1,
        max=1000,
        help="Run each case N times and report its pass rate (flaky cases are flagged). Only "
        "the first run may be answered from the cache; runs 2..N always call the model and "
        "refresh the cache entry.",
    ),
    filter_: str | None = typer.Option(
        None,
        "--filter",
        "-k",
        metavar="PATTERN",
        help="Only cases whose 'suite/case' id matches: a glob with * ? [, else a "
        "case-insensitive substring.",
    ),
    pass_rate: float = typer.Option(
        100.0,
        "--pass-rate",
        metavar="PCT",
        min=0.0,
        max=100.0,
        help="Exit 0 when at least this percentage of the cases that ran passed.",
    ),
    fail_fast: bool = typer.Option(
        False, "--fail-fast", "-x", help="Start nothing new after the first failure or error."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the cache."),
    cache_only: bool = typer.Option(
        False, "--cache-only", help="Answer only from the cache (a miss is an api_error)."
    ),
    record: Path | None = typer.Option(
        None,
        "--record",
        metavar="FILE",
        help="Write every answer to this JSONL file (keyed like the cache).",
    ),
    replay: Path | None = typer.Option(
        None,
        "--replay",
        metavar="FILE",
        help="Answer only from a --record file: no network, no key, no cost.",
    ),
    max_cost: float | None = typer.Option(
        None,
        "--max-cost",
        metavar="USD",
        min=0.0,
        max=1e9,
        help="Budget in USD for the run; when reached the rest is skipped (exit 4).",
    ),
    output: list[Path] = typer.Option(
        [],
        "--output",
        "-o",
        metavar="FILE",
        help="Write a report; the extension picks the format: .json .jsonl .xml (JUnit) .html "
        "(repeatable).",
        show_default=False,
    ),
    grader: str | None = typer.Option(
        None,
        "--grader",
        metavar="TIER",
        autocompletion=tier_names,
        help="Tier that judges llm-rubric assertions (default: an assertion's own `grader`, "
        "else a tier named 'grader', else default_tier).",
    ),
    no_redact: bool = typer.Option(False, "--no-redact", help="Send prompts unredacted."),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="List passed cases in every table; info lines on stderr."
    ),
    config: Path | None = options.CONFIG,
    log_format: options.LogFormatChoice | None = options.LOG_FORMAT,
    debug: bool = options.DEBUG,
) -> None:
    """Run prompt test suites (*.test.yaml) and report like a test runner.

    The last stdout line is `N passed, N failed` (`, N skipped` may follow). Exit codes: 0 all
    passed (or the pass rate reached --pass-rate), 1 failures, 2 invalid suites or usage,
    4 budget reached, 130 interrupted (reports are still written for what completed).

    \b
    Examples:
      aicli test-prompts
      aicli test-prompts prompts/extraction -t standard -t premium
      aicli test-prompts --replay prompts/recordings/shipped.jsonl -o report.xml -o report.html
    """
    with handle_errors(debug, verbose=verbose, log_format=log_format):
        from aicli.errors import UsageError
        from aicli.suites.runner import RunOptions

        if no_cache and cache_only:
            raise UsageError("--no-cache and --cache-only exclude each other", "pick one of them")
        if record is not None and replay is not None:
            raise UsageError(
                "--record and --replay exclude each other",
                "record once with --record FILE, then run with --replay FILE",
            )
        opts = RunOptions(
            tiers=list(tier),
            model=model,
            concurrency=concurrency,
            repeat=repeat,
            filter=filter_,
            fail_fast=fail_fast,
            cache_mode="off" if no_cache else "only" if cache_only else "use",
            grader=grader,
            redact=False if no_redact else None,
        )
        code = _main(
            list(paths or []), opts, pass_rate=pass_rate, record=record, replay=replay,
            max_cost=max_cost, outputs=list(output), verbose=verbose, config=config,
        )  # fmt: skip
        if code:
            raise typer.Exit(code)


def _main(
    paths: list[Path],
    opts: Any,
    *,
    pass_rate: float,
    record: Path | None,
    replay: Path | None,
    max_cost: float | None,
    outputs: list[Path],
    verbose: bool,
    config: Path | None,
) -> int:
    from aicli.config import load_config
    from aicli.cost import Budget
    from aicli.engine import Engine
    from aicli.recording import Recorder, ReplayStore
    from aicli.reports import open_writers
    from aicli.reports.summary import SummaryBuilder, final_line
    from aicli.suites.load import load_suites, validate_against_templates
    from aicli.suites.runner import Runner, plan_jobs
    from aicli.templates import TemplateStore

    # Every bad input is exit 2 here, before any model is called.
    cfg = load_config(config)
    suites = load_suites(paths, cfg.prompts_dir)
    store = TemplateStore(cfg.prompts_dir)
    validate_against_templates(suites, store)
    jobs = plan_jobs(suites, cfg, store, opts)
    replay_store = ReplayStore(replay).load() if replay is not None else None
    if verbose:
        source = "the cache, then the model"
        if replay_store is not None:
            source = f"the {len(replay_store)} answers in {replay} (no network, no cost)"
        cases = len({j.case.id for j in jobs})
        info(f"aicli: info: {len(jobs)} runs of {cases} cases; answers from {source}")
    writers = open_writers(outputs)
    try:
        recorder = Recorder(record) if record is not None else None
    except BaseException:
        for w in writers:
            w.abort()
        raise

    builder = SummaryBuilder()
    results: list[CaseResult] = []
    budget = Budget(max_cost if max_cost is not None else cfg.budget.max_cost_usd)
    engine = Engine(cfg, recorder=recorder, replay=replay_store, budget=budget)
    started = time.monotonic()
    runner: Runner | None = None
    interrupted = False
    closed = False
    try:
        with _progress(len(jobs)) as advance:

            def on_result(r: CaseResult) -> None:
                builder.add(r)
                for w in writers:
                    w.add(r)
                results.append(r)
                advance(r)

            runner = Runner(engine, store, opts, on_result)
            import asyncio

            try:
                asyncio.run(_run(runner, engine, jobs))
            except KeyboardInterrupt:  # Ctrl-C outside the runner's own handler
                interrupted = True
        interrupted = interrupted or runner.interrupted
        summary = builder.build(
            interrupted=interrupted or runner.fatal is not None,
            duration_s=time.monotonic() - started,
        )
        closed = True
        _close(writers, summary, recorder)
    finally:
        if not closed:  # a crash: still leave valid reports for what completed
            with contextlib.suppress(Exception):
                _close(writers, builder.build(interrupted=True), recorder)

    assert runner is not None
    if runner.fatal is not None:
        raise runner.fatal
    _report(summary, results, _order(jobs), verbose)
    out(final_line(summary))
    if replay is not None:
        _warn_if_nothing_matched(results, replay)
    if interrupted:
        error("interrupted: the reports hold the results that completed")
        return EXIT_INTERRUPTED
    if runner.budget_error is not None:
        err = runner.budget_error
        error(f"budget reached, the remaining cases were skipped: {err.message}", err.hint)
        return err.exit_code
    return 0 if summary.pass_rate * 100 >= pass_rate - 1e-9 else 1


def _warn_if_nothing_matched(results: list[CaseResult], replay: Path) -> None:
    ran = [r for r in results if r.status != "skipped"]
    missed = [r for r in ran if r.reason_kind == "api_error" and "not recorded" in r.reason]
    if ran and len(missed) == len(ran):
        from aicli.cli.output import warn

        warn(
            f"no request matched an answer in {replay}: keys include each tier's endpoint and "
            "model, so a config or $OPENAI_BASE_URL other than the recording's changes them all"
        )


async def _run(runner: Runner, engine: Any, jobs: list[Job]) -> None:
    try:
        await runner.run(jobs)
    finally:
        with contextlib.suppress(Exception):
            await engine.aclose()


def _close(writers: list[ReportWriter], summary: Summary, recorder: Any) -> None:
    from aicli.reports import close_writers

    try:
        close_writers(writers, summary)
    finally:
        if recorder is not None:
            recorder.close()


def _order(jobs: list[Job]) -> dict[tuple[str, str, str, int], int]:
    return {(j.suite.name, j.case.name, j.tier, j.repeat_index): i for i, j in enumerate(jobs)}


def _report(
    summary: Summary,
    results: list[CaseResult],
    order: dict[tuple[str, str, str, int], int],
    verbose: bool,
) -> None:
    """The terminal report on stdout, in suite order (results arrive in completion order)."""
    from aicli.reports.terminal import render_terminal

    ranked = sorted(
        results, key=lambda r: order.get((r.suite, r.case, r.tier, r.repeat_index), len(order))
    )
    show_passed = verbose or len(ranked) <= _SHOW_ALL_UP_TO
    console = stdout_console()
    if not is_tty(sys.stdout) and not os.environ.get("COLUMNS"):
        console.width = _LOG_WIDTH  # CI logs and files are wider than rich's 80-column guess
    render_terminal(summary, ranked, console, show_passed=show_passed)
    used = sorted({(t.name, t.version, t.checksum) for r in ranked if (t := r.template)})
    if used:
        out("templates: " + ", ".join(f"{n}@{v} ({c})" for n, v, c in used))
    hidden = 0 if show_passed else sum(r.status == "passed" for r in ranked)
    if hidden:
        out(f"({hidden} passed results not listed; -v lists them)")


@contextlib.contextmanager
def _progress(total: int) -> Any:
    """A progress bar on stderr when it is a terminal, NO_COLOR is unset and the logs are text;
    else nothing."""
    from aicli.logs import current_format

    if not use_color(sys.stderr) or total == 0 or current_format() == "json":
        yield lambda r: None
        return
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
        failed = [0]

        def advance(r: CaseResult) -> None:
            failed[0] += r.status in ("failed", "error")
            bar.update(task, advance=1, failed=failed[0])

        yield advance
