"""``/healthz`` (process alive), ``/readyz`` (every model's server reachable and a version AVAILABLE),
``/metrics``."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.deps import Services, ServicesDep
from gateway.errors import UpstreamError
from gateway.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


async def _model_ready(services: Services, name: str) -> str:
    try:
        reply = await services.client.status(name, retry=False)
    except UpstreamError as exc:
        return exc.message
    if any(s.state == 30 for s in reply.model_version_status):  # AVAILABLE
        return "ready"
    return "no version AVAILABLE yet"


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(services: ServicesDep) -> JSONResponse:
    names = services.catalog.models()
    states = await asyncio.gather(*(_model_ready(services, n) for n in names))
    body = Readiness(
        ready=bool(names) and all(s == "ready" for s in states), models=dict(zip(names, states, strict=True))
    )
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


@router.get("/metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
