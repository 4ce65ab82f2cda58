"""`GET /metrics`: Prometheus text format, summed over every worker."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from aicli.ledger import NANO
from aicli.serve.state import state_of

router = APIRouter()


@router.get("/metrics")
async def metrics(http: Request) -> Response:
    state = state_of(http)
    if state.quota is not None:  # read now: the counter is shared, not this worker's
        today = await state.quota.spent_today()
        if today is not None:
            state.metrics.spend_today.set(today.spent / NANO)
    body, content_type = state.metrics.render()
    return Response(body, media_type=content_type)
