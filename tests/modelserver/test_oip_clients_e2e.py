"""Proof with clients nobody here wrote: NVIDIA's tritonclient (HTTP with binary data on and off, gRPC)
and the KServe SDK's v2 REST (JSON and binary) and gRPC clients drive a real modelserver serving the three
exported models (the root ``model_repo`` fixture), and every answer must equal TF Serving's Predict API's
answer for the same inputs on the same server. The clients run in the OIP clients venv
(``tests/support/oip_venv``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from devtools.servers import ModelServerHandle, start_modelserver
from export.data import HOUSING_FEATURES
from tests.modelserver.test_server_e2e import Client
from tests.support.oip_clients import decode_array, encode_array
from tests.support.oip_venv import oip_python, run_client

pytestmark = pytest.mark.e2e

HOUSING = list(HOUSING_FEATURES)
HOUSES = [
    [-122.23, 37.88, 41.0, 880.0, 129.0, 322.0, 126.0, 8.3252],
    [-118.25, 34.05, 20.0, 2000.0, 400.0, 1100.0, 380.0, 3.1],
]


def _inputs() -> dict[str, dict[str, np.ndarray]]:
    images = np.random.default_rng(7).random((4, 28, 28, 1), dtype=np.float32)
    texts = np.array(
        [b"see you at lunch tomorrow", b"WINNER! claim your free prize now", "caf\u00e9 at 5?".encode()],
        dtype=object,
    )
    houses = np.array(HOUSES, np.float32)
    return {
        "fashion": {"image": images},
        "text": {"text": texts},
        "housing": {name: houses[:, i].copy() for i, name in enumerate(HOUSING)},
    }


INPUTS = _inputs()
DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(object): "BYTES"}


@pytest.fixture(scope="module")
def server(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServerHandle]:
    oip_python()  # skip before starting anything when the clients venv is missing
    log = tmp_path_factory.mktemp("oip_clients") / "server.log"
    with start_modelserver(model_repo / "models.config", log_path=log) as handle:
        yield handle


@pytest.fixture(scope="module")
def expected(server: ModelServerHandle) -> dict[str, dict[str, np.ndarray]]:
    """TF Serving's Predict answers (gRPC, serving_default) for INPUTS."""
    client = Client(server.grpc_target)
    answers = {}
    for model, inputs in INPUTS.items():
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        for name, value in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        reply = client.predictions.Predict(request, timeout=60)
        answers[model] = {name: tf.make_ndarray(proto) for name, proto in reply.outputs.items()}
    return answers


def _infer_call(model: str, binary: bool, outputs: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    inputs = [
        {"name": name, "datatype": DATATYPES[value.dtype], "array": encode_array(value)}
        for name, value in INPUTS[model].items()
    ]
    return {
        "op": "infer",
        "model": model,
        "inputs": inputs,
        "binary": binary,
        "outputs": outputs or [],
        **extra,
    }


def _addresses(server: ModelServerHandle) -> tuple[str, str]:
    return server.url.removeprefix("http://"), server.grpc_target


def _check_answers(results: list[dict[str, Any]], expected: dict[str, dict[str, np.ndarray]]) -> None:
    for model, result in zip(INPUTS, results, strict=True):
        assert result["ok"], f"{model}: {result}"
        outputs = {name: decode_array(doc) for name, doc in result["value"]["outputs"].items()}
        assert set(outputs) == set(expected[model]), model
        for name, array in outputs.items():
            np.testing.assert_allclose(
                array, expected[model][name], rtol=1e-6, atol=1e-7, err_msg=f"{model}.{name}"
            )
        assert result["value"]["model_version"] in ("1", None)  # KServe's REST reader drops the version


@pytest.mark.parametrize(
    ("client", "binary"),
    [
        ("triton-http", False),
        ("triton-http", True),
        ("triton-grpc", True),
        ("kserve-rest", False),
        ("kserve-rest", True),
        ("kserve-grpc", True),
    ],
)
def test_three_models_answer_as_tf_serving(
    server: ModelServerHandle, expected: dict[str, dict[str, np.ndarray]], client: str, binary: bool
) -> None:
    health = [{"op": "live"}, {"op": "ready"}, {"op": "model_ready", "model": "fashion"}]
    image = np.zeros((1, 28, 28, 1))  # FP64: the model takes FP32
    wrong = {"op": "infer", "model": "fashion", "binary": binary,
             "inputs": [{"name": "image", "datatype": "FP64", "array": encode_array(image)}]}  # fmt: skip
    unknown = {**_infer_call("fashion", binary), "model": "nope"}
    calls = [_infer_call(model, binary) for model in INPUTS] + health + [unknown, wrong]
    results = run_client(client, *_addresses(server), calls)
    _check_answers(results[: len(INPUTS)], expected)
    assert [r.get("value") for r in results[len(INPUTS) : -2]] == [True, True, True], results[len(INPUTS) :]
    # the protocol's errors as each client reports them: 404/400 over HTTP, NOT_FOUND/INVALID_ARGUMENT over gRPC
    codes = ("StatusCode.NOT_FOUND", "StatusCode.INVALID_ARGUMENT") if "grpc" in client else ("404", "400")
    assert [(r["ok"], r.get("status")) for r in results[-2:]] == [(False, codes[0]), (False, codes[1])], (
        results
    )


@pytest.mark.parametrize("client", ["triton-http", "triton-grpc"])
def test_triton_metadata_versions_outputs_and_signatures(
    server: ModelServerHandle, expected: dict[str, dict[str, np.ndarray]], client: str
) -> None:
    calls = [
        {"op": "server_metadata"},
        {"op": "metadata", "model": "fashion"},
        {"op": "metadata", "model": "housing", "version": "1"},
        _infer_call("housing", True, outputs=["median_house_value"], version="1"),
        {"op": "infer", "model": "fashion:contract", "inputs": []},
        {"op": "infer", "model": "text", "inputs": [], "parameters": {"signature_name": "contract"}},
        {"op": "model_ready", "model": "fashion", "version": "3"},
    ]
    server_meta, fashion, housing, filtered, contract, by_parameter, not_ready = run_client(
        client, *_addresses(server), calls
    )
    assert "binary_tensor_data" in server_meta["value"]["extensions"]
    # (gRPC's JSON form prints int64 shapes as strings)
    inputs = [(i["name"], i["datatype"], [int(d) for d in i["shape"]]) for i in fashion["value"]["inputs"]]
    assert inputs == [("image", "FP32", [-1, 28, 28, 1])]
    assert {o["name"] for o in housing["value"]["outputs"]} == set(expected["housing"])
    assert housing["value"]["versions"] == ["1"] and housing["value"]["platform"] == "tensorflow_savedmodel"
    assert list(filtered["value"]["outputs"]) == ["median_house_value"]
    np.testing.assert_allclose(
        decode_array(filtered["value"]["outputs"]["median_house_value"]),
        expected["housing"]["median_house_value"],
    )
    for reply, model in ((contract, "fashion"), (by_parameter, "text")):
        (document,) = decode_array(reply["value"]["outputs"]["contract"]).ravel().tolist()
        assert f'"model": "{model}"' in document.decode() or f'"model":"{model}"' in document.decode()
    # a version never seen: not ready (HTTP 404) for tritonclient.http, NOT_FOUND for tritonclient.grpc
    expected_not_ready = {"ok": True, "value": False}
    if client == "triton-grpc":
        expected_not_ready = {"ok": False, "status": "StatusCode.NOT_FOUND"}
    assert {k: not_ready[k] for k in expected_not_ready} == expected_not_ready, not_ready
