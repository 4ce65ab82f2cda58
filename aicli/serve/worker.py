"""One worker process of the service: its process-wide set-up (JSON lines for every logger,
no tracebacks, the switch interval), its listening socket, and uvicorn with a header timeout."""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import sys
import threading
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

STARTUP_FAILURE = 3  # uvicorn's exit code for a worker whose app could not start
BACKLOG = 2048
MAX_HEADER_BYTES = 64 * 1024  # request line and headers (nginx allows 32 KB, h11 16 KB)
_431_BODY = (
    b'{"error":{"message":"request headers over 64 KB","type":"invalid_request_error",'
    b'"param":null,"code":"headers_too_large"}}'
)
_HEADERS_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: "
    + str(len(_431_BODY)).encode()
    + b"\r\n\r\n"
    + _431_BODY
)

log = logging.getLogger("aicli.serve")


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to listen (picklable: it crosses to spawned workers)."""

    host: str
    port: int
    keep_alive_s: float
    shutdown_s: float
    reuse_port: bool  # each worker binds its own SO_REUSEPORT socket: the kernel spreads
    shared: socket.socket | None = None  # else the supervisor's one socket, passed down


def reuse_port_available() -> bool:
    # Only Linux balances new connections across SO_REUSEPORT sockets (elsewhere the last
    # socket bound would get them all).
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def bind(host: str, port: int, *, reuse_port: bool, listen: bool = True) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host.strip("[]"), port))
        if listen:
            sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serve_worker(spec: WorkerSpec) -> None:
    """One worker: this process set up for serving, its socket bound, uvicorn until drained.

    At SIGTERM uvicorn closes this worker's listening socket at once (it is the only copy with
    SO_REUSEPORT), so new connections go to the other workers or are refused, while requests
    in flight, streams too, finish within `serve.shutdown_timeout`."""
    import uvicorn

    prepare_worker_process()
    config = uvicorn.Config(
        "aicli.serve.app:app_from_env",
        factory=True,
        http=protocol_class(spec.keep_alive_s),
        timeout_keep_alive=max(1, math.ceil(spec.keep_alive_s)),
        timeout_graceful_shutdown=math.ceil(spec.shutdown_s),
        log_config=None,
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="on",
    )
    # Bound now (a taken port fails here), listening only once the app has started: asyncio
    # calls listen() when it starts serving. With SO_REUSEPORT a listening socket gets its
    # share of new connections at once, so it must not listen while the app is still loading.
    sock = spec.shared or bind(spec.host, spec.port, reuse_port=spec.reuse_port, listen=False)
    _server_class()(config).run(sockets=[sock])


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, but the listener closes the moment the signal comes (uvicorn
        looks at its exit flag every 0.1 s): fewer connections accepted only to be closed."""

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            self._aicli_loop = asyncio.get_running_loop()

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            loop = getattr(self, "_aicli_loop", None)
            if loop is not None and not loop.is_closed():
                # call_soon_threadsafe: the one loop call a signal handler may make
                loop.call_soon_threadsafe(self._stop_listening)

        def _stop_listening(self) -> None:
            for server in getattr(self, "servers", []):
                server.close()

    return Server


def prepare_worker_process() -> None:
    """What serving changes in its process (never create_app: tests build apps in process)."""
    from aicli.logs import configure

    # JSON lines: warnings from the core, and the one line per request (the engine's own
    # per-request info line would repeat it, so the core stays at warning level).
    configure("json", logging.WARNING)
    logging.getLogger("aicli.serve").setLevel(logging.INFO)
    handler = logging.getLogger("aicli").handlers[0]
    # uvicorn's, asyncio's and any other library's lines: the same JSON handler, and never a
    # traceback (it may quote a request): the exception's type only.
    quiet = _NoTraceback()
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "asyncio", ""):
        logger = logging.getLogger(name)
        logger.handlers = [handler] if name in ("uvicorn", "") else []
        logger.propagate = name not in ("uvicorn", "")
        logger.addFilter(quiet)
    handler.addFilter(quiet)
    logging.captureWarnings(True)
    sys.excepthook = _uncaught
    threading.excepthook = lambda args: _uncaught(args.exc_type, args.exc_value, None)
    # The cache's thread hands results back through the GIL; at the default 5 ms switch
    # interval a busy event loop makes every cache call wait for it (a convoy at 64 clients).
    sys.setswitchinterval(0.0005)


class _NoTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            exc = record.exc_info[1]
            record.error = type(exc).__name__ if exc is not None else None
            record.exc_info = None
            record.exc_text = None
        if record.name.startswith(("uvicorn", "asyncio")) and not hasattr(record, "event"):
            record.event = "server"
        return True


def _uncaught(
    exc_type: type[BaseException], exc: BaseException | None, _tb: TracebackType | None
) -> None:
    if issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
        return
    log.error("uncaught exception", extra={"event": "serve.error", "error": exc_type.__name__})


def protocol_class(idle_s: float) -> Any:
    """uvicorn's httptools protocol, plus two bounds it lacks: a connection must complete a
    request's headers within `idle_s` of opening (or of its previous answer), else it is
    closed; and headers over MAX_HEADER_BYTES get 431 and a close. uvicorn only times
    connections out between requests, so one that sends nothing, or its headers a byte at a
    time, would stay open for ever, and httptools keeps any amount of header text."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class Protocol(HttpToolsProtocol):
        _header_timer: Any = None

        _header_bytes = 0

        def data_received(self, data: bytes) -> None:
            waiting = self._header_timer is not None
            super().data_received(data)
            if waiting and self._header_timer is not None:  # still no complete headers
                self._header_bytes += len(data)
                if self._header_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
                    self._disarm()
                    self.transport.write(_HEADERS_TOO_LARGE)
                    self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._header_timer is None:
                self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._header_bytes = 0
            self._header_timer = self.loop.call_later(idle_s, self._idle)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _idle(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return Protocol
