"""End to end: a real ``python -m modelserver`` process on loopback ports, driven through the
``tensorflow_serving`` gRPC stubs (and HTTP for status and metrics), on tiny models with exact answers. The
server runs with ``--enable_batching``, so every exact answer here also holds with batching (the lifecycle
tests run without it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    input_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from devtools.servers import ModelServerHandle, start_modelserver
from devtools.tiny_models import publish

pytestmark = pytest.mark.e2e

CHANNEL_OPTIONS = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]


class Client:
    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def predict(self, model: str, x: Any, *, version: int | None = None, label: str = "", **kw: Any) -> Any:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        if version is not None:
            request.model_spec.version.value = version
        if label:
            request.model_spec.version_label = label
        request.model_spec.signature_name = kw.get("signature", "")
        request.inputs[kw.get("input", "x")].CopyFrom(
            tf.make_tensor_proto(np.asarray(x, kw.get("dtype", np.float32)))
        )
        return self.predictions.Predict(request, timeout=30)

    def status(self, model: str) -> list[tuple[int, str, int, str]]:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        response = self.models.GetModelStatus(request, timeout=10)
        return [
            (s.version, get_model_status_pb2.ModelVersionStatus.State.Name(s.state), s.status.error_code,
             s.status.error_message)
            for s in response.model_version_status
        ]  # fmt: skip


def examples(*xs: float) -> input_pb2.Input:
    request_input = input_pb2.Input()
    for x in xs:
        request_input.example_list.examples.add().features.feature["x"].float_list.value.append(x)
    return request_input


@pytest.fixture(scope="module")
def server(tiny: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServerHandle]:
    root = tmp_path_factory.mktemp("e2e_repo")
    publish(tiny["half_plus_two"], root / "half", 1)
    publish(tiny["half_plus_three"], root / "half", 2)
    publish(tiny["multi_input"], root / "multi", 1)
    publish(tiny["strings"], root / "strings", 1)
    config = root / "models.config"
    config.write_text(
        f"""model_config_list {{
          config {{ name: "half" base_path: "{root / "half"}" model_platform: "tensorflow"
                    model_version_policy {{ all {{}} }}
                    version_labels {{ key: "stable" value: 1 }} version_labels {{ key: "canary" value: 2 }} }}
          config {{ name: "multi" base_path: "{root / "multi"}" model_platform: "tensorflow" }}
          config {{ name: "strings" base_path: "{root / "strings"}" model_platform: "tensorflow" }}
        }}"""
    )
    monitoring = root / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }')
    batching = root / "batching.config"
    batching.write_text(
        "max_batch_size { value: 16 } batch_timeout_micros { value: 20000 } "
        "max_enqueued_batches { value: 100 } num_batch_threads { value: 2 }"
    )
    flags = [
        "--enable_grpc_healthcheck_service",
        f"--monitoring_config_file={monitoring}",
        "--enable_batching=true",
        f"--batching_parameters_file={batching}",
    ]
    with start_modelserver(config, extra_flags=flags, log_path=root / "server.log") as handle:
        yield handle


@pytest.fixture(scope="module")
def client(server: ModelServerHandle) -> Client:
    return Client(server.grpc_target)


def test_predict_exact_answers(client: Client) -> None:
    assert list(client.predict("half", [1.0, 2.0, 5.0]).outputs["y"].float_val) == [
        3.5,
        4.0,
        5.5,
    ]  # latest = v2
    response = client.predict("half", [2.0, 3.0, 4.0], version=1)
    assert list(response.outputs["y"].float_val) == [3.0, 3.5, 4.0]
    assert response.model_spec.version.value == 1
    assert client.predict("half", [2.0], label="stable").model_spec.version.value == 1
    assert client.predict("half", [2.0], label="canary").model_spec.version.value == 2
    got = tf.make_ndarray(
        client.predict("strings", [b"ab", b"xyz"], input="text", dtype=object).outputs["length"]
    )
    assert got.tolist() == [2, 3]


def test_multi_input_and_output_filter(client: Client) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "multi"
    request.inputs["a"].CopyFrom(tf.make_tensor_proto(np.array([[1, 2], [3, 4]], np.float32)))
    request.inputs["b"].CopyFrom(tf.make_tensor_proto(np.array([10, 20], np.float32)))
    request.output_filter.append("sum")
    response = client.predictions.Predict(request, timeout=30)
    assert list(response.outputs) == ["sum"]
    assert list(response.outputs["sum"].float_val) == [13.0, 27.0]


def test_concurrent_requests_are_batched_with_exact_answers(
    server: ModelServerHandle, client: Client
) -> None:
    def rows_batched() -> float:
        metrics = httpx.get(f"{server.url}/monitoring/prometheus/metrics", timeout=10).text
        prefix = 'modelserver_batch_size_sum{model="half",signature="serving_default"}'
        return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(prefix))

    before = rows_batched()
    inputs = [np.arange(n, dtype=np.float32) + n for n in range(1, 17)]
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda x: client.predict("half", x, version=1), inputs))
    for x, reply in zip(inputs, replies, strict=True):
        np.testing.assert_array_equal(np.array(reply.outputs["y"].float_val, np.float32), x * 0.5 + 2)
    assert rows_batched() - before == sum(len(x) for x in inputs)  # every row went through the batcher


def test_message_larger_than_grpc_default_4mb(client: Client) -> None:
    text = b"ab" * 3_000_000  # a 6 MB request and a 6 MB reply
    reply = client.predict("strings", [text], input="text", dtype=object)
    assert tf.make_ndarray(reply.outputs["length"]).tolist() == [len(text)]
    assert reply.outputs["upper_bytes"].string_val[0] == text.upper()


def test_classify_regress_multi_inference(client: Client) -> None:
    request = classification_pb2.ClassificationRequest(input=examples(2.0))
    request.model_spec.name, request.model_spec.signature_name = "half", "classify_x_to_y"
    request.model_spec.version.value = 1
    result = client.predictions.Classify(request, timeout=30).result
    assert [(c.label, c.score) for c in result.classifications[0].classes] == [("", 3.0)]
    request = regression_pb2.RegressionRequest(input=examples(1.0, 2.0))
    request.model_spec.name, request.model_spec.signature_name = "half", "tensorflow/serving/regress"
    assert [r.value for r in client.predictions.Regress(request, timeout=30).result.regressions] == [3.5, 4.0]
    multi = inference_pb2.MultiInferenceRequest(input=examples(2.0))
    for signature, method in (("classify_x_to_y", "classify"), ("regress_x_to_y", "regress")):
        task = multi.tasks.add(method_name=f"tensorflow/serving/{method}")
        task.model_spec.name, task.model_spec.signature_name = "half", signature
    results = client.predictions.MultiInference(multi, timeout=30).results
    assert results[0].classification_result.classifications[0].classes[0].score == 4.0  # v2: 0.5*2+3
    assert results[1].regression_result.regressions[0].value == 4.0


def test_metadata_and_status(client: Client) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "half"
    response = client.predictions.GetModelMetadata(request, timeout=10)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    assert signatures.signature_def["classify_x_to_y"].method_name == "tensorflow/serving/classify"
    assert set(signatures.signature_def["serving_default"].inputs) == {"x"}
    assert response.model_spec.version.value == 2
    assert client.status("half") == [(2, "AVAILABLE", 0, ""), (1, "AVAILABLE", 0, "")]


def _call_code(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


@pytest.mark.parametrize(
    ("kwargs", "code", "text"),
    [
        ({"model": "nope"}, grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)"),
        ({"version": 9}, grpc.StatusCode.NOT_FOUND, "Servable not found for request: Specific(half, 9)"),
        ({"label": "beta"}, grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label: beta"),
        ({"signature": "nope"}, grpc.StatusCode.INVALID_ARGUMENT, 'Serving signature key "nope" not found.'),
        ({"input": "z"}, grpc.StatusCode.INVALID_ARGUMENT, "Missing but required: {x}"),
        ({"dtype": np.int64}, grpc.StatusCode.INVALID_ARGUMENT, "to be float but int64 is provided"),
    ],
)
def test_predict_error_codes(
    client: Client, kwargs: dict[str, Any], code: grpc.StatusCode, text: str
) -> None:
    model = kwargs.pop("model", "half")
    x = kwargs.pop("x", [1.0])
    got_code, details = _call_code(lambda: client.predict(model, x, **kwargs))
    assert got_code == code
    assert text in details


def test_other_error_codes(client: Client) -> None:
    request = regression_pb2.RegressionRequest()
    request.model_spec.name, request.model_spec.signature_name = "half", "regress_x_to_y"
    assert _call_code(lambda: client.predictions.Regress(request, timeout=10)) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Input is empty."
    )  # fmt: skip
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "nope"
    assert _call_code(lambda: client.models.GetModelStatus(status, timeout=10)) == (
        grpc.StatusCode.NOT_FOUND, "Could not find any versions of model nope"
    )  # fmt: skip
    status.model_spec.name = "half"
    status.model_spec.version.value = 7
    assert (
        _call_code(lambda: client.models.GetModelStatus(status, timeout=10))[0] == grpc.StatusCode.NOT_FOUND
    )


def test_health_service(server: ModelServerHandle, client: Client) -> None:
    stub = health_pb2_grpc.HealthStub(client.channel)
    for service in ("", "tensorflow.serving.PredictionService"):
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_rest_status_and_metrics_count_both_protocols(server: ModelServerHandle, client: Client) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        status = http.get("/v1/models/half/versions/1")
        assert status.status_code == 200
        assert status.json() == {
            "model_version_status": [
                {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            ]
        }
        reply = http.post("/v1/models/half/labels/stable:predict", content=json.dumps({"instances": [2.0]}))
        assert reply.json() == {"predictions": [3.0]}
        client.predict("half", [1.0], version=1)
        metrics = http.get("/monitoring/prometheus/metrics").text
    assert (
        'api="predict",model="half",protocol="rest",signature="serving_default",status="OK",version="1"'
        in metrics
    )
    assert 'protocol="grpc"' in metrics
    assert "modelserver_model_load_seconds" in metrics
