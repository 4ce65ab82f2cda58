"""Build prompts/recordings/shipped.jsonl from the hand-written answers in answers.yaml.

    python scripts/make_recording.py            # rewrite the recording, then replay it
    python scripts/make_recording.py --check    # only check that the committed one is current

The recording must be keyed exactly as a keyless `aicli test-prompts --replay ...` run computes
its keys: the built-in default config (no aicli.yaml, no $OPENAI_BASE_URL), the suites' own
requests, redaction as configured. So this script does not compute keys itself: it runs the
real suite runner and engine (`aicli.suites.runner`, `aicli.engine.Engine` with a Recorder)
over the shipped suites, with the network provider swapped for an in-process one that answers
from answers.yaml. Nothing is sent anywhere. The answers were written by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _generated import write_or_check  # noqa: E402

from aicli.cache import CacheEntry  # noqa: E402
from aicli.config import Config, load_config  # noqa: E402
from aicli.cost import Budget  # noqa: E402
from aicli.engine import Engine  # noqa: E402
from aicli.providers.base import DeltaSink, ProviderAnswer, ProviderCall, ProviderFailure  # noqa: E402
from aicli.recording import Recorder  # noqa: E402
from aicli.redact import Redactor, detect  # noqa: E402
from aicli.replay import ReplayStore  # noqa: E402
from aicli.reports.results import CaseResult  # noqa: E402
from aicli.reports.summary import summarize  # noqa: E402
from aicli.suites.load import load_suites, validate_against_templates  # noqa: E402
from aicli.suites.model import Suite  # noqa: E402
from aicli.suites.runner import (  # noqa: E402
    Job,
    Runner,
    RunOptions,
    build_request,
    grader_request,
    grader_tier,
    plan_jobs,
    render_case,
)
from aicli.templates import TemplateStore  # noqa: E402
from aicli.types import Message, Request, Usage  # noqa: E402

ANSWERS = REPO / "prompts" / "recordings" / "answers.yaml"
OUTPUT = REPO / "prompts" / "recordings" / "shipped.jsonl"
RECORDED_AT = 1_732_579_200.0  # 2024-11-26 00:00 UTC: fixed, so a rebuild changes nothing
# What the OpenAI API reports as `model` for the default tiers' aliases.
SNAPSHOTS = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
}


def _fingerprint(messages: list[Message]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))  # about 4 characters a token, as for English


class AnswerBook:
    """A Provider that answers each known request with its hand-written answer."""

    name = "answers"

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._answers: dict[str, str] = {}
        self.used: set[str] = set()

    def add(self, request: Request, answer: str) -> None:
        """Index `answer` under the messages the engine will send for `request`."""
        messages, model_view = request.messages, answer
        redact = self.cfg.redact.enabled if request.redact is None else request.redact
        provider = self.cfg.provider(self.cfg.tier(request.tier or self.cfg.default_tier).provider)
        if redact and not provider.local:
            redactor = Redactor(self.cfg.redact.kinds)
            messages = redactor.redact_messages(messages)
            # The model saw placeholders, so it answers with them; the engine restores them.
            for m in request.messages:
                for found in detect(m["content"], redactor.kinds):
                    model_view = model_view.replace(found.value, redactor.redact(found.value))
        self._answers[_fingerprint(messages)] = model_view

    async def complete(self, call: ProviderCall, on_delta: DeltaSink | None) -> ProviderAnswer:
        key = _fingerprint(call.messages)
        if key not in self._answers:
            last = call.messages[-1]["content"] if call.messages else ""
            raise ProviderFailure(
                f"no hand-written answer for a request to {call.model}: {last[:300]!r}",
                fall_back=False,
                attempts=1,
            )
        self.used.add(key)
        content = self._answers[key]
        prompt = sum(_tokens(m["content"]) + 4 for m in call.messages)
        completion = _tokens(content)
        usage = Usage(prompt, completion, prompt + completion)
        return ProviderAnswer(content, usage, SNAPSHOTS.get(call.model, call.model), 1)

    async def aclose(self) -> None:
        return None


class StableRecorder(Recorder):
    """Plausible, deterministic latencies and a fixed date, so a rebuild is byte-identical."""

    def write(self, key: str, entry: CacheEntry, template: Any = None, asked: Any = None) -> None:
        jitter = int(key[:4], 16) % 240
        latency = 380.0 + 14.0 * entry.usage.completion_tokens + jitter
        stable = dataclasses.replace(entry, latency_ms=latency, created=RECORDED_AT)
        super().write(key, stable, template, asked)


def builtin_config() -> Config:
    """The config a keyless CI replay in the repo root gets: the built-in defaults."""
    for name in ("AICLI_CONFIG", "OPENAI_BASE_URL"):
        os.environ.pop(name, None)
    # A folder that holds no aicli/config.yaml, so the user's own config is not picked up.
    os.environ["XDG_CONFIG_HOME"] = str(REPO / "prompts" / "recordings" / "no-user-config")
    os.chdir(REPO)
    if (REPO / "aicli.yaml").exists():
        sys.exit("make_recording: remove ./aicli.yaml first: the recording uses the defaults")
    cfg = load_config(None)
    assert cfg.prompts_dir == REPO / "prompts", cfg.prompts_dir
    # No real endpoint is called, so no client-side rate limit (it is not part of any key).
    for name, tier in cfg.tiers.items():
        cfg.tiers[name] = dataclasses.replace(tier, rate_limit=None)
    return cfg


def load_answers() -> dict[str, dict[str, Any]]:
    data = yaml.safe_load(ANSWERS.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        sys.exit(f"make_recording: {ANSWERS} must map 'suite/case' to {{answer, grader}}")
    return data


def index_answers(
    book: AnswerBook,
    jobs: list[Job],
    store: TemplateStore,
    opts: RunOptions,
    answers: dict[str, dict[str, Any]],
) -> None:
    """Every request the run will make, built by the runner's own functions, gets its answer."""
    missing = sorted({j.case.id for j in jobs if j.case.id not in answers and not j.case.skip})
    if missing:
        sys.exit(f"make_recording: no answer in {ANSWERS.name} for: {', '.join(missing)}")
    for job in jobs:
        if job.case.skip:
            continue
        given = answers[job.case.id]
        rendered = render_case(job.suite, job.case, store)
        book.add(build_request(job, rendered, opts), given["answer"])
        rubrics = [a for a in job.case.asserts if a.base_type == "llm-rubric"]
        verdicts = given.get("grader") or []
        if len(verdicts) != len(rubrics):
            sys.exit(
                f"make_recording: {job.case.id} has {len(rubrics)} llm-rubric assertion(s) "
                f"but {len(verdicts)} grader verdict(s)"
            )
        for a, verdict in zip(rubrics, verdicts, strict=True):
            tier = grader_tier(book.cfg, a, opts)
            book.add(grader_request(a.value, given["answer"], tier, opts), verdict)


async def run_suites(
    engine: Engine, store: TemplateStore, opts: RunOptions, jobs: list[Job]
) -> list[CaseResult]:
    results: list[CaseResult] = []
    try:
        await Runner(engine, store, opts, results.append).run(jobs)
    finally:
        await engine.aclose()
    return results


def check_green(results: list[CaseResult], what: str) -> None:
    bad = [r for r in results if r.status not in ("passed", "skipped")]
    for r in bad:
        print(f"  {r.status.upper()} {r.case_id} [{r.tier}]: {r.reason}", file=sys.stderr)
    s = summarize(results)
    print(f"{what}: {s.passed} passed, {s.failed + s.errors} failed, {s.skipped} skipped")
    if bad:
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="Fail if the recording is stale.")
    args = parser.parse_args()

    cfg = builtin_config()
    store = TemplateStore(cfg.prompts_dir)
    suites: list[Suite] = load_suites([], cfg.prompts_dir)
    validate_against_templates(suites, store)
    opts = RunOptions(concurrency=1, cache_mode="off")  # one at a time: a stable line order
    jobs = plan_jobs(suites, cfg, store, opts)

    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "shipped.jsonl"
        book = AnswerBook(cfg)
        index_answers(book, jobs, store, opts, load_answers())
        recorder = StableRecorder(fresh)
        # The engine's provider for `openai` answers from the book; all else is the real path.
        engine = Engine(
            cfg, cache=None, recorder=recorder, budget=Budget(None), providers={"openai": book}
        )
        try:
            check_green(asyncio.run(run_suites(engine, store, opts, jobs)), "recorded")
        finally:
            recorder.close()
        text = fresh.read_text(encoding="utf-8")

    remedy, note = "python scripts/make_recording.py", f" ({len(text.splitlines())} answers)"
    code = write_or_check(OUTPUT, text, check=args.check, remedy=remedy, note=note)
    if args.check:
        sys.exit(code)

    replay = Engine(cfg, replay=ReplayStore(OUTPUT).load())
    check_green(asyncio.run(run_suites(replay, store, opts, jobs)), "replayed")


if __name__ == "__main__":
    main()
