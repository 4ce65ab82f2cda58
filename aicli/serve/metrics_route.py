"""`GET /metrics`: Prometheus text format, summed over every worker."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from aicli.serve.deps import StateDep

router = APIRouter()


@router.get("/metrics")
async def metrics(state: StateDep) -> Response:
    body, content_type = state.metrics.render()
    return Response(body, media_type=content_type)
