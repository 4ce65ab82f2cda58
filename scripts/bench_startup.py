"""Start-up benchmark: `aicli --help`, `render`, `render --list` and a cache hit, fast and light.

Usage (from the repo root):
    .venv/bin/python scripts/bench_startup.py            # 10 runs of each command
    .venv/bin/python scripts/bench_startup.py -n 30      # more runs
    .venv/bin/python scripts/bench_startup.py --min-ms 1 # list every import over 1 ms

Each command runs N times in a throw-away HOME (XDG dirs inside it, AICLI_* / OPENAI_* unset,
cwd an empty temp folder), interleaved with `python -c pass`, and the median and min wall time
are printed in ms with the ratio of the medians to `python -c pass` and its target (--help 3x;
`render summarize` and the cache hit 5x; `render --list` is reported only), for wall time and
for CPU time (what the command costs itself when the machine is busy). Then each runs
once under `python -X importtime`, which lists the heavy packages it imports with their
cumulative import time. The cache hit is `generate -t echo x`, run once to fill the cache, then
timed; `render --list` uses config.example.yaml (the shipped prompts) and is skipped while the
command does not exist.

aicli is byte-compiled first, as an installed package is.

Each target line ends in PASS or OVER (on wall time and on CPU time), then a summary line.

Exit status: 0 all good; 1 a command imported a forbidden module (openai, httpx, httpx2,
jsonschema, fastapi, redis, prometheus_client); 2 a command failed. A target OVER does not
change the exit status: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The house rule: `--help`, `render` and a cache hit import none of these.
FORBIDDEN = ("openai", "httpx", "httpx2", "jsonschema", "fastapi", "redis", "prometheus_client")


@dataclass
class Command:
    name: str
    args: list[str]
    target: float | None = None  # at most this many times `python -c pass`


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
    if args[:2] == ["-c", "pass"]:
        cmd = [python, *args]
    return subprocess.run(
        cmd, env=env, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )


def time_runs(
    python: str, commands: list[Command], env: dict[str, str], cwd: Path, n: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Every command n times, round-robin, so a change in the machine's load hits all alike.

    Returns wall times and CPU times (user + system of the child) in ms; on a busy machine the
    CPU time is what the command itself costs, the wall time includes waiting for a core."""
    walls: dict[str, list[float]] = {c.name: [] for c in commands}
    cpus: dict[str, list[float]] = {c.name: [] for c in commands}
    for _ in range(n):
        for cmd in commands:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            proc = run(python, cmd.args, env, cwd)
            walls[cmd.name].append((time.perf_counter() - start) * 1000)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            cpus[cmd.name].append(used * 1000)
            if proc.returncode != 0:
                raise RuntimeError(f"`aicli {' '.join(cmd.args)}` failed:\n{proc.stderr}")
    return walls, cpus


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
    # From bytecode, as an installed package runs: with $PYTHONDONTWRITEBYTECODE set (some CI
    # and sandbox images) a source checkout would recompile changed modules on every run.
    if not compileall.compile_dir(REPO / "aicli", quiet=1):
        raise SystemExit("could not byte-compile aicli/")

    with tempfile.TemporaryDirectory(prefix="aicli-bench-") as tmp:
        home, cwd = Path(tmp) / "home", Path(tmp) / "work"
        cwd.mkdir(parents=True)
        home.mkdir()
        env = child_env(home)
        example = REPO / "config.example.yaml"
        commands = [
            Command("python -c pass", ["-c", "pass"]),
            Command("--help", ["--help"], 3.0),
            Command(
                "render NAME",
                ["render", "summarize", "--var", "input=hi", "--config", str(example)],
                5.0,
            ),
            Command("render --list", ["render", "--list", "--config", str(example)]),
        ]
        hit = Command("cache hit", ["generate", "-t", "echo", "x"], 5.0)
        fill = run(opts.python, [*hit.args, "--json"], env, cwd)
        check = run(opts.python, [*hit.args, "--json"], env, cwd)
        if fill.returncode or check.returncode or '"cached": true' not in check.stdout:
            print(
                f"cache hit: could not get a cache hit:\n{fill.stderr}{check.stdout}{check.stderr}"
            )
            return 2
        commands.append(hit)

        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"wall time over {opts.runs} runs ({opts.python}; load average {load}):")
        try:
            walls, cpus = time_runs(opts.python, commands, env, cwd, opts.runs)
        except RuntimeError as exc:
            print(exc)
            return 2
        over: list[str] = []
        for label, times in (("wall", walls), ("CPU (user+sys)", cpus)):
            print(f" {label}:")
            base = statistics.median(times["python -c pass"])
            for cmd in commands:
                med, low = statistics.median(times[cmd.name]), min(times[cmd.name])
                ratio = f"{med / base:5.2f}x python -c pass"
                if cmd.target is not None:
                    verdict = "PASS" if med / base <= cmd.target else "OVER"
                    ratio += f" (target {cmd.target:g}x: {verdict})"
                    if verdict == "OVER":
                        over.append(f"{cmd.name} ({label} {med / base:.2f}x > {cmd.target:g}x)")
                print(f"  {cmd.name:<14} median {med:7.1f} ms   min {low:7.1f} ms   {ratio}")
        targets = ", ".join(f"{c.name} {c.target:g}x" for c in commands if c.target is not None)
        print(f"targets: {'OVER: ' + '; '.join(over) if over else 'PASS'} ({targets})")

        print("imports (python -X importtime, one run each):")
        bad: dict[str, list[str]] = {}
        for cmd in commands[1:]:
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
