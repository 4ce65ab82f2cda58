"""`/health` (doctor's checks as dependencies; `?deep=1` probes providers, reused for 30 s),
`/health/live` and `/health/ready`. HEAD is answered as GET (the middleware)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from aicli import __version__
from aicli.serve.checks import report, worker_cache_check
from aicli.serve.state import state_of

router = APIRouter()


@router.get("/health")
async def health(http: Request, deep: bool = False) -> JSONResponse:
    state = state_of(http)
    checks = await state.health.checks(state.cfg, deep)
    pinged = [c for c in checks if c.area == "cache"]
    worker = worker_cache_check(state.engine.cache, pinged)  # what this worker does, now
    status, body = report(state.cfg, checks + ([worker] if worker else []), deep)
    return JSONResponse(body, status_code=status)


@router.get("/health/live")  # never authenticated (admission.OPEN_PATHS): so it says nothing more
async def live() -> dict[str, Any]:
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(http: Request) -> dict[str, Any]:
    state = state_of(http)
    # The config is loaded and the engine is up; a cache that is down does not make a replica
    # unready, since requests are still answered without it.
    return {"status": "ready", "version": __version__, "tiers": sorted(state.cfg.tiers)}
