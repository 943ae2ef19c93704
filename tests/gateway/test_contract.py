"""gateway.upstream.contract: the contract derived from signatures when a model has no ``contract`` signature, and
the store's answer when a hot swap retires the version "latest" named."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import pytest

from gateway.errors import UpstreamError
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
    info = ModelInfo("img", 1, {}, contract, False)
    name, spec = info.image_input()  # type: ignore[misc]
    assert name == "x" and (spec["height"], spec["width"], spec["channels"]) == (32, 32, 3)
    assert spec["range"] == [0.0, 1.0] and info.task == "image_classification"
    assert contract["predict"] == {"signature": "serving_default", "outputs": ["y"]}


def test_text_and_tabular_models_without_contract() -> None:
    text = derive_contract("t", {"serving_default": _sig({"s": TensorSpec("string", [-1])})})
    assert ModelInfo("t", 1, {}, text, False).text_input() is not None
    tabular = derive_contract(
        "h",
        {
            "serving_default": _sig({"a": TensorSpec("float32", [-1]), "b": TensorSpec("float32", [-1])}),
            "regress": _sig({"inputs": TensorSpec("string", [-1])}),
        },
    )
    info = ModelInfo("h", 1, {}, tabular, False)
    assert list(info.numeric_inputs()) == ["a", "b"] and info.task == "regression"
    assert tabular["regress"] == {"signature": "regress"}


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
