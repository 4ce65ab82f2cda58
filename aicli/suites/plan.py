"""Planning a suite run: its options, the jobs (case x tier x repeat) and the requests they send.

Everything here is decided before a model is called: every tier a job or its grader needs is
checked (exit 2), and a case's messages and Request are built the same way for a run and for
scripts/make_recording.py. `runner.py` runs the jobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aicli.errors import UsageError
from aicli.suites.assertions import build_rubric_prompt
from aicli.suites.load import matches, shard_of
from aicli.suites.model import Assertion, Case, Suite, suite_error
from aicli.suites.repeats import MIN_RUNS
from aicli.types import CacheMode, Request

if TYPE_CHECKING:
    from aicli.batch.run import BatchSettings
    from aicli.config import Config
    from aicli.templates import Rendered, TemplateStore


@dataclass
class RunOptions:
    tiers: list[str] = field(default_factory=list)  # -t; empty: case > suite > template > default
    model: str | None = None  # -m: overrides each tier's model (same provider)
    concurrency: int = 8
    repeat: int = 1
    filter: str | None = None  # -k: glob or case-insensitive substring of "suite/case"
    fail_fast: bool = False
    cache_mode: CacheMode = "use"
    grader: str | None = None  # --grader TIER for llm-rubric
    redact: bool | None = None  # None: the config's redact.enabled
    shard: tuple[int, int] | None = None  # --shard K/N: (K, N)
    fallback: bool | None = None  # None: on for one tier, off when tiers are compared (-t a -t b)
    batch: BatchSettings | None = None  # --batch: batch-enabled tiers answer through batches
    max_repeat: int | None = None  # --repeat auto: at most this many runs; None: a fixed --repeat
    pass_threshold: float = 1.0  # --pass-rate as a fraction: where --repeat auto decides a case

    @property
    def auto(self) -> bool:
        return self.max_repeat is not None

    @property
    def first_runs(self) -> int:
        """Runs planned per case+tier up front; --repeat auto adds more while undecided."""
        return min(MIN_RUNS, self.max_repeat or 1) if self.auto else self.repeat

    @property
    def uses_fallback(self) -> bool:
        return self.fallback if self.fallback is not None else len(set(self.tiers)) < 2

    def in_scope(self, case_id: str) -> bool:
        """Whether -k and --shard select this case (baseline cases outside are not `removed`)."""
        if self.filter and not matches(case_id, self.filter):
            return False
        return self.shard is None or shard_of(case_id, self.shard[1]) == self.shard[0]


@dataclass(slots=True)
class Job:
    """One run of one case on one tier."""

    suite: Suite
    case: Case
    tier: str
    repeat_index: int = 0


def case_tier(cfg: Config, store: TemplateStore, suite: Suite, case: Case) -> str:
    """Without -t: the case's tier, else the suite's, else the template's, else default_tier."""
    tier = case.tier or suite.tier
    if tier is None and suite.template is not None:
        tier = store.get(suite.template).tier
    return tier or cfg.default_tier


def grader_tier(cfg: Config, assertion: Assertion, opts: RunOptions) -> str:
    """--grader, else the assertion's own `grader`, else a tier named `grader`, else the default."""
    if opts.grader:
        return opts.grader
    if assertion.extra.get("grader"):
        return str(assertion.extra["grader"])
    return "grader" if "grader" in cfg.tiers else cfg.default_tier


def plan_jobs(
    suites: list[Suite], cfg: Config, store: TemplateStore, opts: RunOptions
) -> list[Job]:
    """Every (case, tier, repeat) to run, in suite order; all tiers are checked here (exit 2)."""
    selected = [
        (s, c) for s in suites for c in s.cases if not opts.filter or matches(c.id, opts.filter)
    ]
    if not selected:
        example = suites[0].cases[0].id if suites and suites[0].cases else "suite/case"
        raise UsageError(
            f"-k/--filter {opts.filter!r} matches no case",
            f"case ids look like {example!r}; a pattern with * ? [ is a glob, anything else a"
            " case-insensitive substring",
        )
    selected = [(s, c) for s, c in selected if opts.in_scope(c.id)]  # an empty shard is fine
    for name in opts.tiers:
        cfg.tier(name)
    if opts.grader:
        cfg.tier(opts.grader)
    jobs: list[Job] = []
    for suite, case in selected:
        tiers = list(dict.fromkeys(opts.tiers)) or [case_tier(cfg, store, suite, case)]
        _check_tiers(cfg, suite, case, tiers, opts)
        for tier in tiers:
            runs = 1 if case.skip else opts.first_runs
            jobs.extend(Job(suite, case, tier, i) for i in range(runs))
    return jobs


def _check_tiers(cfg: Config, suite: Suite, case: Case, tiers: list[str], opts: RunOptions) -> None:
    names = list(tiers)
    names += [grader_tier(cfg, a, opts) for a in case.asserts if a.base_type == "llm-rubric"]
    for name in names:
        if name not in cfg.tiers:
            raise suite_error(
                suite.file,
                f"unknown tier {name!r}",
                line=case.line,
                case=case.name,
                hint=f"tiers in {cfg.source}: {', '.join(sorted(cfg.tiers))}",
            )


def render_case(suite: Suite, case: Case, store: TemplateStore) -> Rendered:
    """The case's messages: its template rendered with its vars, or the suite's inline prompt."""
    if suite.template is not None:
        from aicli.templates import render

        return render(store.get(suite.template), case.vars)
    from aicli.templates import render_inline

    return render_inline(
        suite.prompt or "", case.vars, base_dir=suite.file.parent, system=suite.system
    )


def build_request(job: Job, rendered: Rendered, opts: RunOptions) -> Request:
    """The Request a case run sends; make_recording.py builds its recording through this too."""
    return Request(
        messages=rendered.messages(),
        tier=job.tier,
        model=opts.model,
        template=rendered.template,
        cache_mode=opts.cache_mode,  # each repeat has its own key: a second run costs nothing
        redact=opts.redact,
        fallback=opts.uses_fallback,
        repeat=job.repeat_index,
    )


def grader_request(rubric: str, output: str, tier: str, opts: RunOptions) -> Request:
    return Request(
        messages=build_rubric_prompt(rubric, output),
        tier=tier,
        temperature=0.0,
        cache_mode=opts.cache_mode,
        redact=opts.redact,
    )
