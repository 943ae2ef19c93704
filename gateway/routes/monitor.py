"""``GET /v1/models/{name}/drift``: the model server's drift report of a model (live traffic vs each
version's reference profile: PSI and KS per feature, live vs reference histograms, the max PSI over time),
read from the model server's REST port (``GATEWAY_MONITOR_URLS`` per model, else ``GATEWAY_MONITOR_URL``).
The console's Monitor view draws it."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import grpc
import httpx
from fastapi import APIRouter

from gateway.deps import ServicesDep
from gateway.errors import ModelNotFound, NotFound, UpstreamError
from gateway.schemas import ErrorBody

router = APIRouter(tags=["monitor"])


@router.get(
    "/v1/models/{name}/drift",
    responses={code: {"model": ErrorBody} for code in (404, 502, 503)},
    summary="Drift of a model's served traffic against its training data",
)
async def drift(name: str, services: ServicesDep) -> dict[str, Any]:
    base = services.settings.monitor_url_for(name)
    if not base:
        raise NotFound("drift reports are off: set GATEWAY_MONITOR_URL to the model server's REST address")
    try:
        async with httpx.AsyncClient(timeout=services.settings.metadata_timeout_seconds) as client:
            reply = await client.get(f"{base.rstrip('/')}/v1/models/{quote(name, safe='')}/drift")
    except httpx.HTTPError as exc:
        raise UpstreamError(
            grpc.StatusCode.UNAVAILABLE, f"drift report: {type(exc).__name__}", address=base
        ) from None
    if reply.status_code == 404:
        raise ModelNotFound(name)
    if reply.status_code != 200:
        raise UpstreamError(grpc.StatusCode.INTERNAL, f"drift report: HTTP {reply.status_code}", address=base)
    report: dict[str, Any] = reply.json()
    return report
