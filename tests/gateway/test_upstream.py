"""The gateway against an in-process fake model server (tests.support.fake_modelserver): retries, deadlines,
the contract cache, status, rollout's reload calls and error mapping - in milliseconds, no TensorFlow.

(The same against the real modelserver and exported models: test_inference_e2e.py, test_admin_e2e.py.)"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from fastapi.testclient import TestClient

from devtools.waiting import wait_until
from gateway.app import create_app
from gateway.settings import Settings
from tests.support.fake_modelserver import FakeModelServer

TOKEN = "5f1c9a7e2b4d6f8a0c1e3b5d7f9a1c3e"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RECORD = {"records": [{"x": 2.0}]}
Gateway = Callable[..., TestClient]


@pytest.fixture
def fake() -> Iterator[FakeModelServer]:
    with FakeModelServer({"half": {1: "AVAILABLE"}}) as server:
        yield server


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """The model repository the gateway reads (``half/1``, no model card unless a test writes one)."""
    (tmp_path / "half" / "1").mkdir(parents=True)
    return tmp_path


def _card(repo: Path, inputs: dict[str, object]) -> None:
    """``half/1/model_card.json`` whose contract names ``inputs`` and an explain signature (serving_default)."""
    contract = {
        "model": "half",
        "task": "regression",
        "labels": [],
        "inputs": inputs,
        "predict": {"signature": "serving_default", "outputs": ["y"]},
        "explain": {"signature": "serving_default"},
    }
    (repo / "half" / "1" / "model_card.json").write_text(json.dumps({"name": "half", "contract": contract}))


@pytest.fixture
def gateway(fake: FakeModelServer, repo: Path) -> Iterator[Gateway]:
    """``gateway(**settings)``: a TestClient on a gateway whose only model server is ``fake``."""
    config = repo / "models.config"
    entry = f'name: "half" base_path: "{repo}/half" model_platform: "tensorflow"'
    config.write_text(f"model_config_list {{ config {{ {entry} }} }}")
    clients: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        settings = Settings(
            model_config_file=config,
            default_model_server=fake.address,
            admin_token=TOKEN,
            retry_backoff_seconds=0,
            **overrides,  # type: ignore[arg-type]
        )
        client = TestClient(create_app(settings))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _metric(client: TestClient, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_predict_answers_with_the_model_servers_version(gateway: Gateway, fake: FakeModelServer) -> None:
    reply = gateway().post("/v1/models/half:predict", json=RECORD)
    assert reply.status_code == 200
    assert reply.json() == {
        "model": "half",
        "version": 1,
        "signature": "serving_default",
        "predictions": [{"y": 3.0}],
    }


@pytest.mark.parametrize("retries", [0, 2])
def test_unavailable_is_retried_then_a_503_with_retry_after(
    gateway: Gateway, fake: FakeModelServer, retries: int
) -> None:
    client = gateway(retries=retries)
    fake.fail("Predict", grpc.StatusCode.UNAVAILABLE, times=retries)  # the last attempt succeeds
    assert client.post("/v1/models/half:predict", json=RECORD).status_code == 200
    assert fake.calls["Predict"] == retries + 1
    fake.fail("Predict", grpc.StatusCode.UNAVAILABLE, "connection refused", times=retries + 1)  # all fail
    reply = client.post("/v1/models/half:predict", json=RECORD)
    assert reply.status_code == 503 and reply.headers["retry-after"]
    assert reply.json()["error"]["code"] == "upstream_unavailable"
    assert fake.address not in reply.text  # internal addresses never leave the gateway
    assert fake.calls["Predict"] == 2 * (retries + 1)
    assert _metric(client, "gateway_upstream_retries_total") == 2 * retries


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.INTERNAL, 502),
    ],
)
def test_other_errors_are_not_retried_and_keep_their_meaning(
    gateway: Gateway, fake: FakeModelServer, code: grpc.StatusCode, status: int
) -> None:
    client = gateway(retries=3)
    client.post("/v1/models/half:predict", json=RECORD)  # contract cached: only Predict fails below
    fake.fail("Predict", code, "what went wrong")
    reply = client.post("/v1/models/half:predict", json=RECORD)
    assert reply.status_code == status, reply.text
    assert "what went wrong" in reply.json()["error"]["message"]
    assert fake.calls["Predict"] == 2


def test_deadline_gives_504_and_is_not_retried(gateway: Gateway, fake: FakeModelServer) -> None:
    client = gateway(timeout_seconds=0.2, retries=2)
    client.post("/v1/models/half:predict", json=RECORD)
    gate = fake.hold("Predict")  # this call outlives any deadline: no clock decides the outcome
    try:
        reply = client.post("/v1/models/half:predict", json=RECORD)
    finally:
        gate.set()
    assert reply.status_code == 504
    assert reply.json()["error"]["code"] == "upstream_deadline_exceeded"
    assert fake.calls["Predict"] == 2


def test_contract_is_fetched_once_per_version(gateway: Gateway, fake: FakeModelServer) -> None:
    client = gateway()
    for _ in range(3):
        assert client.post("/v1/models/half:predict?version=1", json=RECORD).status_code == 200
    assert fake.calls["GetModelMetadata"] == 1
    fake.versions["half"][2] = "AVAILABLE"
    reply = client.post("/v1/models/half:predict?version=2", json=RECORD)
    assert reply.status_code == 200 and reply.json()["version"] == 2
    assert fake.calls["GetModelMetadata"] == 2  # a new version: its own contract


def test_status_and_readiness_follow_the_model_server(gateway: Gateway, fake: FakeModelServer) -> None:
    client = gateway()
    fake.versions["half"] = {2: "END", 1: "AVAILABLE"}
    versions = client.get("/v1/models").json()["models"][0]["versions"]
    assert sorted((v["version"], v["state"]) for v in versions) == [(1, "AVAILABLE"), (2, "END")]
    assert client.get("/readyz").status_code == 200
    fake.versions["half"] = {1: "END"}
    assert client.get("/readyz").status_code == 503


def test_a_stopped_model_server_is_a_503_then_recovers(gateway: Gateway, fake: FakeModelServer) -> None:
    client = gateway(retries=1)
    assert client.post("/v1/models/half:predict", json=RECORD).status_code == 200
    fake.fail("Predict", grpc.StatusCode.UNAVAILABLE, times=2)
    assert client.post("/v1/models/half:predict", json=RECORD).status_code == 503
    assert client.post("/v1/models/half:predict", json=RECORD).status_code == 200


def test_rollout_sends_the_whole_config(gateway: Gateway, fake: FakeModelServer) -> None:
    client = gateway()
    reply = client.post("/v1/admin/models/half:promote", json={"version": 1}, headers=AUTH)
    assert reply.status_code == 200 and reply.json()["pinned"] == 1
    (config,) = fake.reloads
    (entry,) = config.model_config_list.config
    assert entry.name == "half" and list(entry.model_version_policy.specific.versions) == [1]
    reply = client.post("/v1/admin/models/half:latest", headers=AUTH)
    assert reply.status_code == 200 and reply.json()["pinned"] is None
    assert not fake.reloads[-1].model_config_list.config[0].model_version_policy.HasField("specific")


def test_a_refused_reload_is_reported_and_not_applied(gateway: Gateway, fake: FakeModelServer) -> None:
    client = gateway(retries=0)
    fake.fail("HandleReloadConfigRequest", grpc.StatusCode.FAILED_PRECONDITION, "version 1 is not available")
    reply = client.post("/v1/admin/models/half:promote", json={"version": 1}, headers=AUTH)
    assert reply.status_code >= 400 and "not available" in reply.json()["error"]["message"]
    assert client.get("/v1/admin/models/half", headers=AUTH).json()["pinned"] is None


@pytest.mark.parametrize(
    ("inputs", "source"),
    [({"x": {"dtype": "float32", "shape": [-1], "kind": "numeric"}}, "card"), ({"z": {}}, "derived")],
)
def test_without_the_contract_signature_the_model_card_is_the_contract(
    gateway: Gateway, repo: Path, inputs: dict[str, object], source: str
) -> None:
    """A TF Lite version serves no contract signature: its model card gives the contract - when the card
    describes what the version serves (``z`` is no input of half_plus_two: derived from the metadata)."""
    _card(repo, inputs)
    detail = gateway().get("/v1/models/half").json()
    assert detail["contract_source"] == source
    assert ("explain" in detail["contract"]) is (source == "card")


@pytest.mark.parametrize(("removed", "status"), [(True, 404), (False, 503)])
def test_explain_of_a_model_removed_mid_request_is_a_404(
    gateway: Gateway, fake: FakeModelServer, repo: Path, removed: bool, status: int
) -> None:
    """The model leaves the catalog while its Predict runs (its versions unload: UNAVAILABLE): the answer is
    what every later request gets, 404, as for :classify; a model still configured keeps the 503."""
    _card(repo, {"x": {"dtype": "float32", "shape": [-1], "kind": "numeric"}})
    client = gateway(retries=0)
    fake.fail("Predict", grpc.StatusCode.UNAVAILABLE, "servable unloading")
    gate = fake.hold("Predict")
    replies: list[object] = []
    sender = threading.Thread(
        target=lambda: replies.append(client.post("/v1/models/half:explain", json=RECORD)), daemon=True
    )
    sender.start()
    wait_until(lambda: fake.calls["Predict"] == 1, "the explain Predict reached the model server")
    if removed:
        client.app.state.services.catalog.retire("half")  # type: ignore[attr-defined]
    gate.set()
    sender.join(60)  # hang guard
    (reply,) = replies
    assert reply.status_code == status, reply.text  # type: ignore[attr-defined]
