"""gateway.upstream.oip (TF Serving messages <-> OIP messages, without NumPy or TensorFlow) and the per-model protocol
setting ``GATEWAY_MODEL_PROTOCOLS``."""

from __future__ import annotations

import struct
from array import array
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.settings import Settings
from gateway.upstream import oip
from gateway.upstream.tensors import float_tensor, string_tensor, to_list
from oip_protos import grpc_predict_v2_pb2 as pb
from tfs_protos.tensorflow.core.framework import types_pb2
from tfs_protos.tensorflow_serving.apis import get_model_metadata_pb2

CONFIG = Path(__file__).resolve().parents[2] / "models" / "models.config"


def test_predict_inputs_become_raw_oip_tensors() -> None:
    request = oip.infer_request(
        "m",
        {"image": float_tensor([0.5, 1.5], [1, 2]), "text": string_tensor([b"ab", b""])},
        version=None,
        label="stable",
        signature="classify",
        output_filter=["scores"],
    )
    assert (request.model_name, request.model_version) == ("m", "stable")
    assert request.parameters["signature_name"].string_param == "classify"
    assert [(t.name, t.datatype, list(t.shape)) for t in request.inputs] == [
        ("image", "FP32", [1, 2]),
        ("text", "BYTES", [2]),
    ]
    assert request.raw_input_contents[0] == array("f", [0.5, 1.5]).tobytes()
    assert request.raw_input_contents[1] == struct.pack("<I", 2) + b"ab" + struct.pack("<I", 0)
    assert [o.name for o in request.outputs] == ["scores"]
    default = oip.infer_request("m", {}, version=3, label=None, signature="serving_default", output_filter=())
    assert default.model_version == "3" and "signature_name" not in default.parameters


def test_raw_and_typed_outputs_become_tensor_protos() -> None:
    reply = pb.ModelInferResponse(model_name="m", model_version="4")
    reply.outputs.add(name="p", datatype="FP32", shape=[2])
    reply.outputs.add(name="t", datatype="BYTES", shape=[1])
    reply.raw_output_contents.extend([array("f", [0.25, 0.75]).tobytes(), struct.pack("<I", 2) + b"hi"])
    response = oip.predict_response(reply, "m", "serving_default")
    assert response.model_spec.version.value == 4
    assert to_list(response.outputs["p"]) == [0.25, 0.75] and to_list(response.outputs["t"]) == ["hi"]
    typed = pb.ModelInferResponse(model_name="m", model_version="1")
    typed.outputs.add(name="n", datatype="INT64", shape=[2]).contents.int64_contents.extend([5, 6])
    assert to_list(oip.predict_response(typed, "m", "").outputs["n"]) == [5, 6]
    unknown = pb.ModelInferResponse(model_name="m")
    unknown.outputs.add(name="h", datatype="FP16", shape=[1])
    with pytest.raises(ValueError, match="FP16"):
        oip.predict_response(unknown, "m", "")


def test_model_metadata_becomes_one_serving_default_signature() -> None:
    reply = pb.ModelMetadataResponse(name="m", versions=["1", "3"], platform="x")
    reply.inputs.add(name="image", datatype="FP32", shape=[-1, 28, 28, 1])
    reply.outputs.add(name="probabilities", datatype="FP32", shape=[-1, 10])
    response = oip.metadata_response(reply, "m", None)
    assert response.model_spec.version.value == 3
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    default = signatures.signature_def["serving_default"]
    assert default.inputs["image"].dtype == types_pb2.DT_FLOAT
    assert [d.size for d in default.inputs["image"].tensor_shape.dim] == [-1, 28, 28, 1]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for key in list(os.environ):
        if key.startswith("GATEWAY_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("GATEWAY_MODEL_CONFIG_FILE", str(CONFIG))
    return monkeypatch


def test_protocol_setting(env: pytest.MonkeyPatch) -> None:
    assert Settings().protocol_for("fashion") == "tfserving"
    env.setenv("GATEWAY_MODEL_PROTOCOLS", '{"fashion": "oip"}')
    settings = Settings()
    assert settings.protocol_for("fashion") == "oip" and settings.protocol_for("text") == "tfserving"


@pytest.mark.parametrize("value", ['{"fashion": "grpc"}', "{not json", '{"a/b": "oip"}'])
def test_bad_protocol_setting_fails_fast(env: pytest.MonkeyPatch, value: str) -> None:
    env.setenv("GATEWAY_MODEL_PROTOCOLS", value)
    with pytest.raises(ValidationError):
        Settings()
