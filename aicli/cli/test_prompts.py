"""`aicli test-prompts`: run prompt suites, write reports, exit 0/1/2/4/130 for CI."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aicli.cli import options, report_view
from aicli.cli.completion import suite_paths, tier_names
from aicli.cli.output import (
    error,
    handle_errors,
    info,
    interrupted_code,
    interrupted_message,
)
from aicli.cli.progress import progress
from aicli.cli.startup import long_lived

if TYPE_CHECKING:
    from aicli.batch.run import BatchSettings
    from aicli.config import Config
    from aicli.reports.results import CaseResult
    from aicli.suites.model import Suite
    from aicli.suites.runner import Job, RunOptions


def test_prompts(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="PATH",
            help="Suite files, or folders searched for *.test.yaml (default: prompts_dir).",
            autocompletion=suite_paths,
            show_default=False,
        ),
    ] = None,
    tier: Annotated[
        list[str] | None,
        typer.Option(
            "--tier",
            "-t",
            metavar="NAME",
            autocompletion=tier_names,
            help="Run every case on this tier (repeatable: tiers are compared side by side). "
            "Default: a case's tier, else its suite's, else its template's, else default_tier.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", metavar="MODEL", help="Override the tier's model (same provider)."
        ),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            "-j",
            metavar="N",
            min=1,
            max=1000,
            help="Model calls in flight at once.",
        ),
    ] = 8,
    repeat: Annotated[
        str,
        typer.Option(
            "--repeat",
            metavar="N|auto",
            help="Run each case N times: its pass rate with a 95% Wilson interval, flaky cases "
            "listed. Each run is its own cache and recording entry, so running again costs "
            "nothing. auto: at least 3 runs, then more until the interval lies wholly above or "
            "below --pass-rate, at most --max-repeat.",
        ),
    ] = "1",
    max_repeat: Annotated[
        int | None,
        typer.Option(
            "--max-repeat",
            metavar="M",
            min=3,
            max=1000,
            help="With --repeat auto: the most runs a case gets.  [default: 10]",
            show_default=False,
        ),
    ] = None,
    filter_: Annotated[
        str | None,
        typer.Option(
            "--filter",
            "-k",
            metavar="PATTERN",
            help="Only cases whose 'suite/case' id matches: a glob with * ? [, else a "
            "case-insensitive substring.",
        ),
    ] = None,
    pass_rate: report_view.PassRateOpt = 100.0,
    fail_fast: Annotated[
        bool,
        typer.Option(
            "--fail-fast", "-x", help="Start nothing new after the first failure or error."
        ),
    ] = False,
    no_cache: options.NoCacheOpt = False,
    cache_only: options.CacheOnlyCaseOpt = False,
    record: Annotated[
        Path | None,
        typer.Option(
            "--record",
            metavar="FILE",
            help="Write every answer to this JSONL file (keyed like the cache).",
        ),
    ] = None,
    replay: Annotated[
        Path | None,
        typer.Option(
            "--replay",
            metavar="FILE",
            help="Answer only from a --record file: no network, no key, no cost.",
        ),
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option(
            "--max-cost",
            metavar="USD",
            min=0.0,
            max=1e9,
            help="Budget in USD for the run; when reached the rest is skipped (exit 4).",
        ),
    ] = None,
    output: report_view.OutputOpt = None,
    json_out: report_view.JsonOpt = False,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            metavar="K/N",
            help="Run shard K of N: a case's shard is int(sha256('suite/case'), 16) % N + 1, so "
            "adding a case never moves another; all tiers and repeats of a case stay together.",
        ),
    ] = None,
    baseline: report_view.BaselineOpt = None,
    fail_on: report_view.FailOnOpt = report_view.FailOn.any,
    alpha: report_view.AlphaOpt = 0.05,
    fallback: Annotated[
        bool,
        typer.Option(
            "--fallback",
            help="With several -t, let a tier fall back (off by default so each tier answers for "
            "itself; a run that fell back shows as standard→economy).",
        ),
    ] = False,
    grader: Annotated[
        str | None,
        typer.Option(
            "--grader",
            metavar="TIER",
            autocompletion=tier_names,
            help="Tier that judges llm-rubric assertions (default: an assertion's own `grader`, "
            "else a tier named 'grader', else default_tier).",
        ),
    ] = None,
    batch: Annotated[
        bool,
        typer.Option(
            "--batch",
            help="Send the calls of tiers whose provider sets `batch: true` through its Batch API "
            "(the batch price, answers within 24 h), grader calls in a second batch. Run the same "
            "command again to pick up batches of a killed run; nothing is submitted twice.",
        ),
    ] = False,
    batch_only: Annotated[
        bool,
        typer.Option(
            "--batch-only",
            help="With --batch: a request the batch does not answer is an error, instead of "
            "taking the usual path (retries, fallback) at the normal price.",
        ),
    ] = False,
    batch_timeout: Annotated[
        str,
        typer.Option(
            "--batch-timeout",
            metavar="DURATION",
            help="With --batch: how long to wait for a batch (90s, 30m, 24h); then it is "
            "cancelled and what it did not answer takes the usual path.",
        ),
    ] = "24h",
    no_redact: Annotated[
        bool, typer.Option("--no-redact", help="Send prompts unredacted.")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="List passed cases in every table; info lines on stderr."
        ),
    ] = False,
    config: options.ConfigOpt = None,
    log_format: options.LogFormatOpt = None,
    debug: options.DebugOpt = False,
) -> None:
    """Run prompt test suites (*.test.yaml) and report like a test runner.

    The last stdout line is `N passed, N failed` (`, N skipped` may follow). Exit codes: 0 all
    passed (or the pass rate reached --pass-rate), 1 failures, 2 invalid suites or usage,
    4 budget reached, 130 interrupted (143 on SIGTERM; reports are still written for what
    completed).

    \b
    Examples:
      aicli test-prompts
      aicli test-prompts prompts/extraction -t standard -t premium
      aicli test-prompts --replay prompts/recordings/shipped.jsonl -o report.xml -o report.html
    """
    with handle_errors(debug, verbose=verbose, log_format=log_format):
        from aicli.errors import UsageError
        from aicli.suites.runner import RunOptions

        cache_mode = options.cache_mode(no_cache, cache_only=cache_only)
        if record is not None and replay is not None:
            raise UsageError(
                "--record and --replay exclude each other",
                "record once with --record FILE, then run with --replay FILE",
            )
        _check_distinct_files(list(output or []), record, replay)
        if (batch_only or batch_timeout != "24h") and not batch:
            raise UsageError(
                "--batch-only and --batch-timeout need --batch", "add --batch, or drop them"
            )
        from aicli.suites.load import parse_shard

        runs, most = _parse_repeat(repeat, max_repeat)
        opts = RunOptions(
            tiers=list(tier or []),
            model=model,
            concurrency=concurrency,
            repeat=runs,
            max_repeat=most,
            pass_threshold=pass_rate / 100,
            filter=filter_,
            fail_fast=fail_fast,
            cache_mode=cache_mode,
            grader=grader,
            redact=False if no_redact else None,
            shard=parse_shard(shard) if shard is not None else None,
            fallback=True if fallback else None,
            batch=_batch_settings(batch_timeout, batch_only) if batch else None,
        )
        code = _main(
            list(paths or []), opts, pass_rate=pass_rate, record=record, replay=replay,
            max_cost=max_cost, outputs=list(output or []), json_out=json_out, baseline=baseline,
            fail_on=fail_on, alpha=alpha, verbose=verbose, config=config,
        )  # fmt: skip
        if code:
            raise typer.Exit(code)


def _main(
    paths: list[Path],
    opts: RunOptions,
    *,
    pass_rate: float,
    record: Path | None,
    replay: Path | None,
    max_cost: float | None,
    outputs: list[Path],
    json_out: bool,
    baseline: Path | None,
    fail_on: report_view.FailOn,
    alpha: float,
    verbose: bool,
    config: Path | None,
) -> int:
    with long_lived():  # start-up time: see aicli/cli/startup.py
        from aicli.config import load_config
        from aicli.cost import Budget
        from aicli.errors import BudgetError
        from aicli.providers import preload
        from aicli.replay import ReplayStore
        from aicli.suites.load import load_suites, validate_against_templates
        from aicli.suites.runner import plan_jobs
        from aicli.suites.session import run_suite
        from aicli.templates import TemplateStore

    # Every bad input is exit 2 here, before any model is called.
    cfg = load_config(config)
    suites = load_suites(paths, cfg.prompts_dir)
    store = TemplateStore(cfg.prompts_dir)
    validate_against_templates(suites, store)
    jobs = plan_jobs(suites, cfg, store, opts)
    inputs = [("suite", s.file) for s in suites]
    if Path(cfg.source).is_file():
        inputs.append(("config", Path(cfg.source)))
    _check_distinct_files(outputs, record, replay, inputs)
    replay_store = ReplayStore(replay).load() if replay is not None else None
    if replay_store is None and opts.cache_mode == "off":  # every case calls a model:
        with long_lived():  # the SDK now, frozen, rather than in the first call's event loop
            preload(cfg, {j.tier for j in jobs})
    base = report_view.read_baseline(baseline, fail_on)
    if verbose:
        source = "the cache, then the model"
        if replay_store is not None:
            source = f"the {len(replay_store)} answers in {replay} (no network, no cost)"
        cases = len({j.case.id for j in jobs})
        more = f" (--repeat auto: up to {opts.max_repeat} each)" if opts.auto else ""
        info(f"aicli: info: {len(jobs)} runs of {cases} cases{more}; answers from {source}")
    writers, json_on_stdout = report_view.open_outputs(outputs, json_out)
    budget = Budget(max_cost if max_cost is not None else cfg.budget.max_cost_usd)
    fingerprint = _fingerprint(cfg, suites, opts) if opts.batch is not None else None
    with progress(None if opts.auto else len(jobs)) as advance:
        outcome = run_suite(
            cfg, store, jobs, opts, writers=writers, budget=budget, record=record,
            replay=replay_store, baseline=base, alpha=alpha, on_result=advance,
            fingerprint=fingerprint, on_progress=lambda text: info(f"aicli: {text}"),
        )  # fmt: skip

    summary, results = outcome.summary, outcome.results
    report_view.show_report(
        summary,
        results,
        order=_order(jobs),
        verbose=verbose,
        to_stderr=json_on_stdout,
        hide_unstarted=outcome.interrupted,
    )
    if replay is not None:
        _warn_if_nothing_matched(results, replay)
    if outcome.interrupted:
        files = [p for p in outputs if p != report_view.STDOUT]
        note = ": the reports hold the results that completed" if files or json_on_stdout else ""
        what = interrupted_message(outcome.stopped_by, terminated=outcome.terminated)
        error(f"{what} after {outcome.finished}/{outcome.planned}{note}")
        return interrupted_code(outcome.stopped_by, terminated=outcome.terminated)
    err = outcome.budget_error
    if err is None and budget.overrun:
        try:
            budget.check_overrun()
        except BudgetError as exc:
            err = exc
    if err is not None:
        error(f"budget reached, the remaining cases were skipped: {err.message}", err.hint)
        return err.exit_code
    return report_view.exit_code(summary, fail_on, pass_rate)


def _parse_repeat(repeat: str, max_repeat: int | None) -> tuple[int, int | None]:
    """`--repeat N` -> (N, None); `--repeat auto` -> (3, M): at least 3 runs, at most M."""
    from aicli.errors import UsageError
    from aicli.suites.repeats import DEFAULT_MAX, MIN_RUNS

    text = repeat.strip().lower()
    if text == "auto":
        return MIN_RUNS, max_repeat if max_repeat is not None else DEFAULT_MAX
    if max_repeat is not None:
        raise UsageError("--max-repeat needs --repeat auto", "or give a fixed --repeat N alone")
    try:
        runs = int(text)
    except ValueError:
        runs = 0
    if not 1 <= runs <= 1000:
        raise UsageError(
            f"--repeat {repeat!r}: expected a whole number from 1 to 1000, or auto",
            "e.g. --repeat 5, or --repeat auto --max-repeat 10",
        )
    return runs, None


def _check_distinct_files(
    outputs: list[Path],
    record: Path | None,
    replay: Path | None,
    inputs: list[tuple[str, Path]] | None = None,
) -> None:
    """A file written by -o or --record must be no other file of the run (a symlink, ./x or a
    hard link too): two outputs would mix into one, and an input would be overwritten."""
    from aicli.errors import UsageError

    named = [(what, path, False) for what, path in inputs or []]
    named += [("--output", p, True) for p in outputs]
    named += [(f, p, f == "--record") for f, p in (("--record", record), ("--replay", replay)) if p]
    seen: dict[object, tuple[str, Path, bool]] = {}
    for what, path, writes in named:
        try:
            st = path.stat()
            ident: object = (st.st_dev, st.st_ino)
        except OSError:
            ident = path.resolve()
        first = seen.get(ident)
        if first is not None and (writes or first[2]):
            raise UsageError(
                f"{what} {path}: the same file as {first[0]} {first[1]}",
                "give each report and recording its own file",
            )
        seen.setdefault(ident, (what, path, writes))


def _warn_if_nothing_matched(results: list[CaseResult], replay: Path) -> None:
    ran = [r for r in results if r.status != "skipped"]
    missed = [r for r in ran if r.reason_kind == "api_error" and "not recorded" in r.reason]
    if ran and len(missed) == len(ran):
        from collections import Counter

        from aicli.cli.output import warn

        # each miss says what differs from the recording; name the commonest cause, not a guess
        causes = Counter(r.reason.partition("not recorded: ")[2] or "?" for r in missed)
        cause, n = causes.most_common(1)[0]
        some = "every request" if n == len(missed) else f"{n} of {len(missed)} requests"
        warn(f"no request matched an answer in {replay}; {some}: {cause}")


def _batch_settings(timeout: str, only: bool) -> BatchSettings:
    import os
    import re

    from aicli.batch.run import BatchSettings
    from aicli.errors import UsageError

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", timeout)
    if m is None or float(m.group(1)) <= 0:
        raise UsageError(
            f"--batch-timeout: expected a duration such as 90s, 30m or 24h, got {timeout[:40]!r}",
            "a number with s, m, h or d (seconds when there is no unit)",
        )
    scale = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    settings = BatchSettings(timeout_s=float(m.group(1)) * scale, only=only)
    poll = os.environ.get("AICLI_BATCH_POLL_SECONDS", "").strip()
    if poll:
        try:
            settings.poll_max_s = max(0.01, float(poll))
        except ValueError:
            raise UsageError(
                f"$AICLI_BATCH_POLL_SECONDS: expected seconds, got {poll[:40]!r}",
                "unset it for the default (polls back off from 1 s to 60 s)",
            ) from None
        settings.poll_first_s = min(settings.poll_first_s, settings.poll_max_s)
    return settings


def _fingerprint(cfg: Config, suites: list[Suite], opts: RunOptions) -> dict[str, object]:
    """What names a batch run: its suite files, config, tiers, model and parameters."""
    from aicli.digest import sha256_hex

    def digest(path: Path) -> str:
        try:
            return sha256_hex(path.read_bytes())
        except OSError:
            return ""

    config = Path(cfg.source)
    return {
        "suites": sorted(digest(s.file) for s in suites),
        "config": digest(config) if config.is_file() else "built-in",
        "tiers": sorted(opts.tiers), "model": opts.model, "repeat": opts.repeat,
        "filter": opts.filter, "shard": opts.shard, "grader": opts.grader,
        "fallback": opts.fallback, "redact": opts.redact,
        "only": bool(opts.batch and opts.batch.only),
    }  # fmt: skip


def _order(jobs: list[Job]) -> dict[tuple[str, str, str, int], int]:
    return {(j.suite.name, j.case.name, j.tier, j.repeat_index): i for i, j in enumerate(jobs)}
