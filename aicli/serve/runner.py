"""Starts uvicorn: checks the bind address against auth, gives workers a private Prometheus
multiprocess directory (removed on exit), and drains requests on SIGTERM."""

from __future__ import annotations

import ipaddress
import math
import os
import shutil
import signal
import tempfile
from pathlib import Path
from types import FrameType

from aicli.config import BUILTIN, Config
from aicli.errors import UsageError

# Nothing here imports prometheus_client: it must first see PROMETHEUS_MULTIPROC_DIR.
CONFIG_ENV = "AICLI_SERVE_CONFIG"  # how the runner hands workers the config file it loaded


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


def run(cfg: Config, *, host: str, port: int, workers: int) -> None:
    import uvicorn

    check_bind(cfg, host)
    metrics_dir = tempfile.mkdtemp(prefix="aicli-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # before prometheus_client is imported
    os.environ[CONFIG_ENV] = "" if cfg.source == BUILTIN else str(Path(cfg.source).resolve())
    # uvicorn drains on SIGTERM, then raises the signal again once it has restored our handler:
    # this one makes that a normal return, so the directory is removed and the exit code is 0.
    previous = signal.signal(signal.SIGTERM, _drained)
    try:
        uvicorn.run(
            "aicli.serve.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            timeout_graceful_shutdown=math.ceil(cfg.serve.shutdown_timeout),
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _drained(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM after uvicorn has drained (or before it started): stop normally."""
    raise SystemExit(0)
