"""Batch runs: what `test-prompts --batch` saves, and the memory of a large batch.

Usage (from the repo root):
    python scripts/bench_batch.py                # cost on the shipped suites, then 50,000 requests
    python scripts/bench_batch.py --memory 5000      # a smaller batch
    python scripts/bench_batch.py --memory 0         # cost only
    python scripts/bench_batch.py --usual            # also the same suite without --batch

Cost: the shipped suites (prompts/) run twice against the test server (tests/fake_openai.py,
which speaks the Batch API), each with a fresh cache: once as usual, once with --batch, every
tier priced as in config.example.yaml and the llm-rubric grader included. Printed: cost_usd of
each run, batch_saved_usd, and the share saved against the usual run (target: at least 45%).

Memory: one suite of N cases (inline prompt, one assertion each) answered through one batch
(N <= 50,000: one file); printed: the peak RSS of that `aicli test-prompts --batch` process
(target: under 250 MB for 50,000). With --usual, the same suite also runs without --batch
(`-j 64`, a fresh cache), for the runner's own share of that memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fake_openai import FakeOpenAI  # noqa: E402

KEY_ENV = "AICLI_BENCH_KEY"
VERDICT = '{"pass": true, "score": 1.0, "reason": "fine"}'


def config(base_url: str, prompts: Path) -> str:
    prices = {
        "premium": (2.50, 10.00), "standard": (0.15, 0.60), "economy": (0.50, 1.50),
        "grader": (0.15, 0.60),
    }  # fmt: skip
    tiers = "\n".join(
        f"  {name}: {{model: {name}-model, provider: fake,"
        f" price: {{input_per_1m: {i}, output_per_1m: {o}}}}}"
        for name, (i, o) in prices.items()
    )
    return (
        f"default_tier: standard\nprompts_dir: {prompts}\n"
        f"providers:\n  fake: {{base_url: '{base_url}', api_key_env: {KEY_ENV}, batch: true}}\n"
        f"defaults: {{max_retries: 0, timeout_seconds: 30}}\ntiers:\n{tiers}\n"
    )


def run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, float]:
    """Exit code and peak RSS (MB) of one aicli process (its own, from wait4: not the largest
    of every child so far)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aicli", *args],
            env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
        )  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code not in (0, 1):
            err.seek(0)
            sys.stderr.write(err.read()[-2000:].decode(errors="replace"))
            raise SystemExit(f"aicli {' '.join(args[:2])} exited {code}")
    return code, usage.ru_maxrss / 1024


def cost(server: FakeOpenAI, tmp: Path) -> None:
    server.set_answer("grader-model", VERDICT)
    (tmp / "aicli.yaml").write_text(config(server.base_url, REPO / "prompts"))
    figures = {}
    for mode in ("usual", "batch"):
        env = {**os.environ, KEY_ENV: "sk-bench", "AICLI_CACHE_DIR": str(tmp / f"cache-{mode}"),
               "AICLI_BATCH_POLL_SECONDS": "0.2", "PYTHONPATH": str(REPO)}  # fmt: skip
        out = tmp / f"{mode}.json"
        args = ["test-prompts", "-o", str(out), "--config", str(tmp / "aicli.yaml")]
        run(args + (["--batch"] if mode == "batch" else []), env, tmp)
        summary = json.loads(out.read_text())["summary"]
        figures[mode] = (summary["cost_usd"], summary["batch_saved_usd"], summary["total"])
    usual, batch = figures["usual"], figures["batch"]
    saved = 1 - batch[0] / usual[0] if usual[0] else 0.0
    print(f"shipped suites, {usual[2]} runs, grader calls included:")
    print(f"  usual run   cost_usd ${usual[0]:.6f}")
    print(f"  --batch run cost_usd ${batch[0]:.6f}  batch_saved_usd ${batch[1]:.6f}")
    verdict = "PASS" if saved >= 0.45 else "UNDER"
    print(f"  saved {saved * 100:.1f}% against the usual run (target >= 45%: {verdict})")


def memory(server: FakeOpenAI, tmp: Path, n: int, usual: bool) -> None:
    server.reset()
    server.batch.progress_seconds = 0.5
    suite = tmp / "big"  # files of 5,000 cases: a suite file holds at most 250,000 values
    suite.mkdir()
    for first in range(0, n, 5000):
        with (suite / f"part{first}.test.yaml").open("w") as fh:
            fh.write(f'suite: big{first}\nprompt: "Reply with {{{{ word }}}}"\ncases:\n')
            for i in range(first, min(n, first + 5000)):
                fh.write(f"  - {{name: c{i}, vars: {{word: w{i}}}, assert: [{{type: icontains,"
                         f" value: w{i}}}]}}\n")  # fmt: skip
    env = {**os.environ, KEY_ENV: "sk-bench", "AICLI_CACHE_DIR": str(tmp / "cache-big"),
           "AICLI_BATCH_POLL_SECONDS": "1", "PYTHONPATH": str(REPO)}  # fmt: skip
    started = time.monotonic()
    code, peak = run(
        ["test-prompts", str(suite), "--batch", "--config", str(tmp / "aicli.yaml"),
         "-o", str(tmp / "big.jsonl")], env, tmp,
    )  # fmt: skip
    took = time.monotonic() - started
    lines = len(server.batch.in_batches())
    verdict = "PASS" if peak < 250 or n < 50_000 else "OVER"
    print(
        f"{n:,} cases through {server.batch.creates} batch(es) of {lines:,} lines: exit {code},"
        f" {took:.1f} s, peak RSS {peak:.0f} MB (target < 250 MB at 50,000: {verdict})"
    )
    if usual:
        env["AICLI_CACHE_DIR"] = str(tmp / "cache-big-usual")
        started = time.monotonic()
        code, peak = run(
            ["test-prompts", str(suite), "-j", "64", "--config", str(tmp / "aicli.yaml"),
             "-o", str(tmp / "big-usual.jsonl")], env, tmp,
        )  # fmt: skip
        took = time.monotonic() - started
        print(
            f"{n:,} cases without --batch (-j 64): exit {code}, {took:.1f} s,"
            f" peak RSS {peak:.0f} MB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--memory", type=int, default=50_000, metavar="N")
    parser.add_argument("--usual", action="store_true", help="also run the N cases without --batch")
    args = parser.parse_args()
    with FakeOpenAI() as server, tempfile.TemporaryDirectory(prefix="aicli-bench-") as t:
        tmp = Path(t)
        cost(server, tmp)
        if args.memory:
            memory(server, tmp, args.memory, args.usual)


if __name__ == "__main__":
    main()
