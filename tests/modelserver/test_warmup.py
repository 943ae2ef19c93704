"""modelserver.runtime.warmup: records are replayed through modelserver.runtime.execution - the code that answers clients -
on the version being loaded, before it is available (TF Serving's saved_model_warmup_util.cc)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    input_pb2,
    predict_pb2,
    prediction_log_pb2,
    regression_pb2,
)

from devtools import tiny_models
from modelserver.dataplane import DataPlane
from modelserver.errors import ServingError
from modelserver.lifecycle.core import ServerCore
from modelserver.lifecycle.manager import AspiredVersionsManager
from modelserver.lifecycle.model_config import ModelEntry
from modelserver.lifecycle.version_policy import AllVersions
from modelserver.metrics import Metrics
from modelserver.runtime.loader import Loader
from modelserver.runtime.servable import Servable
from modelserver.runtime.warmup import WarmupOptions, replay_warmup


def examples(x: float) -> input_pb2.Input:
    request_input = input_pb2.Input()
    request_input.example_list.examples.add().features.feature["x"].float_list.value.append(x)
    return request_input


def classify_log(signature: str) -> bytes:
    request = classification_pb2.ClassificationRequest(input=examples(2.0))
    request.model_spec.signature_name = signature
    log = prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(request=request))
    return log.SerializeToString()


def regress_log(signature: str) -> bytes:
    request = regression_pb2.RegressionRequest(input=examples(2.0))
    request.model_spec.signature_name = signature
    log = prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(request=request))
    return log.SerializeToString()


def multi_inference_log(*tasks: tuple[str, str]) -> bytes:
    request = inference_pb2.MultiInferenceRequest(input=examples(2.0))
    for signature, method in tasks:
        request.tasks.add(method_name=method).model_spec.signature_name = signature
    log = prediction_log_pb2.PredictionLog(
        multi_inference_log=prediction_log_pb2.MultiInferenceLog(request=request)
    )
    return log.SerializeToString()


def predict_log_with_filter(output: str) -> bytes:
    request = predict_pb2.PredictRequest(output_filter=[output])
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray([1.0], np.float32)))
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    ).SerializeToString()


def warm(tiny: dict[str, Path], tmp_path: Path, records: list[bytes], **options: object) -> int:
    version = shutil.copytree(tiny["half_plus_two"], tmp_path / "1")
    tiny_models.write_warmup(version, records)
    servable = Loader("half", 1, version, WarmupOptions(enabled=False)).load()
    try:
        return replay_warmup(servable, WarmupOptions(**options))  # type: ignore[arg-type]
    finally:
        Loader.unload(servable)


def test_every_request_kind_is_replayed(tiny: dict[str, Path], tmp_path: Path) -> None:
    records = [
        tiny_models.predict_log({"x": [1.0, 2.0]}),
        predict_log_with_filter("y"),
        classify_log("classify_x_to_y"),
        regress_log("regress_x_to_y"),
        multi_inference_log(
            ("classify_x_to_y", tiny_models.CLASSIFY_METHOD), ("regress_x_to_y", tiny_models.REGRESS_METHOD)
        ),
    ]
    assert warm(tiny, tmp_path, records, num_request_iterations=3) == 15


FAILURES = [
    # each is the data plane's own check and message, answered to a client the same way
    (predict_log_with_filter("nope"), "output tensor alias not found in signature: nope"),
    (tiny_models.predict_log({"x": [1.0]}, signature_name="nope"), 'Serving signature key "nope" not found.'),
    (regress_log("serving_default"), "Expected input Tensor of signature serving_default to be a string"),
    (
        multi_inference_log(
            ("classify_x_to_y", tiny_models.CLASSIFY_METHOD), ("classify_x_to_y", tiny_models.CLASSIFY_METHOD)
        ),
        "Duplicate evaluation of signature: classify_x_to_y",
    ),
    (multi_inference_log(), "Expected at least one task"),
]


@pytest.mark.parametrize(("record", "message"), FAILURES)
def test_a_record_the_request_path_refuses_fails_the_warmup(
    tiny: dict[str, Path], tmp_path: Path, record: bytes, message: str
) -> None:
    with pytest.raises(ServingError) as info:
        warm(tiny, tmp_path, [tiny_models.predict_log({"x": [1.0]}), record])
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.message.startswith("Warmup request 1 in ")
    assert message in info.value.message


def test_method_name_check_applies_to_warmup(tiny: dict[str, Path], tmp_path: Path) -> None:
    record = regress_log("classify_x_to_y")  # a classify signature: no 'outputs' output
    with pytest.raises(ServingError, match="No regression outputs found in signature classify_x_to_y"):
        warm(tiny, tmp_path, [record])
    with pytest.raises(ServingError, match="Expected regression signature method_name"):
        warm(tiny, tmp_path / "checked", [record], method_name_check=True)


def test_warmup_runs_on_the_version_being_loaded_before_it_is_available(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    """Version 2 (the strings model) warms up with a request only it can answer while version 1 (half plus
    two, no input ``text``) serves: the records reach the loading version, not whatever the model's name
    resolves to, and they are not counted as requests."""
    base = tmp_path / "half"
    tiny_models.publish(tiny["half_plus_two"], base, 1)
    staged = shutil.copytree(tiny["strings"], tmp_path / "staged")
    request = predict_pb2.PredictRequest()
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(np.asarray([b"warm"], object)))
    record = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    tiny_models.write_warmup(staged, [record.SerializeToString()])
    metrics = Metrics()
    available_when_loaded: dict[int, list[int]] = {}

    async def main() -> None:
        manager: AspiredVersionsManager

        class Recording(Loader):
            def load(self) -> Servable:
                servable = super().load()  # warm-up included
                available_when_loaded[self.version] = manager.available_versions("half")
                return servable

        manager = AspiredVersionsManager(
            lambda n, v, p: Recording(n, v, p, WarmupOptions()), ram_budget_bytes=2**33, metrics=metrics
        )
        core = ServerCore(manager, file_system_poll_wait_seconds=0)
        dp = DataPlane(core, metrics=metrics)
        await core.apply_config({"half": ModelEntry("half", base, AllVersions())})
        try:
            tiny_models.publish(staged, base, 2)
            await core.source.poll_once()
            assert manager.available_versions("half") == [1, 2]
            (v2,) = manager.status("half", 2)
            assert v2.error is None
        finally:
            await core.stop()
            dp.shutdown()

    asyncio.run(main())
    assert available_when_loaded == {1: [], 2: [1]}  # warmed before it was available
    (requests,) = [family for family in metrics.registry.collect() if family.name == "modelserver_requests"]
    assert requests.samples == []  # warm-up calls are not requests
