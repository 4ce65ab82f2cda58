"""Rate limits: a fixed -j (the bare openai SDK loop) against aicli's adaptive concurrency.

Usage (from the repo root):
    python scripts/bench_ratelimit.py                        # 300 cases at -j 32, 3 runs each
    python scripts/bench_ratelimit.py --cases 600 --quota 100:1 --runs 1

The test server (tests/fake_openai.py) answers after --latency seconds and allows --quota
REQUESTS:SECONDS (a sliding window, like OpenAI's per-minute quota made small); a request over
it gets a 429 at once, with Retry-After unless --no-retry-after, and every answer carries
x-ratelimit-* headers. Both sides retry 429s with the SDK (max_retries 3). Printed for each run:
wall time, the 429s the server sent, and how many cases got an answer.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_throughput import (
    BARE_LOOP,
    FakeOpenAI,
    aicli_cmd,
    env_for,
    write_config,
    write_suite,
)


def one(
    server: FakeOpenAI, cmd: list[str], env: dict[str, str], cwd: Path
) -> tuple[float, int, int]:
    server.reset_quota()
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - start
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    # "N passed, N failed" from both sides; an errored case is one that got no answer
    passed = int(last.split(" passed")[0]) if " passed" in last else 0
    return took, server.throttled, passed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("-j", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--quota", default="150:1", help="REQUESTS:SECONDS the server allows")
    parser.add_argument("--no-retry-after", action="store_true")
    opts = parser.parse_args()
    limit, window = opts.quota.split(":")

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"{opts.cases} cases at -j {opts.j}, server latency {opts.latency * 1000:.0f} ms, quota "
        f"{limit} requests per {window} s, Retry-After {'off' if opts.no_retry_after else 'on'}"
    )
    rows: dict[str, list[tuple[float, int, int]]] = {"fixed -j (bare SDK loop)": [], "aicli": []}
    with tempfile.TemporaryDirectory(prefix="aicli-bench-") as tmp, FakeOpenAI() as server:
        server.latency = opts.latency
        server.rate_limit = (int(limit), float(window))
        server.retry_after = not opts.no_retry_after
        work = Path(tmp) / "w"
        suite = write_suite(work / "prompts", opts.cases)
        cfg = write_config(work, server.base_url)
        env = env_for(Path(tmp) / "home")
        bare = [sys.executable, "-c", BARE_LOOP, server.base_url, str(opts.cases), str(opts.j)]
        for _ in range(opts.runs):
            rows["fixed -j (bare SDK loop)"].append(one(server, bare, env, work))
            rows["aicli"].append(one(server, aicli_cmd(suite, cfg, opts.j), env, work))
    for name, runs in rows.items():
        walls = " ".join(f"{t:.2f}" for t, _, _ in runs)
        print(
            f"  {name:<26} wall median {statistics.median(t for t, _, _ in runs):6.2f} s ({walls})"
            f"   429s median {statistics.median(n for _, n, _ in runs):6.0f}"
            f" ({' '.join(str(n) for _, n, _ in runs)})"
            f"   answered {' '.join(f'{a}/{opts.cases}' for _, _, a in runs)}"
        )
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
