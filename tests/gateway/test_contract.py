"""gateway.upstream.contract: the contract derived from signatures when a model has no ``contract`` signature, and
the store's answer when a hot swap retires the version "latest" named."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import pytest

from gateway.errors import GatewayError, UpstreamError
from gateway.upstream.contract import ContractStore, ModelInfo, SignatureInfo, TensorSpec, derive_contract
from gateway.upstream.tensors import string_tensor
from tfs_protos.tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2


def _sig(inputs: dict[str, TensorSpec], outputs: dict[str, TensorSpec] | None = None) -> SignatureInfo:
    return SignatureInfo(
        "tensorflow/serving/predict", inputs, outputs or {"y": TensorSpec("float32", [-1, 3])}
    )


def test_image_model_without_contract() -> None:
    contract = derive_contract(
        "img", {"serving_default": _sig({"x": TensorSpec("float32", [-1, 32, 32, 3])})}
    )
    info = ModelInfo("img", 1, {}, contract, "derived")
    image = info.spec.for_images()
    assert image.name == "x" and (image.image.height, image.image.width, image.image.channels) == (32, 32, 3)
    assert (image.image.low, image.image.high, image.image.dtype) == (0.0, 1.0, "float32")
    assert image.image.resize == "stretch" and info.task == "image_classification"
    assert contract["predict"] == {"signature": "serving_default", "outputs": ["y"]}


def test_text_and_tabular_models_without_contract() -> None:
    text = derive_contract("t", {"serving_default": _sig({"s": TensorSpec("string", [-1])})})
    assert ModelInfo("t", 1, {}, text, "derived").spec.for_texts().row_dims(2) == [2]
    tabular = derive_contract(
        "h",
        {
            "serving_default": _sig({"a": TensorSpec("float32", [-1]), "b": TensorSpec("float32", [-1, 1])}),
            "regress": _sig({"inputs": TensorSpec("string", [-1])}),
        },
    )
    info = ModelInfo("h", 1, {}, tabular, "derived")
    features = info.spec.for_records()
    assert list(features) == ["a", "b"] and info.task == "regression"
    assert [f.trailing for f in features.values()] == [(), (1,)]
    assert tabular["regress"] == {"signature": "regress"}


# signature inputs -> (what each request kind gets: the input name it fills, or the error's kind)
MAPPINGS = [
    # Keras text model: keras.Input((1,), dtype="string")
    ({"text": TensorSpec("string", [-1, 1])}, {"texts": "text", "images": "unsupported_media_type"}),
    ({"image": TensorSpec("uint8", [-1, 64, 64, 3])}, {"images": "image", "texts": "bad_request"}),
    ({"gray": TensorSpec("float32", [-1, 28, 28, 1])}, {"images": "gray", "records": "bad_request"}),
    (
        {"a": TensorSpec("float32", [-1, 8, 8, 3]), "b": TensorSpec("float32", [-1, 8, 8, 3])},
        {"images": "inputs_not_mappable"},
    ),
    (
        {"img": TensorSpec("float32", [-1, 8, 8, 3]), "meta": TensorSpec("float32", [-1, 4])},
        {"images": "inputs_not_mappable", "records": "inputs_not_mappable"},
    ),
    ({"x": TensorSpec("float32", [-1, -1, -1, 3])}, {"images": "inputs_not_mappable"}),
    ({"x": TensorSpec("int64", [-1])}, {"records": "x", "texts": "bad_request"}),
    ({"x": TensorSpec("int8", [-1])}, {"records": "inputs_not_mappable", "texts": "inputs_not_mappable"}),
    # a structured-data model: a string category next to numbers is a record feature
    ({"city": TensorSpec("string", [-1, 1]), "rooms": TensorSpec("int64", [-1, 1])}, {"records": "city"}),
    ({"x": TensorSpec("float64", [-1, 8, 8, 3])}, {"images": "inputs_not_mappable"}),
]


@pytest.mark.parametrize(("inputs", "expected"), MAPPINGS)
def test_requests_map_onto_derived_inputs(inputs: dict[str, TensorSpec], expected: dict[str, str]) -> None:
    spec = ModelInfo("m", 1, {}, derive_contract("m", {"serving_default": _sig(inputs)}), "derived").spec
    build = {"images": spec.for_images, "texts": spec.for_texts, "records": spec.for_records}
    for sent, want in expected.items():
        if want in inputs:
            found = build[sent]()
            assert want in (found if isinstance(found, dict) else {found.name: found})
            continue
        with pytest.raises(GatewayError) as caught:
            build[sent]()
        assert caught.value.kind == want, caught.value.message
        if want == "inputs_not_mappable":  # says what the model takes and where to send it
            assert all(name in caught.value.message for name in inputs)
            assert ":predict on the model server" in caught.value.message


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ({"kind": "image", "shape": [-1, 8, 8, 3], "dtype": "uint8", "range": [0, 1]}, "uint8"),
        ({"kind": "image", "shape": [-1, 8, 8, 3], "resize": "zoom"}, "resize rule"),
        ({"kind": "image", "shape": [-1, 8, 8, 3], "dtype": "float16"}, "float16"),
        ({"kind": "audio", "shape": [-1, 16000]}, "audio"),
    ],
)
def test_contract_entries_the_gateway_cannot_use_say_why(entry: dict[str, Any], why: str) -> None:
    spec = ModelInfo("m", 1, {}, {"inputs": {"x": entry}}, "signature").spec
    with pytest.raises(GatewayError) as caught:
        spec.for_images()
    assert caught.value.kind == "inputs_not_mappable" and why in caught.value.message


def test_contract_fields_are_typed() -> None:
    raw = {
        "task": "image_classification",
        "labels": ["cat", "dog"],
        "predict": {"signature": "serve", "outputs": ["probs"]},
        "inputs": {
            "pixels": {
                "kind": "image",
                "dtype": "float32",
                "shape": [-1, 96, 96, 3],
                "range": [0, 255],
                "resize": "crop",
            },
        },
    }
    info = ModelInfo("m", 1, {}, raw, "signature")
    image = info.spec.for_images().image
    assert (image.low, image.high, image.resize, image.background) == (0.0, 255.0, "crop", None)
    assert info.spec.labels == ("cat", "dog") and info.predict_signature() == "serve"
    assert info.spec.predict_outputs == ("probs",)


class _SwappingServer:
    """A model client whose model moves from version 57 to 58 between GetModelMetadata and the contract's
    Predict (a hot swap in between); ``contract_calls`` records the versions asked."""

    def __init__(self) -> None:
        self.latest = 57
        self.contract_calls: list[int | None] = []

    async def metadata(self, model: str, *, version: int | None = None, label: str | None = None) -> Any:
        reply = get_model_metadata_pb2.GetModelMetadataResponse()
        reply.model_spec.name = model
        reply.model_spec.version.value = version or self.latest
        signatures = get_model_metadata_pb2.SignatureDefMap()
        signatures.signature_def["contract"].method_name = "tensorflow/serving/predict"
        signatures.signature_def["contract"].outputs["contract"].name = "c:0"
        reply.metadata["signature_def"].Pack(signatures)
        self.latest = 58  # unloaded 57 right after answering
        return reply

    async def predict(self, model: str, inputs: dict, *, version: int | None = None, **kwargs: Any) -> Any:
        self.contract_calls.append(version)
        if version != self.latest:
            raise UpstreamError(
                grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Specific({model}, {version})"
            )
        reply = predict_pb2.PredictResponse()
        reply.outputs["contract"].CopyFrom(string_tensor([json.dumps({"task": "regression"}).encode()]))
        return reply

    async def replicas(self, model: str) -> list[str]:
        return []


def test_latest_unloaded_before_its_contract_is_read_is_asked_again() -> None:
    server = _SwappingServer()
    store = ContractStore(server, cache_size=4)  # type: ignore[arg-type]
    info = asyncio.run(store.get("housing"))
    assert (info.version, info.task) == (58, "regression")
    assert server.contract_calls == [57, 58]


def test_a_pinned_version_that_is_gone_stays_not_found() -> None:
    server = _SwappingServer()
    store = ContractStore(server, cache_size=4)  # type: ignore[arg-type]
    server.latest = 58
    with pytest.raises(UpstreamError):
        asyncio.run(store.get("housing", version=57))


def test_estimator_style_signatures_are_not_taken_for_text() -> None:
    classify = SignatureInfo(
        "tensorflow/serving/classify",
        {"inputs": TensorSpec("string", [-1])},
        {"scores": TensorSpec("float32", [-1, 3])},
    )
    only = ModelInfo("est", 1, {}, derive_contract("est", {"serving_default": classify}), "derived").spec
    with pytest.raises(GatewayError) as caught:
        only.for_texts()
    assert caught.value.kind == "inputs_not_mappable" and "tf.Example" in caught.value.message
    # a predict signature next to it is the one the gateway feeds
    both = derive_contract(
        "est", {"serving_default": classify, "predict": _sig({"x": TensorSpec("float32", [-1, 4])})}
    )
    spec = ModelInfo("est", 1, {}, both, "derived").spec
    assert spec.predict_signature == "predict" and list(spec.for_records()) == ["x"]
