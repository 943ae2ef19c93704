"""FastAPI dependencies: the per-app services, as ``Annotated`` aliases for route signatures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from gateway.client import ModelClient
from gateway.contract import ContractStore
from gateway.metrics import Metrics
from gateway.rollout import Rollout
from gateway.settings import Settings

__all__ = ["Services", "ServicesDep"]


@dataclass
class Services:
    settings: Settings
    metrics: Metrics
    client: ModelClient
    contracts: ContractStore
    rollout: Rollout


def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(_services)]
