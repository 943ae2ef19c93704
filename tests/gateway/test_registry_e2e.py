"""End to end: ``PUT`` / ``DELETE /v1/admin/models/{name}`` on a running stack - two ``python -m modelserver``
replicas polling one models.config and two gateways (A takes the admin calls, B learns from the file).

Models are TF Serving's half_plus_two (y = 0.5 x + b): ``half`` (b = 2) is configured at start, ``third``
(b = 3) is added and removed while requests keep coming. Waits are conditions with generous deadlines (hang
guards, never the verdict)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from devtools.procs import ServerProcess
from devtools.servers import Gateway
from devtools.tiny_models import half_plus_two
from tests.gateway.conftest import ADMIN_TOKEN
from tests.gateway.half_stack import AUTH, LATEST, serving, wait_for, write_config
from tfs_protos.tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

pytestmark = pytest.mark.e2e


@dataclass
class Stack:
    root: Path
    config: Path
    replicas: list[ServerProcess]
    addresses: list[str]
    a: Gateway
    b: Gateway


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("registry")
    models = root / "models"
    half_plus_two(models / "half" / "1")
    half_plus_two(models / "third" / "1", b=3.0)
    (models / "empty").mkdir()
    (root / "outside" / "1").mkdir(parents=True)
    half_plus_two(root / "outside" / "1", b=9.0)
    config = write_config(models / "models.config", models / "half", LATEST)  # model roots: its folder
    with serving(config, root, replicas=2, gateways="ab") as started:
        yield Stack(root, config, started.replicas, started.addresses, *started.gateways)


def _listed(gw: Gateway) -> set[str]:
    return {m["name"] for m in httpx.get(f"{gw.url}/v1/models", timeout=60).json()["models"]}


def _served(address: str, model: str) -> set[int]:
    """AVAILABLE versions of ``model`` on one replica, asked directly (no gateway)."""
    with grpc.insecure_channel(address) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        try:
            reply = stub.GetModelStatus(request, timeout=30)
        except grpc.RpcError as exc:
            if exc.code() is grpc.StatusCode.NOT_FOUND:
                return set()
            raise
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    return {s.version for s in reply.model_version_status if s.state == available}


def _put(gw: Gateway, name: str, body: dict[str, Any], headers: dict[str, str] = AUTH) -> httpx.Response:
    return httpx.put(f"{gw.url}/v1/admin/models/{name}", json=body, headers=headers, timeout=120)


def _predict(gw: Gateway, model: str) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/models/{model}:predict", json={"records": [{"x": 2.0}]}, timeout=60)


@pytest.mark.parametrize(
    ("name", "base", "status", "says"),
    [
        ("bad name", "models/third", 400, "not valid"),
        ("-dash", "models/third", 400, "not valid"),
        ("x" * 65, "models/third", 400, "not valid"),
        ("fourth", "outside", 400, "outside the model roots"),
        ("fourth", "models/../outside", 400, "outside the model roots"),
        ("fourth", "models", 400, "a model root itself"),
        ("fourth", "models/empty", 400, "no version"),
        ("fourth", "models/missing", 400, "not a folder"),
        ("half", "models/third", 409, "exists already"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    stack: Stack, name: str, base: str, status: int, says: str
) -> None:
    before = stack.config.read_bytes()
    reply = _put(stack.a, name, {"base_path": str(stack.root / base)})
    assert reply.status_code == status, reply.text
    assert says in reply.json()["error"]["message"]
    assert stack.config.read_bytes() == before and _listed(stack.a) == {"half"}


def test_admin_auth_and_policy_checks(stack: Stack) -> None:
    before = stack.config.read_bytes()
    body = {"base_path": str(stack.root / "models" / "third")}
    assert _put(stack.a, "third", body, headers={}).status_code == 401
    assert (
        _put(stack.a, "third", body, headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code
        == 401
    )
    unknown = _put(stack.a, "third", {**body, "model_version_policy": {"specific": {"versions": [7]}}})
    assert unknown.status_code == 400 and "[7]" in unknown.json()["error"]["message"]
    odd = _put(stack.a, "third", {**body, "model_version_policy": {"newest": 1}})
    assert odd.status_code == 400 and "model_version_policy" in odd.json()["error"]["message"]
    group = _put(stack.a, "third", {**body, "config_file": "other.config"})
    assert group.status_code == 400 and "models.config" in group.json()["error"]["message"]
    extra = _put(stack.a, "third", {**body, "surprise": 1})
    assert extra.status_code == 422
    assert httpx.delete(f"{stack.a.url}/v1/admin/models/nope", headers=AUTH, timeout=60).status_code == 404
    assert stack.config.read_bytes() == before


def test_add_then_remove_on_every_replica_while_requests_run(stack: Stack) -> None:
    base = str(stack.root / "models" / "third")
    added = _put(stack.a, "third", {"base_path": base})
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["model"] == "third" and len(body["replicas"]) == 2
    assert all(v["version"] for r in body["replicas"] for v in r["versions"])
    # the call waited: every replica serves it now, and both gateways list it (B from the file)
    assert [_served(a, "third") for a in stack.addresses] == [{1}, {1}]
    assert "third" in _listed(stack.a)
    wait_for("gateway B lists the new model", lambda: "third" in _listed(stack.b))
    answer = _predict(stack.b, "third")
    assert answer.status_code == 200 and answer.json()["predictions"][0]["y"] == 4.0, answer.text
    assert 'name: "third"' in stack.config.read_text()
    again = _put(stack.b, "third", {"base_path": base})
    assert again.status_code == 409, again.text

    # remove it while requests keep coming: each one gets its answer or 404, never another error
    outcomes: list[tuple[int, Any]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                reply = client.post(f"{stack.a.url}/v1/models/third:predict", json={"records": [{"x": 2.0}]})
                body = reply.json()
                outcomes.append((reply.status_code, body.get("predictions") or body.get("error")))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    wait_for("requests flowing", lambda: len(outcomes) >= 20)
    removed = httpx.delete(f"{stack.a.url}/v1/admin/models/third", headers=AUTH, timeout=120)
    wait_for("requests after the removal", lambda: outcomes[-1][0] == 404)
    stop.set()
    for thread in threads:
        thread.join()
    assert removed.status_code == 200, removed.text
    assert [r["unloaded"] for r in removed.json()["replicas"]] == [True, True]
    assert [_served(a, "third") for a in stack.addresses] == [set(), set()]
    ok = [o for s, o in outcomes if s == 200]
    assert ok and all(o == [{"y": 4.0}] for o in ok)
    errors = {(s, o["code"]) for s, o in outcomes if s != 200}
    assert errors <= {(404, "model_not_found")}, errors
    assert "third" not in stack.config.read_text() and "third" not in _listed(stack.a)
    wait_for("gateway B drops the removed model", lambda: "third" not in _listed(stack.b))
    assert _predict(stack.a, "half").json()["predictions"][0]["y"] == 3.0  # the others are untouched
    # and it can come back under the same name
    assert _put(stack.a, "third", {"base_path": base}).status_code == 201
    assert [_served(a, "third") for a in stack.addresses] == [{1}, {1}]
    assert httpx.delete(f"{stack.a.url}/v1/admin/models/third", headers=AUTH, timeout=120).status_code == 200


def test_export_register_adds_a_published_model_once(stack: Stack) -> None:
    from export.register import RegisterFailed, register

    base = stack.root / "models" / "third"
    assert register(stack.a.url, ADMIN_TOKEN, "published", base) == "added"
    assert [_served(a, "published") for a in stack.addresses] == [{1}, {1}]
    # publishing a later version and registering again: the servers poll the folder, nothing to add
    assert register(stack.a.url, ADMIN_TOKEN, "published", base) == "served already"
    with pytest.raises(RegisterFailed, match="outside the model roots"):
        register(stack.a.url, ADMIN_TOKEN, "stray", stack.root / "outside")
    with pytest.raises(RegisterFailed, match="401"):
        register(stack.a.url, "not-the-token-0123456789", "stray", base)
    assert (
        httpx.delete(f"{stack.a.url}/v1/admin/models/published", headers=AUTH, timeout=120).status_code == 200
    )
