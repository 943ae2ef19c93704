"""FastAPI dependencies: the per-app services, as ``Annotated`` aliases for route signatures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from gateway.metrics import Metrics
from gateway.rollout.catalog import Catalog
from gateway.rollout.operations import Operations
from gateway.rollout.reconciler import Reconciler
from gateway.rollout.registry import Registry
from gateway.rollout.traffic import Traffic
from gateway.settings import Settings
from gateway.upload_log import UploadLog
from gateway.upstream.client import ModelClient
from gateway.upstream.contract import ContractStore

__all__ = ["Services", "ServicesDep"]


@dataclass
class Services:
    settings: Settings
    metrics: Metrics
    client: ModelClient
    contracts: ContractStore
    catalog: Catalog
    reconciler: Reconciler
    operations: Operations
    traffic: Traffic
    registry: Registry
    upload_log: UploadLog | None = None  # raw-upload logging, opt-in (gateway.upload_log)


async def _services(request: Request) -> Services:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, a hop on every request
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(_services)]
