"""Load benchmark of `aicli serve` (127.0.0.1 only, bounded in time and count).

Starts the fake OpenAI server (tests/fake_openai.py) with a fixed latency as the provider and
`aicli serve` in front of it, then for 1 and 2 workers and 1, 16 and 64 concurrent clients
measures cache hits (one prompt, answered from the cache) and misses (a new prompt each time):
requests/s, p50/p99 latency, server CPU per request (and the load generator's own, since both
share the machine), failures by status. Also: the same load straight at the fake server at every
client count (the overhead aicli adds, and what the provider alone manages), start-up time to
/health/live and RSS per worker.

With --faults, the fault phase instead (scripts/bench_serve_faults.py): Redis killed and
stopped, a provider blip, a replica stopped, all under load.

Usage: python scripts/bench_serve.py [--duration S] [--latency S] [--workers 1,2]
       [--clients 1,16,64] [--max-requests N]
       python scripts/bench_serve.py --faults [--fault-clients N] [--fault-workers N]
       python scripts/bench_serve.py --money [--money-budget 2] [--money-requests 200]

--money: the money phase alone (see money_phase): two replicas of two workers share a Redis and a
daily budget; Redis is killed mid-race; billed (the provider's usage x price) vs the budget, for
serve.budget_when_unavailable refuse and local.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_up(url: str, timeout: float = 30) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.01)
    raise SystemExit(f"bench_serve: {url} did not come up in {timeout} s")


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (uvicorn's workers), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Run:
    label: str
    clients: int
    count: int
    seconds: float
    latencies: list[float]
    cpu_ms_per_request: float | None  # the server's processes
    client_cpu_ms: float  # this load generator's: it shares the two cores
    errors: dict[str, int]  # by status code or exception name

    def line(self) -> str:
        lat = sorted(self.latencies)
        p50 = statistics.median(lat) * 1000 if lat else 0.0
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else 0.0
        cpu = f"{self.cpu_ms_per_request:5.2f}" if self.cpu_ms_per_request is not None else "  n/a"
        errors = ",".join(f"{k}:{v}" for k, v in sorted(self.errors.items())) or "0"
        return (
            f"{self.label:<18} {self.clients:>3} clients {self.count / self.seconds:7.1f} req/s"
            f"  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  cpu/req {cpu} ms"
            f" (client {self.client_cpu_ms:4.2f})  n={self.count}  errors={errors}"
        )

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else 0.0


class HttpError(Exception):
    """The server's answer was not a well-formed HTTP/1.1 response."""


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bool, dict[str, str]]:
    """Send one request, read its whole response: (status, whether the server keeps the
    connection, the headers). Content-Length and chunked bodies, as a real client must."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise HttpError(lines[0])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    if "chunked" in headers.get("transfer-encoding", ""):
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:
                break
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    return int(parts[1]), headers.get("connection") != "close", headers


async def load(
    url: str, clients: int, body_for: object, duration: float, max_requests: int
) -> tuple[int, float, list[float], dict[str, int]]:
    """`clients` keep-alive connections, each sending its next request when the last answer
    is read. Hand-written HTTP/1.1 (like wrk) rather than httpx: httpx costs about a
    millisecond of CPU a request, on the same two cores as the server, and at 64 connections
    its pool bookkeeping, not the server, set the pace."""
    target = httpx.URL(url)
    host, port, path = target.host, target.port or 80, target.raw_path.decode()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    sent = 0
    deadline = time.monotonic() + duration

    def request_bytes() -> bytes:
        body = json.dumps(body_for()).encode()  # type: ignore[operator]
        return (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    async def client() -> None:
        nonlocal sent
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while time.monotonic() < deadline and sent < max_requests:
            sent += 1
            request = request_bytes()
            start = time.perf_counter()
            try:
                if conn is None:
                    conn = await asyncio.open_connection(host, port)
                status, keep, _ = await exchange(*conn, request)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, HttpError,
                    ValueError) as exc:  # fmt: skip
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                conn = _close(conn)
                continue
            latencies.append(time.perf_counter() - start)
            if status != 200:
                errors[str(status)] = errors.get(str(status), 0) + 1
            if not keep:
                conn = _close(conn)
        _close(conn)

    start = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    return len(latencies), time.monotonic() - start, latencies, errors


def _close(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
    if conn is not None:
        conn[1].close()


def measure(
    label: str, url: str, clients: int, body_for: object, pids: list[int] | None, args: object
) -> Run:
    cpu_before = cpu_seconds(pids) if pids else 0.0
    own_before = _own_cpu()
    count, seconds, latencies, errors = _run(
        load(url, clients, body_for, args.duration, args.max_requests)  # type: ignore[attr-defined]
    )
    cpu = (cpu_seconds(pids) - cpu_before) * 1000 / max(1, count) if pids else None
    client_cpu = (_own_cpu() - own_before) * 1000 / max(1, count)
    return Run(label, clients, count, seconds, latencies, cpu, client_cpu, errors)


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def chat(prompt: str) -> dict[str, object]:
    return {"model": "standard", "messages": [{"role": "user", "content": prompt}]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per scenario")
    parser.add_argument("--max-requests", type=int, default=20000, help="cap per scenario")
    parser.add_argument("--latency", type=float, default=0.1, help="fake provider latency (s)")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--clients", default="1,16,64")
    parser.add_argument("--faults", action="store_true", help="run the fault phase instead")
    parser.add_argument("--fault-clients", type=int, default=16)
    parser.add_argument("--fault-workers", type=int, default=2, help="per replica")
    parser.add_argument("--hang-after", type=float, default=30.0, help="s without an answer")
    parser.add_argument("--keep-logs", action="store_true", help="copy the replicas' logs here")
    parser.add_argument("--money", action="store_true", help="run only the money phase")
    parser.add_argument("--money-budget", type=float, default=2.0)
    parser.add_argument("--money-requests", type=int, default=200)
    args = parser.parse_args()
    if args.faults:
        from bench_serve_faults import run_faults

        run_faults(args)
        return
    if args.money:
        money_phase(args)
        return
    worker_counts = [int(w) for w in args.workers.split(",")]
    client_counts = [int(c) for c in args.clients.split(",")]

    with tempfile.TemporaryDirectory(prefix="aicli-bench-serve-") as tmp_name:
        tmp = Path(tmp_name)
        fake_port = free_port()
        fake = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "fake_openai.py"), "--port", str(fake_port),
             "--latency", str(args.latency)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            fake_url = f"http://127.0.0.1:{fake_port}/v1"
            wait_until_up(f"{fake_url}/models")
            print(
                f"fake provider latency {args.latency * 1000:.0f} ms; {args.duration:g} s per run"
            )
            direct: dict[int, Run] = {}
            for clients in client_counts:  # the provider alone: what aicli's figures build on
                direct[clients] = measure(
                    "direct (no aicli)",
                    f"{fake_url}/chat/completions",
                    clients,
                    lambda: {**chat(uuid.uuid4().hex), "model": "standard-model"},
                    [fake.pid],
                    args,
                )
                print(direct[clients].line())
            for workers in worker_counts:
                bench_workers(tmp, fake_url, workers, client_counts, args, direct)
        finally:
            fake.terminate()
            fake.wait(10)


def bench_workers(
    tmp: Path,
    fake_url: str,
    workers: int,
    client_counts: list[int],
    args: argparse.Namespace,
    direct: dict[int, Run],
) -> None:
    home = tmp / f"home-{workers}"
    (home / ".cache").mkdir(parents=True)
    config = tmp / f"aicli-{workers}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "default_tier": "standard",
                "providers": {"fake": {"base_url": fake_url, "api_key_env": "BENCH_API_KEY"}},
                "defaults": {"rate_limit": 1_000_000, "timeout_seconds": 30, "max_retries": 0},
                "tiers": {"standard": {"model": "standard-model", "provider": "fake"}},
                "serve": {"max_concurrency": 256},
            }
        )
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AICLI_", "OPENAI_", "PROMETHEUS_"))
    }
    env.update(
        BENCH_API_KEY="sk-bench-0123456789abcdef",
        HOME=str(home),
        XDG_CACHE_HOME=str(home / ".cache"),
    )
    env["PYTHONPATH"] = str(ROOT)
    port = free_port()
    started = time.monotonic()
    server = subprocess.Popen(
        [sys.executable, "-m", "aicli", "serve", "--config", str(config), "--port", str(port),
         "--workers", str(workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(f"{url}/health/live")
        print(f"\n--- {workers} worker(s): up in {time.monotonic() - started:.2f} s")
        chat_url = f"{url}/v1/chat/completions"
        pids = process_tree(server.pid)
        hit_prompt = "the one prompt every hit asks " + uuid.uuid4().hex
        httpx.post(chat_url, json=chat(hit_prompt), timeout=30).raise_for_status()
        for clients in client_counts:
            hits = measure("cache hits", chat_url, clients, lambda: chat(hit_prompt), pids, args)
            misses = measure(
                "cache misses", chat_url, clients, lambda: chat(uuid.uuid4().hex), pids, args
            )
            print(hits.line())
            print(misses.line())
            if clients in direct:
                over = misses.p50_ms - direct[clients].p50_ms
                print(
                    f"{'':<22} miss overhead over direct at {clients} clients: p50 +{over:.1f} ms"
                )
        workers_rss = [f"{rss_mb(p):.0f}" for p in process_tree(server.pid)]
        print(
            f"RSS MB per process (supervisor first when several workers): {', '.join(workers_rss)}"
        )
    finally:
        server.terminate()
        server.wait(30)


# ---- the money phase (issue 20): the daily budget while Redis dies --------------------------

MONEY_USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
MONEY_PER_TOKEN = 0.05  # $/completion token: $0.10 a call, $0.15 reserved (max_tokens 3)


def money_phase(args: argparse.Namespace) -> None:
    """Per mode: a fresh Redis, 2 replicas x 2 workers with serve.daily_budget_usd, 16 clients
    sending paid requests; Redis is SIGKILLed once 6 calls reached the provider. Reports what
    the provider billed against the budget (target: billed <= budget; with `local`, <= budget +
    one worker's share)."""
    sys.path.insert(0, str(ROOT))
    from tests.fake_openai import FakeOpenAI
    from tests.redis_server import redis_server_path

    fake = FakeOpenAI().start()
    fake.usage_override = dict(MONEY_USAGE)
    fake.latency = args.latency
    try:
        for mode in ("refuse", "local"):
            fake.reset()
            fake.usage_override, fake.latency = dict(MONEY_USAGE), args.latency
            with tempfile.TemporaryDirectory(prefix="aicli-bench-money-") as tmp_name:
                billed, codes = _money_run(Path(tmp_name), fake, redis_server_path(), mode, args)
            budget = args.money_budget
            share = budget / 4
            limit = budget if mode == "refuse" else budget + share
            verdict = "ok" if billed <= limit + 1e-9 else "OVER"
            counts = ", ".join(f"{k}: {v}" for k, v in sorted(codes.items()))
            print(
                f"money  budget_when_unavailable={mode:<6} billed ${billed:.2f} of a"
                f" ${budget:.2f} budget (target <= ${limit:.2f}: {verdict}); answers {counts}"
            )
    finally:
        fake.stop()


def _money_run(
    tmp: Path, fake: Any, redis_bin: str, mode: str, args: argparse.Namespace
) -> tuple[float, dict[int, int]]:
    import threading

    redis_port = free_port()
    redis = subprocess.Popen(
        [redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    servers: list[subprocess.Popen[bytes]] = []
    try:
        config = tmp / "aicli.yaml"
        price = {"input_per_1m": 0.0, "output_per_1m": MONEY_PER_TOKEN * 1_000_000}
        config.write_text(
            yaml.safe_dump(
                {
                    "default_tier": "paid",
                    "providers": {"fake": {"base_url": fake.base_url, "api_key_env": "BENCH_KEY"}},
                    "defaults": {"rate_limit": 1_000_000, "timeout_seconds": 30, "max_retries": 0},
                    "tiers": {
                        "paid": {"model": "paid-model", "provider": "fake", "price": price},
                        "free": {"model": "free-model", "provider": "fake"},
                    },
                    "cache": {
                        "backend": "redis",
                        "url": f"redis://127.0.0.1:{redis_port}/0",
                        "timeout_seconds": 0.5,
                    },
                    "serve": {
                        "daily_budget_usd": args.money_budget,
                        "budget_when_unavailable": mode,
                        "max_concurrency": 256,
                    },
                }
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AICLI_", "PROMETHEUS_"))}
        env.update(BENCH_KEY="sk-bench-0123456789abcdef", HOME=str(tmp), PYTHONPATH=str(ROOT))
        env["XDG_CACHE_HOME"] = str(tmp / ".cache")
        urls = []
        for _ in range(2):
            port = free_port()
            servers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "aicli",
                        "serve",
                        "--config",
                        str(config),
                        "--port",
                        str(port),
                        "--workers",
                        "2",
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            wait_until_up(f"{url}/health/live")
            for _ in range(4):  # every worker has the SDK loaded before the race
                httpx.post(
                    f"{url}/generate", json={"prompt": uuid.uuid4().hex, "tier": "free"}, timeout=60
                )
        codes: dict[int, int] = {}
        lock = threading.Lock()
        left = [args.money_requests]

        def client(i: int) -> None:
            while True:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                body = {"prompt": f"spend {uuid.uuid4().hex}", "max_tokens": 3}
                try:
                    status = httpx.post(
                        f"{urls[i % 2]}/generate", json=body, timeout=60
                    ).status_code
                except httpx.HTTPError:
                    status = 0
                with lock:
                    codes[status] = codes.get(status, 0) + 1

        pool = [threading.Thread(target=client, args=(i,)) for i in range(16)]
        for t in pool:
            t.start()
        deadline = time.monotonic() + 60
        while len(fake.requests_for("paid-model")) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        redis.kill()  # SIGKILL, mid-race
        for t in pool:
            t.join()
        billed = sum(
            r["usage"]["completion_tokens"] * MONEY_PER_TOKEN
            for r in fake.requests_for("paid-model")
            if "usage" in r
        )
        return billed, codes
    finally:
        for server in servers:
            server.terminate()
            server.wait(30)
        redis.kill()
        redis.wait(10)


if __name__ == "__main__":
    main()
