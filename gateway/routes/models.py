"""``GET /v1/models`` (models, versions and states) and ``GET /v1/models/{name}`` (signatures, inputs,
labels)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query

from gateway.deps import Services, ServicesDep
from gateway.errors import ModelNotFound, UpstreamError
from gateway.schemas import (
    ErrorBody,
    ModelDetail,
    ModelList,
    ModelSummary,
    SignatureDetail,
    TensorDetail,
    VersionStatus,
)

router = APIRouter(tags=["models"])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (404, 503, 504)}


async def versions_of(services: Services, name: str) -> list[VersionStatus]:
    served = await services.rollout.serving(name)
    return [VersionStatus(version=v.version, state=v.state, error=v.error) for v in served]


async def _summary(services: Services, name: str) -> ModelSummary:
    state = services.rollout.states.get(name)
    summary = ModelSummary(
        name=name,
        versions=[],
        pinned=state.pinned if state else None,
        labels=dict(state.labels) if state else {},
    )
    try:
        summary.versions = await versions_of(services, name)
    except UpstreamError as exc:
        summary.error = exc.message  # never the server's address: replies name no internal address
    return summary


@router.get("/v1/models", response_model=ModelList)
async def list_models(services: ServicesDep) -> ModelList:
    names = services.rollout.models()
    return ModelList(models=list(await asyncio.gather(*(_summary(services, n) for n in names))))


@router.get("/v1/models/{name}", response_model=ModelDetail, responses=ERRORS)
async def model_detail(
    name: str,
    services: ServicesDep,
    version: int | None = Query(None, ge=1, le=2**63 - 1),
    label: str | None = None,
) -> ModelDetail:
    services.rollout.check_model(name)
    info = await services.contracts.get(name, version=version, label=label)
    try:
        versions = await versions_of(services, name)
    except UpstreamError:
        versions = []
    if not info.signatures:
        raise ModelNotFound(name, version, label)
    return ModelDetail(
        model=name,
        version=info.version,
        task=info.task,
        labels=info.labels,
        inputs=info.inputs,
        signatures={
            key: SignatureDetail(
                method=sig.method,
                inputs={k: TensorDetail(dtype=t.dtype, shape=t.shape) for k, t in sig.inputs.items()},
                outputs={k: TensorDetail(dtype=t.dtype, shape=t.shape) for k, t in sig.outputs.items()},
            )
            for key, sig in info.signatures.items()
        },
        contract=info.contract,
        contract_source="signature" if info.from_signature else "derived",
        versions=versions,
    )
