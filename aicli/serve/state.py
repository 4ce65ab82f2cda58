"""Per-app state (ServeState), how a route finds it, and the app's bounded pool for work off
the event loop. Who gets in is admission.py."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request

from aicli.config import Config
from aicli.engine import Engine
from aicli.quota import DailyQuota
from aicli.request_builder import TemplateSource
from aicli.serve.checks import HealthCache
from aicli.serve.errors import ServeError
from aicli.serve.metrics import Metrics


@dataclass
class ServeState:
    """Everything one app (one worker) shares between its requests."""

    cfg: Config
    engine: Engine
    metrics: Metrics
    tokens: list[bytes] = field(default_factory=list)
    quota: DailyQuota | None = None
    in_flight: int = 0
    health: HealthCache = field(default_factory=HealthCache)
    templates: TemplateSource | None = None  # one store per app, re-read when files change
    # Template rendering: off the event loop, a few threads at most, each call time-bound.
    offload: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(OFFLOAD_THREADS, "aicli-render")
    )


OFFLOAD_THREADS = 4
OFFLOAD_TIMEOUT_S = 10.0  # queueing included; the sandbox bounds a render itself (RENDER_SECONDS)
T = TypeVar("T")


async def off_loop(state: ServeState, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` in the app's bounded pool, with the caller's log context; 503
    `server_busy` (Retry-After) when it has not finished within OFFLOAD_TIMEOUT_S."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    future = asyncio.get_running_loop().run_in_executor(state.offload, call)
    try:
        return await asyncio.wait_for(future, OFFLOAD_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise ServeError(
            503,
            f"the server could not prepare this request within {OFFLOAD_TIMEOUT_S:g} s",
            "server_error",
            "server_busy",
            headers={"Retry-After": "1"},
        ) from None


def state_of(request: Request) -> ServeState:
    state: ServeState = request.app.state.aicli
    return state
