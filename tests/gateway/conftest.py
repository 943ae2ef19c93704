"""Gateway test fixtures: real Fashion-MNIST images, and real processes - the modelserver on a copy of the
exported ``model_repo`` (with a second fashion version for rollouts) and ``python -m gateway`` in front of it.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.exported import models_config
from tests.support.procs import LOOPBACK, REPO_ROOT, ServerProcess, free_port, start_modelserver

ADMIN_TOKEN = "gateway-test-token-5f1c9a7e"
MODELS = ("fashion", "text", "housing", "half")
FASHION_LABELS = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


@dataclass
class Gateway:
    process: ServerProcess
    port: int

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60.0)


def start_gateway(env: Mapping[str, str], log_path: Path) -> Gateway:
    """Start ``python -m gateway`` on a free loopback port; ready once /healthz answers."""
    port = free_port()
    full_env = {
        "PYTHONPATH": str(REPO_ROOT),
        "GATEWAY_HOST": LOOPBACK,
        "GATEWAY_PORT": str(port),
        "GATEWAY_LOG_LEVEL": "warning",
        **env,
    }

    def ready() -> bool:
        try:
            return httpx.get(f"http://{LOOPBACK}:{port}/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    process = ServerProcess(
        [sys.executable, "-m", "gateway"],
        ports=[port],
        log_path=log_path,
        env=full_env,
        ready=ready,
        startup_timeout=30.0,
    )
    return Gateway(process.start(), port)


@pytest.fixture(scope="session")
def live_repo(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writable copy of ``model_repo`` with ``fashion/2`` (a copy of version 1) for version changes, plus
    ``half`` (TF Serving's half_plus_two, which has no ``contract`` signature: the gateway derives one)."""
    from tests.support.tiny_models import half_plus_two

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
        "GATEWAY_STATE_FILE": str(logs / "state.json"),
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
