"""The Open Inference Protocol (KServe v2) on a real modelserver with tiny models of known answers (the
server of ``test_server_e2e``: batching and monitoring on, ``half`` versions 1 and 2 labelled stable and
canary, ``multi``, ``strings``): REST under ``/v2`` on the TF Serving REST port and
``inference.GRPCInferenceService`` on the gRPC port - health, metadata, versions and labels, signatures,
requested outputs, the binary data extension, and every kind of bad input answered with 400/404
(INVALID_ARGUMENT/NOT_FOUND), never a 5xx."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from devtools.servers import ModelServerHandle
from oip_protos import grpc_predict_v2_pb2 as pb
from oip_protos import grpc_predict_v2_pb2_grpc as pb_grpc
from tests.modelserver import test_server_e2e

pytestmark = pytest.mark.e2e

HEADER = "Inference-Header-Content-Length"
server = test_server_e2e.server  # the same tiny-model server fixture, one process per module


@pytest.fixture(scope="module")
def http(server: ModelServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def stub(server: ModelServerHandle) -> Iterator[pb_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(server.grpc_target) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def infer(http: httpx.Client, model: str, inputs: list[dict[str, Any]], **extra: Any) -> httpx.Response:
    return http.post(f"/v2/models/{model}/infer", json={"inputs": inputs, **extra})


def fp32(name: str, values: list[float], shape: list[int] | None = None) -> dict[str, Any]:
    return {"name": name, "datatype": "FP32", "shape": shape or [len(values)], "data": values}


def binary_body(document: dict[str, Any], *chunks: bytes) -> tuple[bytes, dict[str, str]]:
    header = json.dumps(document).encode()
    return header + b"".join(chunks), {HEADER: str(len(header)), "Content-Type": "application/octet-stream"}


def split_reply(response: httpx.Response) -> tuple[dict[str, Any], bytes]:
    length = int(response.headers.get(HEADER, len(response.content)))
    return json.loads(response.content[:length]), response.content[length:]


def length_prefixed(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


# ---- health, metadata, versions -----------------------------------------------------------------------
def test_health_and_server_metadata(http: httpx.Client) -> None:
    assert http.get("/v2/health/live").json() == {"live": True}
    assert http.get("/v2/health/ready").json() == {"ready": True}
    metadata = http.get("/v2").json()
    assert metadata["name"] and {"binary_tensor_data", "version_labels"} <= set(metadata["extensions"])
    assert http.get("/v1/models/half/versions/1").status_code == 200  # TF Serving's API is still there


def test_model_metadata_from_the_signature_def(http: httpx.Client) -> None:
    assert http.get("/v2/models/multi").json() == {
        "name": "multi",
        "versions": ["1"],
        "platform": "tensorflow_savedmodel",
        "inputs": [
            {"name": "a", "datatype": "FP32", "shape": [-1, 2]},
            {"name": "b", "datatype": "FP32", "shape": [-1]},
        ],
        "outputs": [
            {"name": "scaled", "datatype": "FP32", "shape": [-1, 2]},
            {"name": "sum", "datatype": "FP32", "shape": [-1]},
        ],
    }
    strings = http.get("/v2/models/strings").json()
    assert strings["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert {o["name"]: o["datatype"] for o in strings["outputs"]} == {
        "length": "INT32",
        "upper_bytes": "BYTES",
    }
    assert http.get("/v2/models/half").json()["versions"] == ["1", "2"]
    regress = http.get("/v2/models/half:regress_x_to_y/versions/stable").json()
    assert regress["name"] == "half:regress_x_to_y"
    assert regress["inputs"] == [{"name": "inputs", "datatype": "BYTES", "shape": [-1]}]


@pytest.mark.parametrize(
    ("path", "status", "ready"),
    [
        ("half", 200, True),
        ("half/versions/2", 200, True),
        ("half/versions/stable", 200, True),
        ("half/versions/7", 404, None),
    ],
)
def test_model_ready(http: httpx.Client, path: str, status: int, ready: bool | None) -> None:
    reply = http.get(f"/v2/models/{path}/ready")
    assert (reply.status_code, reply.json().get("ready")) == (status, ready)


@pytest.mark.parametrize(
    ("version", "answer", "resolved"),
    [
        ("", [2.5, 3.0], "2"),
        ("1", [2.5 - 1, 3.0 - 1], "1"),
        ("stable", [1.5, 2.0], "1"),
        ("canary", [2.5, 3.0], "2"),
    ],
)
def test_versions_and_labels(http: httpx.Client, version: str, answer: list[float], resolved: str) -> None:
    path = f"half/versions/{version}" if version else "half"
    reply = infer(http, path, [fp32("x", [-1.0, 0.0])], id="req-7")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("half", resolved, "req-7")
    assert body["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [2], "data": answer}]


# ---- inference --------------------------------------------------------------------------------------------
def test_requested_outputs_and_nested_data(http: httpx.Client) -> None:
    a = {"name": "a", "datatype": "FP32", "shape": [2, 2], "data": [[1, 2], [3, 4]]}
    reply = infer(http, "multi", [a, fp32("b", [10, 100])], outputs=[{"name": "sum"}])
    assert reply.json()["outputs"] == [
        {"name": "sum", "datatype": "FP32", "shape": [2], "data": [13.0, 107.0]}
    ]


def test_binary_inputs_and_per_output_binary(http: httpx.Client) -> None:
    a = np.array([[1, 2], [3, 4]], np.float32)
    document = {
        "inputs": [
            {"name": "a", "datatype": "FP32", "shape": [2, 2], "parameters": {"binary_data_size": a.nbytes}},
            fp32("b", [10, 100]),
        ],
        "outputs": [{"name": "scaled", "parameters": {"binary_data": True}}, {"name": "sum"}],
    }
    body, headers = binary_body(document, a.tobytes())
    reply = http.post("/v2/models/multi/infer", content=body, headers=headers)
    assert reply.status_code == 200, reply.text
    header, raw = split_reply(reply)
    scaled, total = header["outputs"]
    assert scaled == {
        "name": "scaled",
        "datatype": "FP32",
        "shape": [2, 2],
        "parameters": {"binary_data_size": 16},
    }
    np.testing.assert_array_equal(np.frombuffer(raw, "<f4"), [10, 20, 300, 400])
    assert total["data"] == [13.0, 107.0]


def test_binary_data_output_for_all_outputs(http: httpx.Client) -> None:
    reply = infer(
        http,
        "strings",
        [{"name": "text", "datatype": "BYTES", "shape": [2], "data": ["ab", "xyz"]}],
        parameters={"binary_data_output": True},
    )
    header, raw = split_reply(reply)
    sizes = [o["parameters"]["binary_data_size"] for o in header["outputs"]]
    assert [o["name"] for o in header["outputs"]] == ["length", "upper_bytes"]
    assert raw[: sizes[0]] == np.array([2, 3], "<i4").tobytes()
    assert raw[sizes[0] :] == length_prefixed(b"AB", b"XYZ")


def test_bytes_inputs_utf8_base64_and_length_prefixed(http: httpx.Client) -> None:
    texts = ["héllo", "wörld"]
    plain = infer(http, "strings", [{"name": "text", "datatype": "BYTES", "shape": [2], "data": texts}])
    assert plain.json()["outputs"][1]["data"] == ["HéLLO", "WöRLD"]  # tf.strings.upper is ASCII-only
    encoded = [base64.b64encode(t.encode()).decode() for t in texts]
    b64 = {
        "name": "text",
        "datatype": "BYTES",
        "shape": [2],
        "data": encoded,
        "parameters": {"content_type": "base64"},
    }
    assert infer(http, "strings", [b64]).json() == plain.json()
    raw = length_prefixed(*(t.encode() for t in texts))
    document = {
        "inputs": [
            {"name": "text", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": len(raw)}}
        ]
    }
    body, headers = binary_body(document, raw)
    assert http.post("/v2/models/strings/infer", content=body, headers=headers).json() == plain.json()


def test_non_utf8_bytes_output_is_base64(http: httpx.Client) -> None:
    raw = length_prefixed(b"\xff\xfe")
    document = {
        "inputs": [
            {"name": "text", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(raw)}}
        ],
        "outputs": [{"name": "upper_bytes"}],
    }
    body, headers = binary_body(document, raw)
    output = http.post("/v2/models/strings/infer", content=body, headers=headers).json()["outputs"][0]
    assert output["parameters"] == {"content_type": "base64"}
    assert base64.b64decode(output["data"][0]) == b"\xff\xfe"


def test_signature_by_name_suffix_or_parameter(http: httpx.Client) -> None:
    import tensorflow as tf

    example = tf.train.Example()
    example.features.feature["x"].float_list.value.append(4.0)
    serialized = base64.b64encode(example.SerializeToString()).decode()
    tensor = {
        "name": "inputs",
        "datatype": "BYTES",
        "shape": [1],
        "data": [serialized],
        "parameters": {"content_type": "base64"},
    }
    by_name = infer(http, "half:regress_x_to_y/versions/1", [tensor])
    assert by_name.status_code == 200, by_name.text
    assert by_name.json()["outputs"][0]["data"] == [4.0]  # 0.5 * 4 + 2
    by_parameter = infer(http, "half/versions/1", [tensor], parameters={"signature_name": "regress_x_to_y"})
    assert by_parameter.json()["outputs"] == by_name.json()["outputs"]
    assert by_parameter.json()["model_name"] == "half"


def test_gzip_request_body(http: httpx.Client) -> None:
    import gzip

    body = gzip.compress(json.dumps({"inputs": [fp32("x", [2.0])]}).encode())
    reply = http.post("/v2/models/half/versions/1/infer", content=body, headers={"Content-Encoding": "gzip"})
    assert reply.json()["outputs"][0]["data"] == [3.0]


def test_gzip_bomb_is_413_while_it_inflates(http: httpx.Client) -> None:
    import gzip

    bomb = gzip.compress(b" " * (65 << 20), compresslevel=9)  # 65 MiB inflated, over the 64 MiB default
    reply = http.post("/v2/models/half/infer", content=bomb, headers={"Content-Encoding": "gzip"})
    assert reply.status_code == 413
    assert "--rest_api_max_body_bytes" in reply.json()["error"]


def test_grpc_corrupt_message_is_invalid_argument(server: ModelServerHandle) -> None:
    with grpc.insecure_channel(server.grpc_target) as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as caught:
            call(b"\xff\xff\xff", timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "inference.ModelInferRequest" in (caught.value.details() or "")


# ---- bad input --------------------------------------------------------------------------------------------
BAD_JSON: list[tuple[str, str, Any, int, str]] = [
    ("unknown model", "nope", {"inputs": []}, 404, "not found"),
    ("unknown version", "half/versions/9", {"inputs": [fp32("x", [1.0])]}, 404, "no available version 9"),
    ("unknown label", "half/versions/beta", {"inputs": [fp32("x", [1.0])]}, 404, "no version label 'beta'"),
    ("unknown signature", "half:nope", {"inputs": [fp32("x", [1.0])]}, 404, "no signature 'nope'"),
    (
        "wrong datatype",
        "half",
        {"inputs": [{**fp32("x", [1.0]), "datatype": "INT64", "data": [1]}]},
        400,
        "expects FP32",
    ),
    (
        "unknown datatype",
        "half",
        {"inputs": [{**fp32("x", [1.0]), "datatype": "FP8"}]},
        400,
        "unsupported datatype",
    ),
    ("shape/data mismatch", "half", {"inputs": [fp32("x", [1.0, 2.0], [3])]}, 400, "needs 3 elements"),
    ("negative dim", "half", {"inputs": [fp32("x", [1.0], [-1])]}, 400, "negative dimension"),
    (
        "strings as FP32",
        "half",
        {"inputs": [{**fp32("x", [1.0]), "data": ["a"]}]},
        400,
        "must be JSON numbers",
    ),
    (
        "float into INT32",
        "strings",
        {"inputs": [{"name": "text", "datatype": "INT32", "shape": [1], "data": [1.5]}]},
        400,
        "must be JSON integers",
    ),
    (
        "ragged data",
        "multi",
        {
            "inputs": [
                {"name": "a", "datatype": "FP32", "shape": [2, 2], "data": [[1, 2], [3]]},
                fp32("b", [1, 2]),
            ]
        },
        400,
        "regular",
    ),
    ("unknown input", "half", {"inputs": [fp32("x", [1.0]), fp32("z", [1.0])]}, 400, "Sent extra: {z}"),
    ("missing input", "multi", {"inputs": [fp32("b", [1.0])]}, 400, "Missing but required: {a}"),
    (
        "unknown output",
        "half",
        {"inputs": [fp32("x", [1.0])], "outputs": [{"name": "nope"}]},
        400,
        "output tensor alias not found",
    ),
    (
        "bad base64",
        "strings",
        {
            "inputs": [
                {
                    "name": "text",
                    "datatype": "BYTES",
                    "shape": [1],
                    "data": ["@@@"],
                    "parameters": {"content_type": "base64"},
                }
            ]
        },
        400,
        "not valid base64",
    ),
    (
        "number as BYTES",
        "strings",
        {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [5]}]},
        400,
        "must be JSON strings",
    ),
    ("no inputs key", "half", {"input": []}, 400, "needs 'inputs'"),
    ("not an object", "half", [1, 2], 400, "must be a JSON object"),
    (
        "shared memory",
        "half",
        {"inputs": [{**fp32("x", [1.0]), "parameters": {"shared_memory_region": "r"}}]},
        400,
        "shared memory",
    ),
    (
        "shapes the graph refuses",
        "multi",
        {
            "inputs": [
                {"name": "a", "datatype": "FP32", "shape": [2, 2], "data": [1, 2, 3, 4]},
                fp32("b", [1.0, 2.0, 3.0]),
            ]
        },
        400,
        "",
    ),
]


@pytest.mark.parametrize(
    ("case", "path", "body", "status", "message"), BAD_JSON, ids=[c[0] for c in BAD_JSON]
)
def test_bad_json_requests(
    http: httpx.Client, case: str, path: str, body: Any, status: int, message: str
) -> None:
    reply = http.post(f"/v2/models/{path}/infer", json=body)
    assert reply.status_code == status, reply.text
    assert set(reply.json()) == {"error"} and message in reply.json()["error"]


BAD_BINARY: list[tuple[str, str, bytes, str]] = [
    ("header longer than body", "999", b"", "body has only"),
    ("header not a number", "ab", b"", "must be a number"),
    ("header too short", "-", b"", "must be a number"),
    ("binary size past the end", "", b"\x00" * 4, "runs past the end"),
    ("bytes left over", "", b"\x00" * 12, "not claimed"),
]


@pytest.mark.parametrize(("case", "length", "extra", "message"), BAD_BINARY, ids=[c[0] for c in BAD_BINARY])
def test_binary_header_that_lies(
    http: httpx.Client, case: str, length: str, extra: bytes, message: str
) -> None:
    document = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}}]
    }
    body, headers = binary_body(document, extra)
    headers[HEADER] = length or headers[HEADER]
    reply = http.post("/v2/models/half/infer", content=body, headers=headers)
    assert reply.status_code == 400 and message in reply.json()["error"], reply.text


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (struct.pack("<I", 50) + b"ab", "claims 50 bytes"),
        (b"\x01\x00", "shape declares 1 BYTES elements but 2 bytes hold at most 0"),
        (length_prefixed(b"ab") + b"x", "1 bytes left"),
    ],
)
def test_bad_length_prefixed_bytes(http: httpx.Client, raw: bytes, message: str) -> None:
    document = {
        "inputs": [
            {"name": "text", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(raw)}}
        ]
    }
    body, headers = binary_body(document, raw)
    reply = http.post("/v2/models/strings/infer", content=body, headers=headers)
    assert reply.status_code == 400 and message in reply.json()["error"], reply.text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v2/models/half/infer", 405),
        ("POST", "/v2/models/half", 405),
        ("GET", "/v2/nope", 404),
        ("GET", "/v2/models/nope", 404),
        ("GET", "/v2/models/nope/ready", 404),
        ("GET", "/v2/models/half:zz", 404),
    ],
)
def test_other_paths(http: httpx.Client, method: str, path: str, status: int) -> None:
    reply = http.request(method, path)
    assert reply.status_code == status and "error" in reply.json()


# ---- gRPC -------------------------------------------------------------------------------------------------
def test_grpc_health_metadata_and_raw_infer(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name="half", version="canary"), timeout=10).ready
    assert "binary_tensor_data" in stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=10).extensions
    metadata = stub.ModelMetadata(pb.ModelMetadataRequest(name="multi"), timeout=10)
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [
        ("a", "FP32", [-1, 2]),
        ("b", "FP32", [-1]),
    ]
    request = pb.ModelInferRequest(model_name="multi", id="g1")
    request.inputs.add(name="a", datatype="FP32", shape=[1, 2])
    request.inputs.add(name="b", datatype="FP32", shape=[1])
    request.raw_input_contents.extend([np.array([1, 2], "<f4").tobytes(), np.array([3], "<f4").tobytes()])
    request.outputs.add(name="scaled")
    reply = stub.ModelInfer(request, timeout=10)
    assert (reply.model_version, reply.id, [o.name for o in reply.outputs]) == ("1", "g1", ["scaled"])
    np.testing.assert_array_equal(np.frombuffer(reply.raw_output_contents[0], "<f4"), [3, 6])


def test_grpc_typed_contents_and_bytes(stub: pb_grpc.GRPCInferenceServiceStub) -> None:
    request = pb.ModelInferRequest(model_name="strings")
    request.inputs.add(name="text", datatype="BYTES", shape=[2]).contents.bytes_contents.extend([b"a", b"bc"])
    reply = stub.ModelInfer(request, timeout=10)
    assert [o.datatype for o in reply.outputs] == ["INT32", "BYTES"]
    assert np.frombuffer(reply.raw_output_contents[0], "<i4").tolist() == [1, 2]
    assert reply.raw_output_contents[1] == length_prefixed(b"A", b"BC")
    request = pb.ModelInferRequest(model_name="half", model_version="stable")
    request.inputs.add(name="x", datatype="FP32", shape=[1]).contents.fp32_contents.append(2.0)
    assert np.frombuffer(stub.ModelInfer(request, timeout=10).raw_output_contents[0], "<f4").tolist() == [3.0]


def _grpc_request(**changes: Any) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(
        model_name=changes.pop("model", "half"), model_version=changes.pop("version", "")
    )
    tensor = request.inputs.add(
        name="x", datatype=changes.pop("datatype", "FP32"), shape=changes.pop("shape", [2])
    )
    raw = changes.pop("raw", None)
    if raw is not None:
        request.raw_input_contents.extend(raw)
    else:
        tensor.contents.fp32_contents.extend(changes.pop("values", [1.0, 2.0]))
    for name in changes.pop("outputs", []):
        request.outputs.add(name=name)
    return request


@pytest.mark.parametrize(
    ("case", "request_args", "code"),
    [
        ("unknown model", {"model": "nope"}, grpc.StatusCode.NOT_FOUND),
        ("unknown version", {"version": "9"}, grpc.StatusCode.NOT_FOUND),
        ("unknown label", {"version": "beta"}, grpc.StatusCode.NOT_FOUND),
        ("wrong datatype", {"datatype": "FP64", "raw": [b"\x00" * 16]}, grpc.StatusCode.INVALID_ARGUMENT),
        ("contents count", {"shape": [3]}, grpc.StatusCode.INVALID_ARGUMENT),
        ("raw length", {"raw": [b"\x00" * 7]}, grpc.StatusCode.INVALID_ARGUMENT),
        ("raw count", {"raw": [b"\x00" * 8, b"\x00" * 8]}, grpc.StatusCode.INVALID_ARGUMENT),
        ("unknown output", {"outputs": ["nope"]}, grpc.StatusCode.INVALID_ARGUMENT),
        ("fp16 in contents", {"datatype": "FP16"}, grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_grpc_error_codes(
    stub: pb_grpc.GRPCInferenceServiceStub, case: str, request_args: dict[str, Any], code: grpc.StatusCode
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(_grpc_request(**request_args), timeout=10)
    assert caught.value.code() == code, caught.value.details()
    with pytest.raises(grpc.RpcError) as missing:
        stub.ModelMetadata(pb.ModelMetadataRequest(name="nope"), timeout=10)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_grpc_repository_extension_is_unimplemented_with_a_reason(
    stub: pb_grpc.GRPCInferenceServiceStub,
) -> None:
    for call, request in (
        (stub.RepositoryModelLoad, pb.RepositoryModelLoadRequest(model_name="half")),
        (stub.RepositoryModelUnload, pb.RepositoryModelUnloadRequest(model_name="half")),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            call(request, timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "models are loaded from the model config" in (refused.value.details() or "")


def test_metrics_count_oip_like_tf_serving(
    http: httpx.Client, stub: pb_grpc.GRPCInferenceServiceStub
) -> None:
    infer(http, "half", [fp32("x", [1.0])])
    stub.ModelInfer(_grpc_request(), timeout=10)
    lines = http.get("/monitoring/prometheus/metrics").text.splitlines()
    for protocol in ("oip_rest", "oip_grpc"):
        assert any(
            line.startswith("modelserver_requests_total{")
            and all(
                f'{k}="{v}"' in line
                for k, v in (("model", "half"), ("api", "predict"), ("protocol", protocol), ("status", "OK"))
            )
            for line in lines
        ), protocol
