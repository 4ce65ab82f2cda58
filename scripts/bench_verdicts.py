"""Verdicts with their confidence, measured: what `--repeat auto` saves, and how often
`--fail-on significant` cries wolf on a prompt that did not change.

Usage (from the repo root):
    python scripts/bench_verdicts.py                    # both parts, default sizes
    python scripts/bench_verdicts.py --seeds 5 --trials 200 --repeat 10 5

Part 1, provider calls: a 40-case suite, 20 stable cases (always right) and 20 flaky ones (right
half the time), run through the real CLI (`python -m aicli test-prompts`, caches off) against the
test server (tests/fake_openai.py, a seeded model that answers right with each case's chance).
`--repeat 10` against `--repeat auto --max-repeat 10` at several `--pass-rate` thresholds; the
calls are the requests the server received, averaged over --seeds seeds.

Part 2, false alarms: --trials pairs of runs of an unchanged prompt (baseline and now drawn from
the same model: 20 cases that always pass, 20 flaky ones with pass rates spread from 50% to 95%),
--repeat runs a case on each side, judged by aicli's own comparison (`aicli.reports.baseline`)
and exit rule (`aicli.cli.report_view.exit_code`): the share of trials in which
`--fail-on regressions` and `--fail-on significant` would have failed the build.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fake_openai import ChanceAnswer, FakeOpenAI  # noqa: E402

KEY_ENV = "AICLI_BENCH_KEY"
MODEL = "bench-model"
STABLE, FLAKY = 20, 20


def write_suite(folder: Path) -> Path:
    cases = [f"  - {{name: stable{i:02d}, vars: {{q: 'chance=1.0 s{i}'}}}}" for i in range(STABLE)]
    cases += [f"  - {{name: flaky{i:02d}, vars: {{q: 'chance=0.5 f{i}'}}}}" for i in range(FLAKY)]
    path = folder / "verdicts.test.yaml"
    path.write_text(
        "suite: verdicts\nprompt: 'Answer {{ q }}'\n"
        "defaults:\n  assert: [{type: equals, value: right}]\ncases:\n" + "\n".join(cases) + "\n",
        encoding="utf-8",
    )
    return path


def write_config(folder: Path, base_url: str) -> Path:
    path = folder / "aicli.yaml"
    path.write_text(
        f"""default_tier: bench
prompts_dir: .
providers:
  fake: {{base_url: "{base_url}", api_key_env: {KEY_ENV}}}
defaults: {{max_retries: 0, rate_limit: 100000, timeout_seconds: 10}}
tiers:
  bench: {{model: {MODEL}, provider: fake}}
""",
        encoding="utf-8",
    )
    return path


def calls(server: FakeOpenAI, seed: int, suite: Path, cfg: Path, extra: list[str]) -> int:
    server.reset()
    server.set_answer(MODEL, ChanceAnswer(seed=seed))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AICLI_", "OPENAI_"))}
    env.update({KEY_ENV: "bench", "PYTHONPATH": str(REPO), "NO_COLOR": "1"})
    env["XDG_CACHE_HOME"] = str(cfg.parent / "cache")
    cmd = [sys.executable, "-m", "aicli", "test-prompts", str(suite), "--config", str(cfg)]
    cmd += ["--no-cache", "-j", "16", *extra]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=cfg.parent)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}")
    return len(server.requests)


def part_calls(seeds: int) -> None:
    print(f"Provider calls, {STABLE} stable + {FLAKY} flaky (50%) cases, mean of {seeds} seeds")
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI() as server:
        folder = Path(tmp)
        suite, cfg = write_suite(folder), write_config(folder, server.base_url)
        fixed = statistics.mean(
            calls(server, s, suite, cfg, ["--repeat", "10"]) for s in range(seeds)
        )
        print(f"  --repeat 10                                  {fixed:7.1f} calls")
        for pct in (50, 70, 90, 100):
            auto = ["--repeat", "auto", "--max-repeat", "10", "--pass-rate", str(pct)]
            got = [calls(server, s, suite, cfg, auto) for s in range(seeds)]
            mean = statistics.mean(got)
            print(
                f"  --repeat auto --max-repeat 10 --pass-rate {pct:<3} {mean:7.1f} calls"
                f"  ({100 * (1 - mean / fixed):4.1f}% fewer; min {min(got)}, max {max(got)})"
            )


def auto_runs(rng: random.Random, p: float, threshold: float, most: int) -> list[bool]:
    """One case under --repeat auto: at least 3 runs, then what aicli would queue."""
    from aicli.stats import runs_still_needed
    from aicli.suites.repeats import MIN_RUNS

    got: list[bool] = [rng.random() < p for _ in range(MIN_RUNS)]
    while more := runs_still_needed(sum(got), len(got), threshold, most):
        got += [rng.random() < p for _ in range(more)]
    return got


def part_false_alarms(trials: int, repeat: int, seed: int, auto: float | None = None) -> None:
    """`repeat` runs a case on each side, or --repeat auto up to `repeat` at `auto` pass rate."""
    from aicli.cli.report_view import FailOn, exit_code
    from aicli.reports.baseline import compare
    from aicli.reports.results import CaseResult
    from aicli.reports.summary import summarize

    rates = [1.0] * STABLE + [0.5 + 0.45 * i / (FLAKY - 1) for i in range(FLAKY)]
    rng = random.Random(seed)

    def outcomes(p: float) -> list[bool]:
        if auto is not None:
            return auto_runs(rng, p, auto, repeat)
        return [rng.random() < p for _ in range(repeat)]

    def run() -> list[CaseResult]:
        return [
            CaseResult("s", f"c{c:02d}", "bench", i, "passed" if ok else "failed")
            for c, p in enumerate(rates)
            for i, ok in enumerate(outcomes(p))
        ]

    alarms = {FailOn.regressions: 0, FailOn.significant: 0}
    for _ in range(trials):
        before, now = run(), run()
        summary = summarize(now)
        summary.baseline = compare("base.json", before, summary, now)
        for rule in alarms:
            alarms[rule] += exit_code(summary, rule) == 1
    how = f"--repeat {repeat}"
    if auto is not None:
        how = f"--repeat auto --max-repeat {repeat} --pass-rate {auto * 100:g}"
    print(
        f"False alarms over {trials} runs of an unchanged prompt ({STABLE} stable + {FLAKY} flaky"
        f" cases at 50-95%, {how} on each side, alpha 0.05):"
    )
    for rule, n in alarms.items():
        print(f"  --fail-on {rule.value:<12} {n:4d}/{trials} = {100 * n / trials:5.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, default=5, help="part 1: runs averaged per setting")
    parser.add_argument("--trials", type=int, default=200, help="part 2: simulated runs")
    parser.add_argument(
        "--repeat", type=int, nargs="+", default=[10, 5, 3, 1], help="part 2: runs a case per side"
    )
    parser.add_argument("--seed", type=int, default=26, help="part 2: the simulation's seed")
    parser.add_argument("--skip-calls", action="store_true", help="part 2 only")
    args = parser.parse_args()
    if not args.skip_calls:
        part_calls(args.seeds)
    for repeat in args.repeat:
        part_false_alarms(args.trials, repeat, args.seed)
    for pct in (80, 100):  # the CI job the docs show, and the default threshold
        part_false_alarms(args.trials, 10, args.seed, auto=pct / 100)


if __name__ == "__main__":
    main()
