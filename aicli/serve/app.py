"""`create_app(cfg)`: the FastAPI app over the same engine as the CLI; routes -> engine, no
request step re-implemented here."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from aicli import __version__
from aicli.config import Config, load_config
from aicli.engine import Engine
from aicli.logs import configure
from aicli.quota import DailyQuota
from aicli.serve import errors, generate, health, metrics_route, openai_api
from aicli.serve.deps import ServeState, limit_in_flight, require_token
from aicli.serve.metrics import Metrics
from aicli.serve.middleware import RequestMiddleware
from aicli.serve.runner import CONFIG_ENV, read_tokens


def create_app(cfg: Config, *, engine: Engine | None = None) -> FastAPI:
    # JSON lines: warnings from the core, and the one line per request (the engine's own
    # per-request info line would repeat it, so the core stays at warning level).
    configure("json", logging.WARNING)
    logging.getLogger("aicli.serve").setLevel(logging.INFO)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ServeState(
            cfg=cfg,
            engine=engine or Engine(cfg),
            metrics=metrics,
            tokens=read_tokens(cfg.serve.tokens_env),
            quota=_quota(cfg),
        )
        app.state.aicli = state
        # Import the SDK now, off the event loop, so the first request does not pay for it
        # while start-up (ready at /health/live) does not wait for it either.
        warm = asyncio.get_running_loop().run_in_executor(None, _warm_imports)
        try:
            yield
        finally:
            await warm
            await state.engine.aclose()

    app = FastAPI(
        title="aicli",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    auth = [Depends(require_token)]
    limits = [Depends(require_token), Depends(limit_in_flight)]
    app.include_router(health.live_router)  # /health/live: never authenticated
    app.include_router(health.router, dependencies=auth)
    app.include_router(metrics_route.router, dependencies=auth)
    app.include_router(generate.router, dependencies=limits)
    app.include_router(openai_api.router, prefix="/v1", dependencies=limits)
    errors.install(app)
    app.add_middleware(
        RequestMiddleware, max_body_bytes=cfg.serve.max_body_kb * 1024, metrics=metrics
    )
    return app


def _quota(cfg: Config) -> DailyQuota | None:
    return None


def _warm_imports() -> None:
    import aicli.cache
    import aicli.providers.openai
    import aicli.redact  # noqa: F401


def app_from_env() -> FastAPI:
    """The factory uvicorn calls in each worker: the config the runner chose, loaded again."""
    return create_app(load_config(os.environ.get(CONFIG_ENV) or None))
