"""A real `aicli serve` subprocess on a free 127.0.0.1 port, for the service's tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServeProcess:
    """`python -m aicli serve` with its own env; stderr (the JSON log lines) goes to a file."""

    def __init__(
        self,
        config: Path,
        env: dict[str, str],
        *,
        workers: int = 1,
        token: str | None = None,
        log_path: Path,
    ) -> None:
        self.config, self.workers, self.token, self.log_path = config, workers, token, log_path
        self.env = {**env, "PYTHONPATH": str(REPO_ROOT)}
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers(), timeout=30, **kwargs)

    def start(self, timeout: float = 20) -> ServeProcess:
        args = [sys.executable, "-m", "aicli", "serve", "--config", str(self.config)]
        args += ["--port", str(self.port), "--workers", str(self.workers)]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            args, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=self.env,
            cwd=str(self.config.parent),
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"aicli serve exited {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health/live", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"aicli serve did not start in {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 30) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def request_lines(self) -> list[dict[str, Any]]:
        """Every `request` log line so far, parsed (each line must be one JSON object)."""
        lines = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return [entry for entry in lines if entry.get("event") == "request"]

    def wait_for_log(self, request_id: str, timeout: float = 5) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.request_lines():
                if entry.get("request_id") == request_id:
                    return entry
            time.sleep(0.02)
        raise AssertionError(f"no log line for request {request_id}:\n{self.log()}")


def base_env(home: Path) -> dict[str, str]:
    """A clean child env: no keys or aicli settings from the outer shell, a private cache."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith(("OPENAI_", "AICLI_", "PROMETHEUS_")) or "API_KEY" in k)
    }
    for name, sub in (("HOME", ""), ("XDG_CONFIG_HOME", ".config"), ("XDG_CACHE_HOME", ".cache")):
        path = home / sub if sub else home
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    return env
