"""End to end on the stack's exported models (the root ``model_repo`` fixture: fashion, text, housing built by
the real export code): every signature of the architecture contract answers through the gRPC stubs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    predict_pb2,
    regression_pb2,
)

from devtools.fashion import FASHION_LABELS
from devtools.servers import ModelServerHandle, start_modelserver
from tests.modelserver.test_server_e2e import Client

pytestmark = pytest.mark.e2e

HOUSING = ["longitude", "latitude", "housing_median_age", "total_rooms", "total_bedrooms", "population",
           "households", "median_income"]  # fmt: skip
HOUSE = [-122.23, 37.88, 41.0, 880.0, 129.0, 322.0, 126.0, 8.3252]


@pytest.fixture(scope="module")
def server(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServerHandle]:
    log = tmp_path_factory.mktemp("exported") / "server.log"
    with start_modelserver(model_repo / "models.config", rest=False, log_path=log) as handle:
        yield handle


@pytest.fixture(scope="module")
def client(server: ModelServerHandle) -> Client:
    return Client(server.grpc_target)


def predict(
    client: Client, model: str, inputs: dict[str, np.ndarray], signature: str = ""
) -> dict[str, np.ndarray]:
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = model, signature
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    response = client.predictions.Predict(request, timeout=30)
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def test_contract_signature_without_inputs(client: Client) -> None:
    for model, task in (("fashion", "image_classification"), ("text", "text_classification"),
                        ("housing", "regression")):  # fmt: skip
        contract = json.loads(predict(client, model, {}, "contract")["contract"].item())
        assert contract["model"] == model and contract["task"] == task


def test_fashion_predict_and_classify(client: Client) -> None:
    images = np.zeros((2, 28, 28, 1), np.float32)
    images[1, 5:25, 10:18, 0] = 1.0  # a bright vertical bar
    probabilities = predict(client, "fashion", {"image": images})["probabilities"]
    assert probabilities.shape == (2, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name, request.model_spec.signature_name = "fashion", "classify"
    example = request.input.example_list.examples.add()
    example.features.feature["image"].float_list.value.extend(images[1].ravel().tolist())
    classes = client.predictions.Classify(request, timeout=30).result.classifications[0].classes
    assert [c.label for c in classes] == FASHION_LABELS
    np.testing.assert_allclose([c.score for c in classes], probabilities[1], rtol=1e-4, atol=1e-6)


def test_text_predict_and_classify(client: Client) -> None:
    texts = np.array([b"see you at lunch tomorrow", b"WINNER! claim your free prize now, txt 80082"], object)
    probabilities = predict(client, "text", {"text": texts})["probabilities"]
    assert probabilities.shape == (2, 2)
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name, request.model_spec.signature_name = "text", "classify"
    for text in texts:
        request.input.example_list.examples.add().features.feature["text"].bytes_list.value.append(text)
    result = client.predictions.Classify(request, timeout=30).result
    assert [[c.label for c in r.classes] for r in result.classifications] == [["ham", "spam"]] * 2


def test_housing_predict_and_regress_with_missing_values(client: Client) -> None:
    inputs = {name: np.array([value, np.nan], np.float32) for name, value in zip(HOUSING, HOUSE, strict=True)}
    values = predict(client, "housing", inputs)["median_house_value"]
    assert values.shape == (2,) and np.isfinite(values).all()
    request = regression_pb2.RegressionRequest()
    request.model_spec.name, request.model_spec.signature_name = "housing", "regress"
    example = request.input.example_list.examples.add()
    for name, value in zip(HOUSING, HOUSE, strict=True):
        example.features.feature[name].float_list.value.append(value)
    request.input.example_list.examples.add()  # every feature unknown
    regressions = client.predictions.Regress(request, timeout=30).result.regressions
    np.testing.assert_allclose([r.value for r in regressions], values, rtol=1e-4)


def test_metadata_lists_contract_signatures(client: Client) -> None:
    # Every SignatureDef of the MetaGraphDef, the init op's included, as TF Serving lists them
    # (testdata/saved_model_half_plus_two_tf2_2_versions_metadata.json).
    expected = {
        "fashion": {"serving_default", "contract", "classify", "explain", "__saved_model_init_op"},
        "text": {"serving_default", "contract", "classify", "explain", "__saved_model_init_op"},
        "housing": {"serving_default", "contract", "regress", "explain", "__saved_model_init_op"},
    }
    for model, keys in expected.items():
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = model
        signatures = get_model_metadata_pb2.SignatureDefMap()
        client.predictions.GetModelMetadata(request, timeout=10).metadata["signature_def"].Unpack(signatures)
        assert set(signatures.signature_def) == keys


def test_two_load_threads_load_all_three_models(model_repo: Path, tmp_path: Path) -> None:
    """``--num_load_threads=2``: the three models are reconciled at once at start (the order of their loads
    is the machine's) and every one is AVAILABLE and answers, as with the default serial loads."""
    log = tmp_path / "server.log"
    flags = ("--num_load_threads=2",)
    with start_modelserver(
        model_repo / "models.config", extra_flags=flags, rest=False, log_path=log
    ) as server:
        client = Client(server.grpc_target)
        for model in ("fashion", "text", "housing"):  # the ports open only after the start config loaded
            assert [s[:2] for s in client.status(model)] == [(1, "AVAILABLE")]
        assert "num_load_threads=2, num_unload_threads=0" in server.log_text()
        images = np.zeros((1, 28, 28, 1), np.float32)
        assert predict(client, "fashion", {"image": images})["probabilities"].shape == (1, 10)
        texts = np.array([b"see you at lunch tomorrow"], object)
        assert predict(client, "text", {"text": texts})["probabilities"].shape == (1, 2)
        inputs = {name: np.array([value], np.float32) for name, value in zip(HOUSING, HOUSE, strict=True)}
        assert np.isfinite(predict(client, "housing", inputs)["median_house_value"]).all()
