"""Starts the service: checks the bind address against auth and that the port is free, gives
workers a private Prometheus multiprocess directory (removed on exit), then runs one worker in
this process or the supervisor over several."""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from aicli.config import BUILTIN, Config
from aicli.errors import UsageError
from aicli.serve.supervisor import Supervisor
from aicli.serve.worker import WorkerSpec, bind, reuse_port_available, serve_worker

# Nothing here imports prometheus_client: it must first see PROMETHEUS_MULTIPROC_DIR.
CONFIG_ENV = "AICLI_SERVE_CONFIG"  # how the runner hands workers the config file it loaded
WORKERS_ENV = "AICLI_SERVE_WORKERS"  # and how many workers share the cache


def read_tokens(env_name: str) -> list[bytes]:
    """The bearer tokens the env var holds (comma-separated; blanks ignored)."""
    raw = os.environ.get(env_name, "")
    return [t.strip().encode() for t in raw.split(",") if t.strip()]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(cfg: Config, host: str) -> None:
    """Without tokens the service is open to anyone who can reach it: loopback only."""
    if not read_tokens(cfg.serve.tokens_env) and not is_loopback(host):
        raise UsageError(
            f"refusing to listen on {host} without authentication: ${cfg.serve.tokens_env} is"
            " not set, so anyone who can reach this address could spend your API budget",
            f"export {cfg.serve.tokens_env}=<token>[,<token>...] (clients send"
            " 'Authorization: Bearer <token>'), or serve on 127.0.0.1",
        )


def _probe(host: str, port: int) -> int:
    """Exit 2 now when the port is taken (by anything, SO_REUSEPORT sockets included: this one
    sets no SO_REUSEPORT); the port actually free (port 0 picks one)."""
    try:
        sock = bind(host, port, reuse_port=False)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            "choose another --port or --host, or stop what is listening there",
        ) from None
    with sock:
        chosen: int = sock.getsockname()[1]
    return chosen


def run(
    cfg: Config,
    *,
    host: str,
    port: int,
    workers: int,
    on_start: Callable[[int], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT has drained. `on_start(port)` once the port is known free
    (a taken one is exit 2 before it; port 0 is resolved)."""
    check_bind(cfg, host)
    reuse = workers > 1 and reuse_port_available()
    port = _probe(host, port)
    if on_start is not None:
        on_start(port)
    metrics_dir = tempfile.mkdtemp(prefix="aicli-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # before prometheus_client is imported
    os.environ[CONFIG_ENV] = "" if cfg.source == BUILTIN else str(Path(cfg.source).resolve())
    os.environ[WORKERS_ENV] = str(workers)
    spec = WorkerSpec(
        host, port, cfg.serve.keep_alive_seconds, cfg.serve.shutdown_timeout, reuse_port=reuse
    )
    # uvicorn drains on SIGTERM, then raises the signal again once it has restored our handler:
    # this one makes that a normal return, so the directory is removed and the exit code is 0.
    previous = signal.signal(signal.SIGTERM, _drained)
    try:
        if workers == 1:
            serve_worker(spec)
        else:
            if not reuse:  # one socket for all, bound here and closed here at SIGTERM
                spec = WorkerSpec(**{**vars(spec), "shared": bind(host, port, reuse_port=False)})
            Supervisor(spec, workers).run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _drained(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM after uvicorn has drained (or before it started): stop normally."""
    raise SystemExit(0)
