"""Admin: pin (promote), roll back, label, back to latest - behind ``Authorization: Bearer
$GATEWAY_ADMIN_TOKEN``.

Disabled (403 for every call) when no token is configured; 401 without a token or with a wrong one (compared
in constant time). Changes are applied through ModelService.HandleReloadConfigRequest (gateway.rollout).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Header

from gateway.deps import Services, ServicesDep
from gateway.errors import AdminDisabled, Unauthorized
from gateway.routes.models import versions_of
from gateway.schemas import AdminReply, ErrorBody, LabelBody, PromoteBody


def require_admin(services: ServicesDep, authorization: Annotated[str | None, Header()] = None) -> None:
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
    responses={code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 503, 504)},
)


async def _reply(services: Services, name: str) -> AdminReply:
    state = services.rollout.state(name)
    versions = await versions_of(services, name)
    services.contracts.forget(name)
    return AdminReply(
        model=name,
        pinned=state.pinned,
        labels=dict(state.labels),
        history=list(state.history),
        seen=list(state.seen),
        versions=versions,
    )


@router.get("/models/{name}", response_model=AdminReply)
async def admin_state(name: str, services: ServicesDep) -> AdminReply:
    services.rollout.check_model(name)
    return await _reply(services, name)


@router.post("/models/{name}:promote", response_model=AdminReply, summary="Serve exactly this version")
async def promote(name: str, body: PromoteBody, services: ServicesDep) -> AdminReply:
    await services.rollout.promote(name, body.version)
    return await _reply(services, name)


@router.post("/models/{name}:rollback", response_model=AdminReply, summary="Serve the previous version")
async def rollback(name: str, services: ServicesDep) -> AdminReply:
    await services.rollout.rollback(name)
    return await _reply(services, name)


@router.post("/models/{name}:latest", response_model=AdminReply, summary="Unpin: back to the config's policy")
async def latest(name: str, services: ServicesDep) -> AdminReply:
    await services.rollout.latest(name)
    return await _reply(services, name)


@router.put("/models/{name}/labels/{label}", response_model=AdminReply, summary="Point a label at a version")
async def set_label(name: str, label: str, body: LabelBody, services: ServicesDep) -> AdminReply:
    await services.rollout.set_label(name, label, body.version)
    return await _reply(services, name)


@router.delete("/models/{name}/labels/{label}", response_model=AdminReply, summary="Remove a label")
async def delete_label(name: str, label: str, services: ServicesDep) -> AdminReply:
    await services.rollout.set_label(name, label, None)
    return await _reply(services, name)
