"""gateway.upstream.client's failover across replicas, against two in-process fake model servers
(tests.support.fake_modelserver): a hung replica costs one short attempt, then leaves the rotation (passive
health) and comes back when it answers again (active health); a replica without the version yet is passed
over. No clock decides an outcome: held calls outlive every deadline, waits are conditions.

(The same across real network namespaces and real model servers: test_netns_e2e.py.)"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.settings import Settings
from tests.support.fake_modelserver import FakeModelServer

RECORD = {"records": [{"x": 2.0}]}


@pytest.fixture
def pair() -> Iterator[tuple[FakeModelServer, FakeModelServer]]:
    with FakeModelServer({"half": {1: "AVAILABLE"}}) as a, FakeModelServer({"half": {1: "AVAILABLE"}}) as b:
        yield a, b


@pytest.fixture
def gateway(
    pair: tuple[FakeModelServer, FakeModelServer], tmp_path: Path
) -> Iterator[Callable[..., TestClient]]:
    (tmp_path / "half" / "1").mkdir(parents=True)
    config = tmp_path / "models.config"
    config.write_text(f'model_config_list {{ config {{ name: "half" base_path: "{tmp_path}/half" }} }}')
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        settings = Settings(
            model_config_file=config,
            model_replicas=json.dumps({"half": [s.address for s in pair]}),  # type: ignore[arg-type]
            default_model_server=pair[0].address,
            retry_backoff_seconds=0,
            state_refresh_seconds=3600,
            **overrides,
        )
        client = TestClient(create_app(settings))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _in_rotation(client: TestClient, address: str) -> float | None:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("gateway_replica_in_rotation{") and f'server="{address}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def _until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30  # a hang guard
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_hung_replica_costs_one_short_attempt_then_leaves_the_rotation(
    gateway: Callable[..., TestClient], pair: tuple[FakeModelServer, FakeModelServer]
) -> None:
    a, b = pair
    client = gateway(failover_timeout_seconds=0.5, eject_seconds=3600, health_interval_seconds=0)
    assert client.post("/v1/models/half:predict", json=RECORD).status_code == 200  # the contract, once
    gate = a.hold("Predict")
    try:
        before = a.calls["Predict"], b.calls["Predict"]
        replies = [client.post("/v1/models/half:predict", json=RECORD) for _ in range(6)]
        assert [r.status_code for r in replies] == [200] * 6, [r.text for r in replies]
        # one attempt went to the hung replica, cut short and answered by b; then it was out of rotation
        assert a.calls["Predict"] - before[0] == 1 and b.calls["Predict"] - before[1] == 6
        assert _in_rotation(client, a.address) == 0.0
    finally:
        gate.set()


def test_a_replica_back_from_a_hang_returns_to_the_rotation_through_the_health_probe(
    gateway: Callable[..., TestClient], pair: tuple[FakeModelServer, FakeModelServer]
) -> None:
    a, _ = pair
    client = gateway(failover_timeout_seconds=0.5, eject_seconds=3600, health_interval_seconds=0.1)
    gate = a.hold("Predict")
    try:
        replies = [client.post("/v1/models/half:predict", json=RECORD) for _ in range(4)]
        assert [r.status_code for r in replies] == [200] * 4
        _until("a out of rotation", lambda: _in_rotation(client, a.address) == 0.0)
    finally:
        gate.set()
    _until("a back in rotation", lambda: _in_rotation(client, a.address) == 1.0)  # the probe, not a call
    served = a.calls["Predict"]
    _until(
        "a answers again",
        lambda: (
            client.post("/v1/models/half:predict", json=RECORD).status_code == 200
            and a.calls["Predict"] > served
        ),
    )


def test_a_replica_that_stops_answering_is_taken_out_by_the_health_probe(
    gateway: Callable[..., TestClient], pair: tuple[FakeModelServer, FakeModelServer]
) -> None:
    a, b = pair
    client = gateway(health_interval_seconds=0.1)
    _until("both probed", lambda: _in_rotation(client, a.address) == 1.0 == _in_rotation(client, b.address))
    a.stop()  # connection refused: the probe fails without any request
    _until("a out of rotation", lambda: _in_rotation(client, a.address) == 0.0)
    replies = [client.post("/v1/models/half:predict", json=RECORD) for _ in range(4)]
    assert [r.status_code for r in replies] == [200] * 4
    assert b.calls["Predict"] >= 4


def test_a_replica_without_the_version_yet_is_passed_over(
    gateway: Callable[..., TestClient], pair: tuple[FakeModelServer, FakeModelServer]
) -> None:
    a, b = pair
    b.versions["half"][2] = "AVAILABLE"  # a is still converging: it has only version 1
    client = gateway(health_interval_seconds=0)
    replies = [client.post("/v1/models/half:predict?version=2", json=RECORD) for _ in range(4)]
    assert [r.status_code for r in replies] == [200] * 4, [r.text for r in replies]
    assert {r.json()["version"] for r in replies} == {2}
    assert _in_rotation(client, a.address) in (None, 1.0)  # NOT_FOUND ejects nothing


def test_calls_take_turns_over_the_replicas_in_rotation(
    gateway: Callable[..., TestClient], pair: tuple[FakeModelServer, FakeModelServer]
) -> None:
    a, b = pair
    client = gateway(health_interval_seconds=0)
    assert client.post("/v1/models/half:predict", json=RECORD).status_code == 200
    before = a.calls["Predict"], b.calls["Predict"]
    for _ in range(6):
        assert client.post("/v1/models/half:predict", json=RECORD).status_code == 200
    assert (a.calls["Predict"] - before[0], b.calls["Predict"] - before[1]) == (3, 3)
