"""`GET /metrics`: Prometheus text format, summed over every worker."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from aicli.serve.deps import state_of

router = APIRouter()


@router.get("/metrics")
async def metrics(http: Request) -> Response:
    body, content_type = state_of(http).metrics.render()
    return Response(body, media_type=content_type)
