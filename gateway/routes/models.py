"""``GET /v1/models`` (per model: what each replica serves, whether the cluster converged on the desired
state, the canary and recent events) and ``GET /v1/models/{name}`` (signatures, inputs, labels)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query

from gateway.deps import Services, ServicesDep
from gateway.errors import ModelNotFound
from gateway.rollout.reconciler import ClusterView, ReplicaView
from gateway.schemas import (
    CanaryState,
    ErrorBody,
    ModelDetail,
    ModelList,
    ModelSummary,
    ReplicaStatus,
    SignatureDetail,
    TensorDetail,
    VersionStatus,
)

router = APIRouter(tags=["models"])
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (404, 503, 504)}


def version_list(replica: ReplicaView) -> list[VersionStatus]:
    return [VersionStatus(version=v.version, state=v.state, error=v.error) for v in replica.versions]


def replica_status(replica: ReplicaView) -> ReplicaStatus:
    return ReplicaStatus(
        id=replica.id,
        reachable=replica.reachable,
        versions=version_list(replica),
        error=replica.error,
        answers=replica.answers,
    )


async def cluster(services: Services, name: str) -> tuple[ModelSummary, ClusterView]:
    """The model's desired state (from its models.config) next to what each replica serves."""
    store = services.catalog.store_for(name) if services.catalog.enabled else None
    desired = store.current() if store is not None else None
    state = desired.models.get(name) if desired else None
    view = await services.reconciler.observe(name, state)
    answered = next((r for r in view.replicas if r.reachable and r.error is None), None)
    summary = ModelSummary(
        name=name,
        versions=version_list(answered) if answered else [],
        pinned=state.pinned if state else None,
        labels=dict(state.labels) if state else {},
        answers=view.answers,
        replicas=[replica_status(r) for r in view.replicas],
        converged=view.converged,
        generation=desired.generation if desired else None,
        desired_error=store.error if store is not None else None,
        events=list(state.events[-10:]) if state else [],
    )
    if answered is None:  # never the server's address: replies name no internal address
        summary.error = next((r.error for r in view.replicas if r.error), None) or "no replica answered"
    if state is not None and state.canary is not None:
        summary.canary = CanaryState(
            **vars(state.canary), window=services.traffic.window(name, state.canary.version)
        )
    return summary, view


async def _summary(services: Services, name: str) -> ModelSummary:
    return (await cluster(services, name))[0]


@router.get("/v1/models", response_model=ModelList)
async def list_models(services: ServicesDep) -> ModelList:
    names = services.catalog.models()
    return ModelList(models=list(await asyncio.gather(*(_summary(services, n) for n in names))))


@router.get("/v1/models/{name}", response_model=ModelDetail, responses=ERRORS)
async def model_detail(
    name: str,
    services: ServicesDep,
    version: int | None = Query(None, ge=1, le=2**63 - 1),
    label: str | None = None,
) -> ModelDetail:
    services.catalog.check_model(name)
    info = await services.contracts.get(name, version=version, label=label)
    replica = await services.reconciler.replica(name, services.client.address_for(name), measure=False)
    versions = version_list(replica)
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
        contract_source=info.source,
        versions=versions,
    )
