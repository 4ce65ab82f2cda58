"""Start-up benchmark: `aicli --help`, `render --list` and a cache hit must be fast and light.

Usage (from the repo root):
    .venv/bin/python scripts/bench_startup.py            # 10 runs of each command
    .venv/bin/python scripts/bench_startup.py -n 30      # more runs
    .venv/bin/python scripts/bench_startup.py --min-ms 1 # list every import over 1 ms

Each command runs N times in a throw-away HOME (XDG dirs inside it, AICLI_* / OPENAI_* unset,
cwd an empty temp folder) and the median and min wall time are printed in ms. Then each runs
once under `python -X importtime`, which lists the heavy packages it imports with their
cumulative import time. The cache hit is `generate -t echo x`, run once to fill the cache, then
timed; `render --list` uses config.example.yaml (the shipped prompts) and is skipped while the
command does not exist.

Exit status: 0 all good; 1 a command imported openai, httpx, httpx2 or jsonschema; 2 a command
failed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FORBIDDEN = ("openai", "httpx", "httpx2", "jsonschema")


@dataclass
class Command:
    name: str
    args: list[str]


def child_env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AICLI_", "OPENAI_", "PYTHON")) and "API_KEY" not in k
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        PYTHONPATH=str(REPO),  # works without `pip install -e .`
        NO_COLOR="1",
    )
    return env


def run(
    python: str, args: list[str], env: dict[str, str], cwd: Path, *, importtime: bool = False
) -> subprocess.CompletedProcess[str]:
    cmd = [python, *(["-X", "importtime"] if importtime else []), "-m", "aicli", *args]
    return subprocess.run(
        cmd, env=env, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )


def time_runs(python: str, cmd: Command, env: dict[str, str], cwd: Path, n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        proc = run(python, cmd.args, env, cwd)
        times.append((time.perf_counter() - start) * 1000)
        if proc.returncode != 0:
            raise RuntimeError(f"`aicli {' '.join(cmd.args)}` failed:\n{proc.stderr}")
    return times


def parse_importtime(stderr: str) -> dict[str, float]:
    """Top-level package -> cumulative import time in ms (the package's own import line)."""
    cumulative: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        try:
            _self_us, cum_us, name = line[len("import time:") :].split("|", 2)
            module = name.strip()
            root = module.split(".")[0]
            ms = int(cum_us) / 1000
        except ValueError:
            continue
        if module == root:  # a submodule always comes after (and inside) its package's line
            cumulative[root] = max(ms, cumulative.get(root, 0.0))
        else:
            cumulative.setdefault(root, ms)
    return cumulative


def report_imports(cmd: Command, imports: dict[str, float], min_ms: float) -> list[str]:
    stdlib = set(sys.stdlib_module_names)
    forbidden = sorted(m for m in imports if m in FORBIDDEN)
    heavy = sorted(
        ((ms, m) for m, ms in imports.items() if m not in stdlib and ms >= min_ms), reverse=True
    )
    shown = ", ".join(f"{m} {ms:.1f}" for ms, m in heavy) or "(none)"
    print(f"  {cmd.name:<14} third-party imports >= {min_ms:g} ms (cumulative ms): {shown}")
    slow_std = sorted(((ms, m) for m, ms in imports.items() if m in stdlib), reverse=True)[:5]
    if slow_std:
        print(f"  {'':<14} slowest stdlib: " + ", ".join(f"{m} {ms:.1f}" for ms, m in slow_std))
    if forbidden:
        print(f"  {'':<14} FORBIDDEN: {', '.join(forbidden)}")
    return forbidden


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("-n", "--runs", type=int, default=10, help="timed runs per command")
    parser.add_argument("--python", default=sys.executable, help="interpreter to run aicli with")
    parser.add_argument("--min-ms", type=float, default=2.0, help="list imports slower than this")
    opts = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="aicli-bench-") as tmp:
        home, cwd = Path(tmp) / "home", Path(tmp) / "work"
        cwd.mkdir(parents=True)
        home.mkdir()
        env = child_env(home)
        commands = [Command("--help", ["--help"])]
        render_help = run(opts.python, ["render", "--help"], env, cwd)
        example = REPO / "config.example.yaml"
        if render_help.returncode == 0 and "--list" in render_help.stdout:
            commands.append(
                Command("render --list", ["render", "--list", "--config", str(example)])
            )
        else:
            print("render --list: skipped (the command does not exist yet)")
        hit = Command("cache hit", ["generate", "-t", "echo", "x"])
        fill = run(opts.python, [*hit.args, "--json"], env, cwd)
        check = run(opts.python, [*hit.args, "--json"], env, cwd)
        if fill.returncode or check.returncode or '"cached": true' not in check.stdout:
            print(
                f"cache hit: could not get a cache hit:\n{fill.stderr}{check.stdout}{check.stderr}"
            )
            return 2
        commands.append(hit)

        print(f"wall time over {opts.runs} runs ({opts.python}):")
        try:
            for cmd in commands:
                times = time_runs(opts.python, cmd, env, cwd, opts.runs)
                med, low = statistics.median(times), min(times)
                print(f"  {cmd.name:<14} median {med:7.1f} ms   min {low:7.1f} ms")
        except RuntimeError as exc:
            print(exc)
            return 2

        print("imports (python -X importtime, one run each):")
        bad: dict[str, list[str]] = {}
        for cmd in commands:
            proc = run(opts.python, cmd.args, env, cwd, importtime=True)
            forbidden = report_imports(cmd, parse_importtime(proc.stderr), opts.min_ms)
            if forbidden:
                bad[cmd.name] = forbidden
    if bad:
        for name, modules in bad.items():
            print(f"FAIL: `{name}` imports {', '.join(modules)}")
        return 1
    print(f"OK: none of these commands imports {', '.join(FORBIDDEN)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
