"""Gateway test fixtures: real Fashion-MNIST images, and real processes - the modelserver on a copy of the
exported ``model_repo`` (with a second fashion version for rollouts) and ``python -m gateway`` in front of it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.exported import models_config
from devtools.procs import ServerProcess
from devtools.servers import Gateway, start_gateway, start_modelserver
from devtools.waiting import wait_until

ADMIN_TOKEN = "gateway-test-token-5f1c9a7e"
MODELS = ("fashion", "text", "housing", "half")


@pytest.fixture(scope="session")
def live_repo(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writable copy of ``model_repo`` with ``fashion/2`` (a copy of version 1) for version changes, plus
    ``half`` (TF Serving's half_plus_two, which has no ``contract`` signature: the gateway derives one)."""
    from devtools.tiny_models import half_plus_two

    root = tmp_path_factory.mktemp("gateway_repo")
    for name in ("fashion", "text", "housing"):
        shutil.copytree(model_repo / name / "1", root / name / "1")
    shutil.copytree(model_repo / "fashion" / "1", root / "fashion" / "2")
    half_plus_two(root / "half" / "1")
    (root / "models.config").write_text(models_config(root, MODELS), encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def modelserver(live_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    logs = tmp_path_factory.mktemp("gateway_logs")
    with start_modelserver(
        live_repo / "models.config", rest=False, log_path=logs / "modelserver.log"
    ) as server:
        yield server


@pytest.fixture(scope="session")
def gateway(
    modelserver: object, live_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    logs = tmp_path_factory.mktemp("gateway_proc")
    env = {
        "GATEWAY_DEFAULT_MODEL_SERVER": modelserver.grpc_target,  # type: ignore[attr-defined]
        "GATEWAY_MODEL_CONFIG_FILE": str(live_repo / "models.config"),
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "GATEWAY_MAX_UPLOAD_BYTES": str(4 * 1024 * 1024),
        "GATEWAY_MAX_IMAGE_PIXELS": str(30_000_000),
        "GATEWAY_MAX_FILES": "64",
    }
    gw = start_gateway(env, logs / "gateway.log")
    try:
        yield gw
    finally:
        gw.process.stop()


@pytest.fixture
def http(gateway: Gateway) -> Iterator[httpx.Client]:
    with gateway.client() as client:
        yield client


def tf_serving_api_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow_serving") is not None and "CI_NO_TF" not in os.environ


def settled(http: httpx.Client, *models: str) -> None:
    """Wait (a hang guard, never a verdict) until ``GET /v1/models`` shows each model converged: an admin
    reply does not wait for a slow replica (it names it as unconfirmed), so a test that reads right after a
    change on a busy machine waits for the cluster first."""

    def converged() -> bool:
        listing = {m["name"]: m for m in http.get("/v1/models").json()["models"]}
        return all(listing[name]["converged"] for name in models)

    wait_until(converged, f"{', '.join(models)} converged after an admin change")
