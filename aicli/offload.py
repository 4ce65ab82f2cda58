"""CPU work whose time a request decides (JSON Schema checks, long redaction) off the event loop.

One small thread pool per process: an asyncio server's loop must keep answering (/health/live,
other requests) while such work runs. The work keeps its own time bound (regexes.TIMEOUT_S per
search, jsontext.VALIDATION_S per validation); the pool only moves it off the loop and bounds
how many run at once. The regex package releases the GIL while it searches, so even a
backtracking `pattern` leaves the loop its turn. Imported by coroutines only.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

MAX_THREADS = 4  # work at once per process; more waits its turn (each piece is time-bounded)

_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(MAX_THREADS, thread_name_prefix="aicli-offload")
    return _pool


async def run(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """fn(*args, **kwargs) on the pool; its exception is raised here. A caller that is
    cancelled stops waiting; the work itself ends by its own time bound."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), functools.partial(fn, *args, **kwargs))
