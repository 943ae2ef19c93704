"""End to end: admin auth, promote / rollback / label / latest through HandleReloadConfigRequest, and a model
server outage (503 + Retry-After, then recovery and the admin state re-applied after the restart)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from PIL import Image

from devtools.exported import models_config
from devtools.fashion import encode
from devtools.procs import LOOPBACK, ServerProcess, free_port
from devtools.servers import Gateway, modelserver_process, start_gateway
from devtools.waiting import poll_until
from gateway.rollout.desired import parse_desired
from tests.gateway.conftest import ADMIN_TOKEN, settled

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
IMAGE = {"file": ("x.png", encode(Image.new("L", (28, 28)), "PNG"), "image/png")}


def _version(http: httpx.Client, **params: object) -> int:
    reply = http.post("/v1/models/fashion:classify", files=IMAGE, params=params)
    assert reply.status_code == 200, reply.text
    return int(reply.json()["version"])


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-token-wrong-token"}, 401),
        ({"Authorization": "Basic x"}, 401),
    ],
)
def test_admin_refuses_without_the_right_token(http: httpx.Client, headers: dict, status: int) -> None:
    reply = http.post("/v1/admin/models/fashion:promote", json={"version": 1}, headers=headers)
    assert reply.status_code == status
    assert reply.json()["error"]["code"] == "unauthorized"


def test_promote_rollback_label_latest_change_the_version_in_replies(http: httpx.Client) -> None:
    settled(http, "fashion")
    assert _version(http) == 2  # latest
    promoted = http.post("/v1/admin/models/fashion:promote", json={"version": 1}, headers=AUTH)
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["pinned"] == 1 and promoted.json()["history"] == [2]
    settled(http, "fashion")
    assert _version(http) == 1

    rolled = http.post("/v1/admin/models/fashion:rollback", headers=AUTH)
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["pinned"] == 2
    settled(http, "fashion")
    assert _version(http) == 2

    labelled = http.put("/v1/admin/models/fashion/labels/stable", json={"version": 1}, headers=AUTH)
    assert labelled.status_code == 200, labelled.text
    settled(http, "fashion")
    assert _version(http, label="stable") == 1 and _version(http) == 2
    listing = {m["name"]: m for m in http.get("/v1/models").json()["models"]}
    assert listing["fashion"]["labels"] == {"stable": 1} and listing["fashion"]["pinned"] == 2

    assert http.delete("/v1/admin/models/fashion/labels/stable", headers=AUTH).status_code == 200
    back = http.post("/v1/admin/models/fashion:latest", headers=AUTH)
    assert back.status_code == 200 and back.json()["pinned"] is None
    settled(http, "fashion")
    assert _version(http) == 2


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/admin/models/fashion:promote", {"version": 42}, 404),
        ("POST", "/v1/admin/models/nope:promote", {"version": 1}, 404),
        ("POST", "/v1/admin/models/fashion:promote", {"version": "x"}, 422),
        ("PUT", "/v1/admin/models/fashion/labels/bad-label!", {"version": 1}, 400),
        ("DELETE", "/v1/admin/models/fashion/labels/missing", None, 404),
        ("POST", "/v1/admin/models/text:rollback", None, 409),
    ],
)
def test_admin_bad_requests(
    http: httpx.Client, method: str, path: str, body: dict | None, status: int
) -> None:
    reply = http.request(method, path, json=body, headers=AUTH)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["message"]


def test_admin_disabled_without_token(live_repo: Path, tmp_path: Path) -> None:
    env = {
        "GATEWAY_MODEL_CONFIG_FILE": str(live_repo / "models.config"),
        "GATEWAY_DEFAULT_MODEL_SERVER": f"{LOOPBACK}:{free_port()}",
    }
    gw = start_gateway(env, tmp_path / "gateway.log")
    try:
        reply = httpx.post(f"{gw.url}/v1/admin/models/fashion:latest", headers=AUTH)
        assert reply.status_code == 403 and "GATEWAY_ADMIN_TOKEN" in reply.json()["error"]["message"]
    finally:
        gw.process.stop()


def _modelserver(config: Path, port: int, log: Path) -> ServerProcess:
    """A modelserver on a fixed port (restarted on the same one), gRPC only."""
    return modelserver_process(grpc_port=port, rest_port=None, log_path=log, model_config_file=config).start()


def test_stopped_model_server_gives_503_then_recovers_with_state(model_repo: Path, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(model_repo / "housing" / "1", root / "housing" / "1")
    shutil.copytree(model_repo / "housing" / "1", root / "housing" / "2")
    config = root / "models.config"
    config.write_text(models_config(root, ("housing",)), encoding="utf-8")
    port = free_port()
    server = _modelserver(config, port, tmp_path / "ms1.log")
    env = {
        "GATEWAY_MODEL_CONFIG_FILE": str(config),
        "GATEWAY_DEFAULT_MODEL_SERVER": f"{LOOPBACK}:{port}",
        "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "GATEWAY_RETRIES": "1",
        "GATEWAY_STATE_REFRESH_SECONDS": "0.5",
    }
    gw: Gateway | None = None
    record = {"records": [{"median_income": 3.0}]}
    try:
        gw = start_gateway(env, tmp_path / "gateway.log")
        http = gw.client()
        assert http.post("/v1/models/housing:regress", json=record).json()["version"] == 2
        assert (
            http.post("/v1/admin/models/housing:promote", json={"version": 1}, headers=AUTH).status_code
            == 200
        )
        desired = parse_desired(config.read_text(), lambda _: None)  # the pin lives in models.config
        assert desired.models["housing"].pinned == 1 and desired.generation == 1
        assert "versions: 1" in config.read_text()

        server.stop()
        down = http.post("/v1/models/housing:regress", json=record)
        assert down.status_code == 503 and down.headers["retry-after"]
        assert down.json()["error"]["code"] == "upstream_unavailable"
        assert http.get("/readyz").status_code == 503
        assert http.get("/healthz").status_code == 200

        # The restarted server reads the pin from the shared models.config when it starts.
        server = _modelserver(config, port, tmp_path / "ms2.log")
        versions: list[int] = []

        def pinned_again() -> bool:
            reply = http.post("/v1/models/housing:regress", json=record)
            if reply.status_code == 200:
                versions.append(reply.json()["version"])
            return bool(versions) and versions[-1] == 1

        poll_until(pinned_again, interval=0.5)
        assert versions and versions[-1] == 1, versions
        assert http.get("/readyz").status_code == 200
    finally:
        if gw is not None:
            gw.process.stop()
        server.stop()
