"""Admin: add and remove models, pin (promote), roll back, label, back to latest, and the canary - behind
``Authorization: Bearer $GATEWAY_ADMIN_TOKEN``.

Disabled (403 for every call) when no token is configured; 401 without a token or with a wrong one (compared
in constant time). Every change is written to the model's models.config (the desired state every replica and
every gateway reads) and applied to every replica (gateway.rollout.operations); the reply shows each replica.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Header

from gateway.deps import Services, ServicesDep
from gateway.errors import AdminDisabled, Unauthorized
from gateway.rollout.desired import Desired
from gateway.rollout.reconciler import ReplicaView
from gateway.routes.models import cluster, version_list
from gateway.schemas import (
    AddModelBody,
    AdminReplicaStatus,
    AdminReply,
    CanaryBody,
    ErrorBody,
    LabelBody,
    PromoteBody,
    RemovedReplica,
    RemovedReply,
)


async def require_admin(services: ServicesDep, authorization: Annotated[str | None, Header()] = None) -> None:
    token = services.settings.admin_token
    if token is None:
        raise AdminDisabled()
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise Unauthorized("send the admin token as 'Authorization: Bearer <GATEWAY_ADMIN_TOKEN>'")
    if not hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode()):
        raise Unauthorized("the admin token is wrong")


router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses={code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 422, 503, 504)},
)


async def _reply(services: Services, name: str, done: Desired | None = None) -> AdminReply:
    """The model's state now; ``done``: the change just made (its replicas that did not confirm)."""
    services.traffic.forget(name)  # this gateway's own change applies to its next request
    services.contracts.forget(name)
    summary, view = await cluster(services, name)
    desired = services.catalog.store_for(name).current()
    state = desired.models.get(name) if desired else None
    served = {v for r in view.replicas for v in r.available}
    return AdminReply(
        model=name,
        pinned=summary.pinned,
        labels=summary.labels,
        history=list(state.history) if state else [],
        seen=sorted(served | set(services.catalog.repository.versions(name) or [])),
        versions=summary.versions,
        generation=done.generation if done is not None and done.generation else summary.generation,
        converged=summary.converged,
        answers=summary.answers,
        unconfirmed=sorted(r.id for r in view.replicas if done is not None and r.address in done.unconfirmed),
        replicas=[
            AdminReplicaStatus(
                id=r.id,
                address=r.address,
                reachable=r.reachable,
                versions=version_list(r),
                error=r.error,
                answers=r.answers,
            )
            for r in view.replicas
        ],
        canary=summary.canary,
        events=list(state.events) if state else [],
    )


@router.get("/models/{name}", response_model=AdminReply)
async def admin_state(name: str, services: ServicesDep) -> AdminReply:
    services.catalog.store_for(name)
    return await _reply(services, name)


@router.put(
    "/models/{name}",
    response_model=AdminReply,
    status_code=201,
    summary="Add a model: every replica loads it (base_path under the model roots)",
)
async def add_model(name: str, body: AddModelBody, services: ServicesDep) -> AdminReply:
    done = await services.registry.add(name, body.base_path, body.model_version_policy, body.config_file)
    return await _reply(services, name, done)


@router.delete(
    "/models/{name}",
    response_model=RemovedReply,
    summary="Remove a model: every replica unloads it once its in-flight requests finish",
)
async def remove_model(name: str, services: ServicesDep) -> RemovedReply:
    desired, unloaded = await services.registry.remove(name)
    return RemovedReply(
        model=name,
        generation=desired.generation,
        replicas=[
            RemovedReplica(id=ReplicaView(a, True).id, address=a, unloaded=e is None, error=e)
            for a, e in unloaded.items()
        ],
    )


@router.post("/models/{name}:promote", response_model=AdminReply, summary="Serve exactly this version")
async def promote(name: str, body: PromoteBody, services: ServicesDep) -> AdminReply:
    done = await services.operations.promote(name, body.version)
    return await _reply(services, name, done)


@router.post("/models/{name}:rollback", response_model=AdminReply, summary="Serve the previous version")
async def rollback(name: str, services: ServicesDep) -> AdminReply:
    done = await services.operations.rollback(name)
    return await _reply(services, name, done)


@router.post("/models/{name}:latest", response_model=AdminReply, summary="Unpin: back to the config's policy")
async def latest(name: str, services: ServicesDep) -> AdminReply:
    done = await services.operations.latest(name)
    return await _reply(services, name, done)


@router.put("/models/{name}/labels/{label}", response_model=AdminReply, summary="Point a label at a version")
async def set_label(name: str, label: str, body: LabelBody, services: ServicesDep) -> AdminReply:
    done = await services.operations.set_label(name, label, body.version)
    return await _reply(services, name, done)


@router.delete("/models/{name}/labels/{label}", response_model=AdminReply, summary="Remove a label")
async def delete_label(name: str, label: str, services: ServicesDep) -> AdminReply:
    done = await services.operations.set_label(name, label, None)
    return await _reply(services, name, done)


@router.put(
    "/models/{name}/canary",
    response_model=AdminReply,
    summary="Start a canary (or change its weight): a share of requests to a candidate version",
)
async def set_canary(name: str, body: CanaryBody, services: ServicesDep) -> AdminReply:
    done = await services.operations.set_canary(name, body.version, body.weight, body.shadow)
    return await _reply(services, name, done)


@router.delete("/models/{name}/canary", response_model=AdminReply, summary="Abort the canary")
async def clear_canary(name: str, services: ServicesDep) -> AdminReply:
    done = await services.operations.clear_canary(name)
    return await _reply(services, name, done)


@router.post(
    "/models/{name}/canary:promote",
    response_model=AdminReply,
    summary="Make the candidate the stable version",
)
async def promote_canary(name: str, services: ServicesDep) -> AdminReply:
    done = await services.operations.promote_canary(name)
    return await _reply(services, name, done)
