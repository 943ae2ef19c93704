"""gateway.upstream.contract end to end with two replicas that serve different versions, as they do while a new version
rolls out (each replica polls the model repository on its own, so one loads it before the other).

Replica A serves version 2 of ``half`` (its repository has 1 and 2, latest policy), replica B only version 1.
Both versions carry the export's ``contract`` signature. The gateway takes turns over A and B, so the
metadata that names a version and the contract call for that version land on different replicas: the
contract must still be read from a replica that serves the version, never answered 404."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from devtools.procs import LOOPBACK, ServerProcess, free_port
from devtools.servers import Gateway, modelserver_process, start_gateway
from devtools.tiny_models import half_plus_two

pytestmark = pytest.mark.e2e
CONTRACT: dict[str, Any] = {
    "model": "half",
    "task": "regression",
    "labels": [],
    "inputs": {"x": {"dtype": "float32", "shape": [-1], "kind": "numeric", "missing": "NaN"}},
    "predict": {"signature": "serving_default", "outputs": ["y"]},
}
ANSWER = {1: 3.0, 2: 4.0}  # y = 0.5 * 2 + b


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("contract")
    half_plus_two(root / "a" / "half" / "1", contract=CONTRACT)
    half_plus_two(root / "a" / "half" / "2", b=3.0, contract=CONTRACT)
    shutil.copytree(root / "a" / "half" / "1", root / "b" / "half" / "1")
    ports = [free_port(), free_port()]

    def replica(i: int) -> ServerProcess:
        name = "ab"[i]
        return modelserver_process(
            grpc_port=ports[i],
            rest_port=None,
            log_path=root / f"replica-{name}.log",
            model_name="half",
            model_base_path=root / name / "half",
        ).start()

    with ThreadPoolExecutor(2) as pool:  # both start at once: each loads TensorFlow
        replicas = list(pool.map(replica, range(2)))
    addresses = [f"{LOOPBACK}:{p}" for p in ports]
    env = {
        "GATEWAY_MODEL_CONFIG_FILE": "",
        "GATEWAY_MODELS": "half",
        "GATEWAY_MODEL_REPLICAS": json.dumps({"half": addresses}),
        "GATEWAY_DEFAULT_MODEL_SERVER": addresses[0],
    }
    gw = None
    try:
        gw = start_gateway(env, root / "gateway.log")
        yield gw
    finally:
        if gw is not None:
            gw.process.stop()
        for r in replicas:
            r.stop()


def test_a_version_served_by_one_replica_only_gets_its_contract(gateway: Gateway) -> None:
    answered = []
    for _ in range(6):
        reply = httpx.post(
            f"{gateway.url}/v1/models/half:predict", json={"records": [{"x": 2.0}]}, timeout=60
        )
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["predictions"][0]["y"] == ANSWER[body["version"]]
        answered.append(body["version"])
    assert set(answered) == {1, 2}  # both replicas answered, each with its own version
    detail = httpx.get(f"{gateway.url}/v1/models/half", timeout=60)
    assert detail.status_code == 200, detail.text
    assert detail.json()["contract_source"] == "signature"  # read from the contract signature, not derived
