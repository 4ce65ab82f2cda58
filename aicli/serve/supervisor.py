"""`aicli serve --workers N`: starts the worker processes, restarts one that dies, and at
SIGTERM/SIGINT passes the signal on and waits for every worker to drain.

uvicorn's own supervisor binds one socket in the parent and keeps it open while its workers
drain, so the kernel kept accepting connections nobody would answer (reset at exit); and
workers sharing one socket take connections unevenly (whichever wakes first takes the whole
backlog). Here each worker binds its own SO_REUSEPORT socket (Linux: the kernel spreads new
connections evenly) and closes it at SIGTERM, so newcomers are refused at once.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from types import FrameType

from aicli.serve.worker import STARTUP_FAILURE, WorkerSpec, serve_worker

log = logging.getLogger("aicli.serve")

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_KILL_GRACE_S = 10.0  # beyond shutdown_timeout, before a worker that will not stop is killed


def _worker_main(spec: WorkerSpec) -> None:
    """A spawned worker: serve, and exit 0 once drained (uvicorn re-raises SIGTERM)."""
    signal.signal(signal.SIGTERM, _exit_0)  # until uvicorn takes over, and after it drained
    signal.signal(signal.SIGINT, _exit_0)
    code = 0
    try:
        serve_worker(spec)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # never multiprocessing's traceback on stderr: one JSON line
        log.error(
            "worker failed to start", extra={"event": "serve.error", "error": type(exc).__name__}
        )
        code = STARTUP_FAILURE
    # Drained: the app's lifespan has closed the cache and the engine, and every log line was
    # flushed when written. Skip the interpreter's teardown (a second of garbage collection
    # per worker) so the stop takes no longer than the drain.
    sys.stderr.flush()
    os._exit(code)


def _exit_0(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


class Supervisor:
    def __init__(self, spec: WorkerSpec, workers: int) -> None:
        self.spec = spec
        self.workers = workers
        self.context = multiprocessing.get_context("spawn")  # no forked event loops or locks
        self.stop = threading.Event()
        if spec.shared is not None:
            multiprocessing.allow_connection_pickling()  # the socket crosses to each worker

    def _start(self) -> multiprocessing.process.BaseProcess:
        process = self.context.Process(target=_worker_main, args=(self.spec,), daemon=False)
        process.start()
        return process

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        if self.spec.shared is not None:  # the parent's copy: close it so the kernel refuses
            self.spec.shared.close()
        self.stop.set()

    def run(self) -> None:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _STOP_SIGNALS}
        processes = [self._start() for _ in range(self.workers)]
        failed = False
        try:
            while not self.stop.wait(0.2):
                for i, process in enumerate(processes):
                    if process.is_alive():
                        continue
                    if process.exitcode == STARTUP_FAILURE:
                        log.error(
                            "a worker could not start: stopping",
                            extra={"event": "serve.worker_failed", "pid": process.pid},
                        )
                        failed = True
                        self.stop.set()
                        break
                    log.warning(
                        "a worker exited: starting another",
                        extra={
                            "event": "serve.worker_restart",
                            "pid": process.pid,
                            "exit_code": process.exitcode,
                        },
                    )
                    processes[i] = self._start()
        finally:
            self._stop_all(processes)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if failed:
            raise SystemExit(STARTUP_FAILURE)

    def _stop_all(self, processes: list[multiprocessing.process.BaseProcess]) -> None:
        if self.spec.shared is not None:
            self.spec.shared.close()
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.spec.shutdown_s + _KILL_GRACE_S
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error(
                    "a worker did not stop in time: killed",
                    extra={"event": "serve.worker_killed", "pid": process.pid},
                )
                process.kill()
                process.join()
