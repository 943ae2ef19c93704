"""Published files of one version, read from the model repository when the gateway can read it:
``GET /v1/models/{name}/versions/{version}/card`` (model_card.json) and ``.../curves.png``
(training_curves.png). 404 for a model that is not configured, a version that is not an integer, or a file
the repository does not have (gateway.rollout.repository holds the path rules)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse
from pydantic import ValidationError

from gateway.deps import Services, ServicesDep
from gateway.errors import ModelFileInvalid, ModelFileNotFound
from gateway.rollout.repository import CARD_FILE
from gateway.schemas import ErrorBody, ModelCard

router = APIRouter(tags=["models"])
CURVES_FILE = "training_curves.png"
_VERSION = re.compile(r"^[0-9]{1,18}$")
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "unknown model, version not an integer, or no such file"}
}


def _version_file(services: Services, name: str, version: str, filename: str) -> tuple[int, Path]:
    services.catalog.check_model(name)
    if not _VERSION.fullmatch(version):
        raise ModelFileNotFound(name, version, filename, "the version must be a whole number, e.g. 1")
    number = int(version)
    return number, services.catalog.repository.version_file(name, number, filename)


@router.get(
    "/v1/models/{name}/versions/{version}/card",
    response_model=ModelCard,
    response_model_exclude_unset=True,
    responses={**_ERRORS, 500: {"model": ErrorBody, "description": "model_card.json is not a JSON object"}},
    summary="The model card of a version (model_card.json)",
)
async def model_card(name: str, version: str, services: ServicesDep) -> ModelCard:
    number, path = _version_file(services, name, version, CARD_FILE)
    try:
        raw = json.loads(await asyncio.to_thread(path.read_bytes))
        return ModelCard.model_validate(raw)
    except OSError as exc:
        raise ModelFileNotFound(name, number, CARD_FILE, f"cannot be read ({exc.strerror})") from exc
    except ValueError as exc:  # JSONDecodeError and ValidationError are both ValueErrors
        why = "not valid JSON" if not isinstance(exc, ValidationError) else "not a model card object"
        raise ModelFileInvalid(name, number, CARD_FILE, why) from exc


@router.get(
    "/v1/models/{name}/versions/{version}/curves.png",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}}, "description": "training curves"}, **_ERRORS},
    summary="The training curves of a version (training_curves.png)",
)
async def training_curves(name: str, version: str, services: ServicesDep) -> FileResponse:
    _, path = _version_file(services, name, version, CURVES_FILE)
    return FileResponse(path, media_type="image/png")
