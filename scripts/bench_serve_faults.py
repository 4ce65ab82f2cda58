"""The fault phase of scripts/bench_serve.py (`--faults`): load on `aicli serve` with a Redis
cache while faults are injected, one phase each:

  (a) Redis SIGKILLed for 10 s, then started again on its port
  (b) Redis SIGSTOPped for 5 s, then SIGCONT
  (c) a 3 s provider blip: the fake provider answers 500 to the primary tier's model
  (d) SIGTERM to one of two replicas (sharing the Redis) under load

Per phase: requests sent / answered / failed / hung (no answer within --hang-after), p50/p99 of
all and of those sent while the fault lasted, and errors by kind. (c) also says when traffic was
back on the primary tier after the provider recovered; (d) counts connections refused (a load
balancer moves on: not a failure) apart from requests reset or cut after they were sent.
Targets (issue 19): 0 hung; 0 failed in (a) and (b); (c) back on the primary within 5 s;
(d) no request reset after being accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from bench_serve import ROOT, HttpError, exchange, free_port, wait_until_up

# The fake provider in its own process; SIGUSR1 starts a blip of 500s for the primary's model.
FAKE = """
import signal, sys, time
sys.path.insert(0, sys.argv[1])
from tests.fake_openai import FakeOpenAI
fake = FakeOpenAI("127.0.0.1", int(sys.argv[2])).start()
fake.latency = float(sys.argv[3])
blip = float(sys.argv[4])
until = [0.0]
plain = fake._next_behaviour
def behaviour(model):
    if model == "standard-model" and time.monotonic() < until[0]:
        return "500"
    return plain(model)
fake._next_behaviour = behaviour
signal.signal(signal.SIGUSR1, lambda *_: until.__setitem__(0, time.monotonic() + blip))
while True:
    time.sleep(3600)
"""


@dataclass
class Sample:
    start: float
    end: float | None  # None: hung
    outcome: str  # "200", another status, or an exception's name
    tier: str = ""
    port: int = 0


@dataclass
class Phase:
    name: str
    samples: list[Sample] = field(default_factory=list)
    refused: int = 0  # connections a stopping replica refused: the client went elsewhere
    fault: tuple[float, float] = (0.0, 0.0)  # when the fault started and ended (monotonic)

    def report(self) -> str:
        answered = [s for s in self.samples if s.outcome == "200"]
        hung = [s for s in self.samples if s.end is None]
        failed = [s for s in self.samples if s.end is not None and s.outcome != "200"]
        kinds: dict[str, int] = {}
        for s in failed:
            kinds[s.outcome] = kinds.get(s.outcome, 0) + 1
        during = [s for s in answered if self.fault[0] <= s.start <= self.fault[1]]
        lines = [
            f"({self.name}) sent {len(self.samples)}  answered {len(answered)}  failed"
            f" {len(failed)}  hung {len(hung)}  refused-before-accept {self.refused}"
            f"  errors={','.join(f'{k}:{v}' for k, v in sorted(kinds.items())) or '0'}",
            f"     all answers   {_percentiles(answered)}",
            f"     during fault  {_percentiles(during)}",
        ]
        return "\n".join(lines)


def _percentiles(samples: list[Sample]) -> str:
    lat = sorted((s.end or 0) - s.start for s in samples)
    if not lat:
        return "n=0"
    p50 = statistics.median(lat) * 1000
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    return f"p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  n={len(lat)}"


def _request(port: int, prompt: str) -> bytes:
    data = json.dumps(
        {"model": "standard", "messages": [{"role": "user", "content": prompt}]}
    ).encode()
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode() + data


async def load(
    phase: Phase,
    ports: list[int],
    clients: int,
    seconds: float,
    hang_after: float,
    fresh: bool = False,
) -> None:
    """`clients` keep-alive connections (fresh: a new connection per request), spread over
    `ports`; half the prompts repeat (hits), half are new (misses). A refused connection goes
    to the next port, as a balancer would."""
    pool = [f"a repeated question {i} {uuid.uuid4().hex[:6]}" for i in range(20)]
    deadline = time.monotonic() + seconds

    async def client(n: int) -> None:
        turn = n
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        port = ports[turn % len(ports)]
        while time.monotonic() < deadline:
            if conn is None:
                for _ in range(len(ports)):
                    port = ports[turn % len(ports)]
                    turn += 1
                    try:
                        conn = await asyncio.open_connection("127.0.0.1", port)
                        break
                    except OSError:
                        phase.refused += 1
                if conn is None:
                    await asyncio.sleep(0.05)
                    continue
            prompt = random.choice(pool) if random.random() < 0.5 else uuid.uuid4().hex
            sample = Sample(time.monotonic(), None, "hung", port=port)
            phase.samples.append(sample)
            try:
                status, keep, headers = await asyncio.wait_for(
                    exchange(*conn, _request(port, prompt)), hang_after
                )
            except asyncio.TimeoutError:
                conn = _close(conn)
                continue  # stays hung
            except (OSError, asyncio.IncompleteReadError, HttpError, ValueError) as exc:
                sample.end, sample.outcome = time.monotonic(), type(exc).__name__
                conn = _close(conn)
                continue
            sample.end, sample.outcome = time.monotonic(), str(status)
            sample.tier = headers.get("x-aicli-tier", "")
            if fresh or not keep:
                conn = _close(conn)
        _close(conn)

    await asyncio.gather(*(client(n) for n in range(clients)))


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def _close(conn: Conn | None) -> None:  # `conn = _close(conn)`: the client has none now
    if conn is not None:
        conn[1].close()


async def with_fault(
    phase: Phase,
    ports: list[int],
    args: argparse.Namespace,
    start: Callable[[], Awaitable[None]],
    end: Callable[[], Awaitable[None]],
    lasts: float,
    after: float,
    fresh: bool = False,
) -> None:
    """Load for 2 s, then the fault for `lasts` s, then `after` s more. A fault with no end
    (lasts 0) counts as lasting until the load ends."""
    seconds = 2 + lasts + after
    clients = args.fault_clients
    task = asyncio.create_task(load(phase, ports, clients, seconds, args.hang_after, fresh))
    await asyncio.sleep(2)
    began = time.monotonic()
    await start()
    await asyncio.sleep(lasts)
    await end()
    phase.fault = (began, time.monotonic())
    await task
    if lasts == 0:
        phase.fault = (began, time.monotonic())


class Redis:
    """redis-server on a fixed port, so it can be killed and started again at the same URL."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.port = workdir, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.workdir), "--loglevel", "warning"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                import socket

                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        raise SystemExit("bench_serve: redis-server did not start")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        if sig == signal.SIGKILL:
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


def serve(
    tmp: Path, name: str, fake_url: str, redis_port: int, workers: int
) -> tuple[subprocess.Popen[bytes], int]:
    home = tmp / f"home-{name}"
    (home / ".cache").mkdir(parents=True)
    config = tmp / f"aicli-{name}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "default_tier": "standard",
                "providers": {"fake": {"base_url": fake_url, "api_key_env": "BENCH_API_KEY"}},
                "defaults": {"timeout_seconds": 10, "max_retries": 0},
                "tiers": {
                    "standard": {
                        "model": "standard-model",
                        "provider": "fake",
                        "fallback": ["economy"],
                    },
                    "economy": {"model": "economy-model", "provider": "fake"},
                },
                "cache": {"backend": "redis", "url": f"redis://127.0.0.1:{redis_port}/0"},
                "serve": {"max_concurrency": 256, "shutdown_timeout": 10},
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AICLI_", "OPENAI_"))}
    env.update(BENCH_API_KEY="sk-bench-0123456789abcdef", HOME=str(home), PYTHONPATH=str(ROOT))
    env["XDG_CACHE_HOME"] = str(home / ".cache")
    port = free_port()
    log = (tmp / f"serve-{name}.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aicli", "serve", "--config", str(config), "--port", str(port),
         "--workers", str(workers)],
        env=env, stdout=log, stderr=log,
    )  # fmt: skip
    wait_until_up(f"http://127.0.0.1:{port}/health/live")
    return proc, port


def run_faults(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="aicli-bench-faults-") as tmp_name:
        tmp = Path(tmp_name)
        fake_port = free_port()
        fake = subprocess.Popen(
            [sys.executable, "-c", FAKE, str(ROOT), str(fake_port), str(args.latency), "3"]
        )
        redis = Redis(tmp)
        redis.start()
        procs: list[subprocess.Popen[bytes]] = []
        try:
            fake_url = f"http://127.0.0.1:{fake_port}/v1"
            wait_until_up(f"{fake_url}/models")
            one, port1 = serve(tmp, "r1", fake_url, redis.port, args.fault_workers)
            two, port2 = serve(tmp, "r2", fake_url, redis.port, args.fault_workers)
            procs += [one, two]
            print(
                f"fault phase: {args.fault_clients} clients, replicas of {args.fault_workers}"
                f" worker(s), provider latency {args.latency * 1000:.0f} ms, Redis cache;"
                f" hung = no answer in {args.hang_after:g} s"
            )
            asyncio.run(_phases(args, redis, fake, one, [port1], [port1, port2]))
            print("logs of the replicas:", *(tmp / f"serve-r{i}.log" for i in (1, 2)))
            if args.keep_logs:
                for i in (1, 2):
                    (Path.cwd() / f"bench-faults-r{i}.log").write_bytes(
                        (tmp / f"serve-r{i}.log").read_bytes()
                    )
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(30)
            redis.stop()
            fake.terminate()
            fake.wait(10)


async def _phases(
    args: argparse.Namespace,
    redis: Redis,
    fake: subprocess.Popen[bytes],
    victim: subprocess.Popen[bytes],
    one: list[int],
    both: list[int],
) -> None:
    async def nothing() -> None:
        return None

    async def kill() -> None:
        redis.signal(signal.SIGKILL)

    async def restart() -> None:
        await asyncio.to_thread(redis.start)

    a = Phase("a: Redis SIGKILL 10 s")
    await with_fault(a, one, args, kill, restart, 10, 6)
    print(a.report())

    b = Phase("b: Redis SIGSTOP 5 s")

    async def stop() -> None:
        redis.signal(signal.SIGSTOP)

    async def cont() -> None:
        redis.signal(signal.SIGCONT)

    await with_fault(b, one, args, stop, cont, 5, 6)
    print(b.report())

    c = Phase("c: provider 500s 3 s")

    async def blip() -> None:
        fake.send_signal(signal.SIGUSR1)

    await with_fault(c, one, args, blip, nothing, 3, 10)
    print(c.report())
    recovered = c.fault[1]
    after = [s for s in c.samples if s.outcome == "200" and s.start >= recovered]
    fallback = [s for s in after if s.tier != "standard"]
    back = (max(s.start for s in fallback) - recovered) if fallback else 0.0
    print(
        f"     after recovery: {len(after) - len(fallback)} of {len(after)} answers from the"
        f" primary; the last fallback answer was sent {back:.1f} s after the provider recovered"
    )

    d = Phase("d: SIGTERM 1 of 2 replicas (a new connection per request)")

    async def term() -> None:
        victim.send_signal(signal.SIGTERM)

    await with_fault(d, both, args, term, nothing, 0, 8, fresh=True)
    print(d.report())
    stopped = d.fault[0]
    late = [s for s in d.samples if s.port == both[0] and s.start > stopped + 0.05]
    cut = [s for s in late if s.outcome != "200"]
    print(
        f"     sent to the stopping replica more than 50 ms after its SIGTERM: {len(late)}"
        f" ({len(cut)} not answered); it exited with {victim.poll()}"
    )
