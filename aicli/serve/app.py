"""`create_app(cfg)`: the FastAPI app over the same engine as the CLI; routes -> engine, no
request step re-implemented here."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from aicli import __version__
from aicli.cache import open_cache
from aicli.config import Config, load_config
from aicli.engine import Engine
from aicli.quota import daily_quota
from aicli.request_builder import TemplateSource
from aicli.serve import errors, generate, health, metrics_route, openai_api
from aicli.serve.metrics import Metrics
from aicli.serve.middleware import RequestMiddleware
from aicli.serve.runner import CONFIG_ENV, WORKERS_ENV, read_tokens
from aicli.serve.state import ServeState

CACHE_RETRY_S = 30.0


def create_app(cfg: Config, *, engine: Engine | None = None, workers: int = 1) -> FastAPI:
    """The app for one of `workers` workers. Changes nothing in the process (logging, switch
    interval: the worker's entry, serve/worker.py, does that), so a test can build it in
    process."""
    metrics = Metrics(list(cfg.tiers))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One cache per worker; after a failure a probe tries the backend again after 1 s,
        # doubling up to 30 s, and the cache is used again as soon as it answers.
        cache = open_cache(cfg, retry_after_s=CACHE_RETRY_S, sole_process=workers == 1)
        quota = daily_quota(cfg, cache)
        state = ServeState(
            cfg=cfg,
            engine=engine or Engine(cfg, cache=cache, transport="aiohttp"),
            metrics=metrics,
            tokens=read_tokens(cfg.serve.tokens_env),
            quota=quota,
            templates=TemplateSource(cfg.prompts_dir),
        )
        app.state.aicli = state
        # Import the SDK now, off the event loop, so the first request does not pay for it
        # while start-up (ready at /health/live) does not wait for it either.
        warm = asyncio.get_running_loop().run_in_executor(None, _warm_imports)
        replaying = asyncio.get_running_loop().create_task(quota.keep_replaying())
        try:
            yield
        finally:
            replaying.cancel()
            await warm
            state.offload.shutdown(wait=False, cancel_futures=True)
            await state.engine.aclose()
            await quota.aclose()  # spend the cache could not take yet: one last try
            await cache.aclose()

    app = FastAPI(
        title="aicli",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    # Auth and the in-flight cap are the middleware's (admission.admit), before any routing.
    app.include_router(health.router)
    app.include_router(metrics_route.router)
    app.include_router(generate.router)
    app.include_router(openai_api.router, prefix="/v1")
    errors.install(app)
    app.add_middleware(
        RequestMiddleware,
        max_body_bytes=cfg.serve.max_body_kb * 1024,
        body_timeout_s=cfg.serve.body_timeout_seconds,
        metrics=metrics,
    )
    return app


def _warm_imports() -> None:
    import aicli.providers.openai
    import aicli.redact  # noqa: F401


def app_from_env() -> FastAPI:
    """The factory uvicorn calls in each worker: the config the runner chose, loaded again."""
    workers = int(os.environ.get(WORKERS_ENV) or 1)
    return create_app(load_config(os.environ.get(CONFIG_ENV) or None), workers=workers)
