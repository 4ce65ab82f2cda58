"""A real redis-server on a free 127.0.0.1 port, without persistence, for the Redis tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest


def redis_server_path() -> str:
    """The redis-server binary; missing fails under CI=true and skips elsewhere."""
    path = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("redis-server is not installed (CI=true: the Redis tests must run)")
        pytest.skip("redis-server is not installed")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process; `url` for aicli, `client()` for the test's own look."""

    def __init__(
        self, workdir: Path, *, password: str | None = None, extra: tuple[str, ...] = ()
    ) -> None:
        self.workdir = workdir
        self.password = password
        self.extra = extra
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        binary = redis_server_path()
        self.workdir.mkdir(parents=True, exist_ok=True)
        for _ in range(5):  # a port taken between choosing and binding: pick another
            self.port = _free_port()
            args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            args += ["--appendonly", "no", "--dir", str(self.workdir), "--loglevel", "warning"]
            if self.password:
                args += ["--requirepass", self.password]
            args += list(self.extra)
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if self._wait_up():
                return self
            self.stop()
        raise RuntimeError("redis-server did not start")

    def restart(self) -> RedisServer:
        """After stop(): the same port again (empty, no persistence), so clients see the URL
        they were given come back."""
        assert self.proc is None and self.port, "stop() it first"
        args = [redis_server_path(), "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        args += ["--loglevel", "warning", *(["--requirepass", self.password] * bool(self.password))]
        self.proc = subprocess.Popen([*args, *self.extra], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)  # fmt: skip
        if not self._wait_up():
            raise RuntimeError("redis-server did not start again on its port")
        return self

    # ---- faults (tests/test_spend_serve.py) ---------------------------------------------------

    def kill(self) -> None:
        """SIGKILL: everything it held is gone (no persistence)."""
        self.stop()

    def restart_empty(self) -> None:
        """A new, empty redis-server on the same port (as after a crash and a restart)."""
        assert self.proc is None, "kill() it first"
        args = [redis_server_path(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.workdir), "--loglevel", "warning"]
        if self.password:
            args += ["--requirepass", self.password]
        args += list(self.extra)
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not self._wait_up():
            raise RuntimeError(f"redis-server did not restart on port {self.port}")

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing is answered (a hung server)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def _wait_up(self) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    reply = s.recv(64)
                    if reply.startswith((b"+PONG", b"-NOAUTH")):
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self, socket_timeout: float = 5) -> Any:
        import redis

        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=socket_timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None
