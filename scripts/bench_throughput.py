"""Suite throughput: `aicli test-prompts` against a bare asyncio loop over the official openai SDK.

Usage (from the repo root):
    python scripts/bench_throughput.py                  # 200 cases -j 16 and 1000 cases -j 64
    python scripts/bench_throughput.py --runs 5         # more interleaved runs of each
    python scripts/bench_throughput.py --memory 10000   # plus peak memory of a 10,000-case run
    python scripts/bench_throughput.py --sizes 200:16 --runs 1 --profile out.prof

Both sides run as whole processes (interpreter start and imports included), interleaved, against
the same test server (tests/fake_openai.py, answering after --latency seconds), sending the same
requests at the same concurrency, caches off. Both import their code from bytecode, as installed
packages do: aicli is byte-compiled first (with $PYTHONDONTWRITEBYTECODE set, as in some CI and
sandbox images, a source checkout would otherwise recompile every module on every run, while the
SDK's site-packages were compiled when pip installed them).

Printed: the median wall time of each side, their ratio, and the ideal (cases x latency /
concurrency). `--memory N` runs N cases at -j 64 with JSONL and JUnit reports on and prints the
peak RSS of that process.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fake_openai import FakeOpenAI  # noqa: E402

KEY_ENV = "AICLI_BENCH_KEY"
MODEL = "bench-model"
PROMPT = "Reply with the word {{ word }} and nothing else."

# The same requests as aicli sends for the suite below (defaults: max_tokens 2000, temperature
# 0.3), one shared client, at most J in flight; exits 1 unless every answer checks out.
BARE_LOOP = """
import asyncio, sys
import openai

async def main(base_url, n, j):
    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=3, timeout=30)
    gate = asyncio.Semaphore(j)

    async def one(i):
        async with gate:
            word = f"w{i}"
            prompt = f"Reply with the word {word} and nothing else."
            try:
                r = await client.chat.completions.create(
                    model="bench-model",
                    messages=[{"role": "user", "content": prompt}],
                    max_tokens=2000,
                    temperature=0.3,
                )
            except openai.APIError:
                return False
            return word in (r.choices[0].message.content or "")

    ok = await asyncio.gather(*(one(i) for i in range(n)))
    await client.close()
    print(f"{sum(ok)} passed, {n - sum(ok)} failed")
    return 0 if all(ok) else 1

sys.exit(asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
"""


def write_suite(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["suite: bench", f"prompt: {PROMPT!r}", "cases:"]
    for i in range(n):
        check = f"[{{type: contains, value: w{i}}}]"
        lines.append(f"  - {{name: c{i}, vars: {{word: w{i}}}, assert: {check}}}")
    path = folder / "bench.test.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_config(folder: Path, base_url: str) -> Path:
    path = folder / "aicli.yaml"
    path.write_text(
        f"""default_tier: standard
prompts_dir: prompts
providers:
  fake: {{base_url: "{base_url}", api_key_env: {KEY_ENV}}}
defaults: {{timeout_seconds: 30, max_retries: 3}}
tiers:
  standard: {{model: {MODEL}, provider: fake}}
""",
        encoding="utf-8",
    )
    return path


def env_for(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AICLI_", "OPENAI_")) and "API_KEY" not in k
    }
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), NO_COLOR="1")
    env[KEY_ENV] = "bench"
    env["PYTHONPATH"] = str(REPO)
    return env


def aicli_cmd(suite: Path, cfg: Path, j: int, extra: list[str] | None = None) -> list[str]:
    return [
        sys.executable, "-m", "aicli", "test-prompts", str(suite), "--config", str(cfg),
        "--no-cache", "-j", str(j), *(extra or []),
    ]  # fmt: skip


def timed(cmd: list[str], env: dict[str, str], cwd: Path, expect: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - start
    last = proc.stdout.strip().splitlines()[-1:] or [""]
    if proc.returncode != 0 or not last[0].startswith(expect):
        raise SystemExit(f"`{' '.join(cmd[:4])} ...` failed ({proc.returncode}):\n{proc.stderr}")
    return took


def compare(server: FakeOpenAI, tmp: Path, n: int, j: int, runs: int, profile: str | None) -> None:
    work = tmp / f"s{n}"
    suite = write_suite(work / "prompts", n)
    cfg = write_config(work, server.base_url)
    env = env_for(tmp / "home")
    ours: list[float] = []
    bare: list[float] = []
    bare_cmd = [sys.executable, "-c", BARE_LOOP, server.base_url, str(n), str(j)]
    expect = f"{n} passed, 0 failed"
    for _ in range(runs):
        bare.append(timed(bare_cmd, env, work, expect))
        ours.append(timed(aicli_cmd(suite, cfg, j), env, work, expect))
    ideal = n * server.latency / j
    a, b = statistics.median(ours), statistics.median(bare)
    print(
        f"{n:>6} cases -j {j:<3} aicli {a:6.2f} s   bare SDK loop {b:6.2f} s   "
        f"ratio {a / b:5.2f}x   ideal {ideal:5.2f} s   (medians of {runs}; "
        f"aicli {' '.join(f'{t:.2f}' for t in ours)}; bare {' '.join(f'{t:.2f}' for t in bare)})"
    )
    if profile:
        cmd = aicli_cmd(suite, cfg, j)
        cmd[1:3] = ["-m", "cProfile", "-o", profile, "-m", "aicli"]
        subprocess.run(cmd, env=env, cwd=work, capture_output=True)
        print(f"        profile of one aicli run written to {profile}")


def memory(server: FakeOpenAI, tmp: Path, n: int) -> None:
    work = tmp / f"m{n}"
    suite = write_suite(work / "prompts", n)
    cfg = write_config(work, server.base_url)
    extra = ["-o", str(work / "report.jsonl"), "-o", str(work / "report.xml")]
    start = time.perf_counter()
    proc = subprocess.Popen(
        aicli_cmd(suite, cfg, 64, extra),
        env=env_for(tmp / "home"),
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"the {n}-case run failed ({proc.returncode}):\n{err}")
    peak_mb = usage.ru_maxrss / 1024  # KiB on Linux
    print(
        f"{n:>6} cases -j 64  with -o report.jsonl -o report.xml: {took:.2f} s, "
        f"peak RSS {peak_mb:.0f} MB (ideal {n * server.latency / 64:.2f} s)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs of each side")
    parser.add_argument("--latency", type=float, default=0.1, help="server latency in seconds")
    parser.add_argument(
        "--sizes", default="200:16,1000:64", help="CASES:CONCURRENCY pairs (comma-separated)"
    )
    parser.add_argument("--memory", type=int, default=0, help="cases of the memory run (0: none)")
    parser.add_argument("--profile", default=None, help="cProfile one aicli run into this file")
    opts = parser.parse_args()

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"({os.cpu_count()} CPUs); server latency {opts.latency * 1000:.0f} ms")  # fmt: skip
    if not compileall.compile_dir(REPO / "aicli", quiet=1):
        raise SystemExit("could not byte-compile aicli/")
    with tempfile.TemporaryDirectory(prefix="aicli-bench-") as tmp, FakeOpenAI() as server:
        server.latency = opts.latency
        for pair in opts.sizes.split(","):
            if pair.strip():
                n, j = (int(x) for x in pair.split(":"))
                compare(server, Path(tmp), n, j, opts.runs, opts.profile)
        if opts.memory:
            memory(server, Path(tmp), opts.memory)
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
