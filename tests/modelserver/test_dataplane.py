"""modelserver.dataplane in-process, on real tiny SavedModels: every API's answers, TF Serving's error codes
and messages, config reload, and metrics counting."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from devtools.tiny_models import publish
from modelserver.dataplane import DataPlane
from modelserver.errors import ServingError
from modelserver.lifecycle.core import ServerCore
from modelserver.lifecycle.manager import AspiredVersionsManager
from modelserver.lifecycle.model_config import ModelEntry
from modelserver.lifecycle.version_policy import AllVersions, LatestVersions
from modelserver.metrics import Metrics
from modelserver.runtime.loader import Loader
from modelserver.runtime.warmup import WarmupOptions


def spec(name: str = "half", version: int | None = None, label: str = "", signature: str = "") -> Any:
    s = model_pb2.ModelSpec(name=name, signature_name=signature)
    if version is not None:
        s.version.value = version
    if label:
        s.version_label = label
    return s


def predict_request(x: list[float], **kw: Any) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(model_spec=spec(**kw))
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray(x, np.float32)))
    return request


def examples(*rows: dict[str, float], context: dict[str, float] | None = None) -> Any:
    from tensorflow_serving.apis import input_pb2

    request_input = input_pb2.Input()
    target = request_input.example_list_with_context if context else request_input.example_list
    if context:
        for key, value in context.items():
            target.context.features.feature[key].float_list.value.append(value)
    for row in rows:
        example = target.examples.add()
        for key, value in row.items():
            example.features.feature[key].float_list.value.append(value)
    return request_input


Scenario = Callable[[DataPlane, Path], Awaitable[None]]


def run(tiny: dict[str, Path], tmp_path: Path, scenario: Scenario, *, check: bool = False) -> Metrics:
    """Serve half (v1 = half_plus_two, v2 = half_plus_three, policy all, labels stable/canary) and run."""
    publish(tiny["half_plus_two"], tmp_path / "half", 1)
    publish(tiny["half_plus_three"], tmp_path / "half", 2)
    metrics = Metrics()

    async def main() -> None:
        manager = AspiredVersionsManager(
            lambda n, v, p: Loader(n, v, p, WarmupOptions()), ram_budget_bytes=2**33, metrics=metrics
        )
        core = ServerCore(manager, file_system_poll_wait_seconds=0)
        dataplane = DataPlane(core, method_name_check=check, metrics=metrics)
        entry = ModelEntry("half", tmp_path / "half", AllVersions(), {"stable": 1, "canary": 2})
        await core.apply_config({"half": entry})
        try:
            await scenario(dataplane, tmp_path)
        finally:
            await core.stop()
            dataplane.shutdown()

    asyncio.run(main())
    return metrics


async def expect_error(awaitable: Awaitable[Any], code: grpc.StatusCode, text: str) -> None:
    with pytest.raises(ServingError) as info:
        await awaitable
    assert info.value.code == code, info.value
    assert text in info.value.message


def test_predict_latest_version_label_and_filter(tiny: dict[str, Path], tmp_path: Path) -> None:
    async def scenario(dp: DataPlane, _: Path) -> None:
        response = await dp.predict(predict_request([1.0, 2.0, 5.0]))
        assert list(response.outputs["y"].float_val) == [3.5, 4.0, 5.5]  # latest = v2 = half_plus_three
        assert response.model_spec.version.value == 2
        assert response.model_spec.signature_name == "serving_default"
        response = await dp.predict(predict_request([2.0, 3.0, 4.0], version=1))
        assert list(response.outputs["y"].float_val) == [3.0, 3.5, 4.0]
        response = await dp.predict(predict_request([2.0], label="stable"))
        assert response.model_spec.version.value == 1
        request = predict_request([2.0])
        request.output_filter.append("y")
        assert list((await dp.predict(request)).outputs) == ["y"]
        async with dp.prediction(spec(version=1)) as prediction:
            assert prediction.input_dtypes == {"x": tf.float32.as_datatype_enum}
            outputs = await prediction.run({"x": np.array([0.0], np.float32)})
        assert prediction.spec.version.value == 1 and outputs["y"].tolist() == [2.0]

    run(tiny, tmp_path, scenario)


def test_predict_errors_have_tf_serving_codes(tiny: dict[str, Path], tmp_path: Path) -> None:
    async def scenario(dp: DataPlane, _: Path) -> None:
        nf, bad = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT
        await expect_error(
            dp.predict(predict_request([1.0], name="nope")),
            nf,
            "Servable not found for request: Latest(nope)",
        )
        await expect_error(dp.predict(predict_request([1.0], version=7)), nf, "Specific(half, 7)")
        await expect_error(
            dp.predict(predict_request([1.0], label="beta")), bad, "Unrecognized servable version label: beta"
        )
        await expect_error(
            dp.predict(predict_request([1.0], signature="nope")),
            bad,
            'Serving signature key "nope" not found.',
        )
        request = predict_request([1.0])
        request.inputs["z"].CopyFrom(tf.make_tensor_proto(np.zeros(1, np.float32)))
        await expect_error(dp.predict(request), bad, "Sent extra: {z}")
        request = predict_pb2.PredictRequest(model_spec=spec())
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.zeros(1, np.float64)))
        await expect_error(dp.predict(request), bad, "to be float but double is provided")
        # Fed shapes are not checked against the signature ([-1]): the graph decides, as in TF Serving.
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 2), np.float32)))
        answer = (await dp.predict(request)).outputs["y"]
        assert [d.size for d in answer.tensor_shape.dim] == [1, 2] and list(answer.float_val) == [3.0, 3.0]
        request = predict_request([1.0])
        request.output_filter.append("nope")
        await expect_error(dp.predict(request), bad, "output tensor alias not found in signature: nope")
        await expect_error(dp.predict(predict_pb2.PredictRequest()), bad, "Missing ModelSpec")

    metrics = run(tiny, tmp_path, scenario)
    count = metrics.registry.get_sample_value
    labels = {
        "model": "_unknown",
        "version": "",
        "signature": "serving_default",
        "api": "predict",
        "protocol": "grpc",
    }
    assert count("modelserver_requests_total", {**labels, "status": "NOT_FOUND"}) == 1


def test_classify_and_regress_over_examples(tiny: dict[str, Path], tmp_path: Path) -> None:
    async def scenario(dp: DataPlane, _: Path) -> None:
        request = classification_pb2.ClassificationRequest(
            model_spec=spec(version=1, signature="classify_x_to_y"), input=examples({"x": 2.0}, {"x": 4.0})
        )
        result = (await dp.classify(request)).result
        assert [[(c.label, c.score) for c in r.classes] for r in result.classifications] == [
            [("", 3.0)],
            [("", 4.0)],
        ]
        request = regression_pb2.RegressionRequest(
            model_spec=spec(version=1, signature="regress_x_to_y"), input=examples({"x": 2.0})
        )
        assert [r.value for r in (await dp.regress(request)).result.regressions] == [3.0]
        # a context is merged into every example
        request = regression_pb2.RegressionRequest(
            model_spec=spec(version=2, signature="regress_x_to_y2"),
            input=examples({}, {}, context={"x2": 1.0}),
        )
        assert [r.value for r in (await dp.regress(request)).result.regressions] == [3.5, 3.5]
        empty = regression_pb2.RegressionRequest(model_spec=spec(signature="regress_x_to_y"))
        await expect_error(dp.regress(empty), grpc.StatusCode.INVALID_ARGUMENT, "Input is empty")
        wrong = classification_pb2.ClassificationRequest(model_spec=spec(), input=examples({"x": 1.0}))
        await expect_error(
            dp.classify(wrong), grpc.StatusCode.INVALID_ARGUMENT, "string of serialized tf.Examples"
        )
        missing = regression_pb2.RegressionRequest(
            model_spec=spec(signature="regress_x_to_y"), input=examples({"y": 1.0})
        )
        await expect_error(dp.regress(missing), grpc.StatusCode.INVALID_ARGUMENT, "x")

    run(tiny, tmp_path, scenario)


def test_method_name_check_when_enabled(tiny: dict[str, Path], tmp_path: Path) -> None:
    async def scenario(dp: DataPlane, _: Path) -> None:
        request = regression_pb2.RegressionRequest(
            model_spec=spec(signature="classify_x_to_y"), input=examples({"x": 1.0})
        )
        await expect_error(
            dp.regress(request),
            grpc.StatusCode.INVALID_ARGUMENT,
            "Expected regression signature method_name to be tensorflow/serving/regress. "
            "Was: tensorflow/serving/classify",
        )

    run(tiny, tmp_path, scenario, check=True)


def test_multi_inference(tiny: dict[str, Path], tmp_path: Path) -> None:
    async def scenario(dp: DataPlane, _: Path) -> None:
        request = inference_pb2.MultiInferenceRequest(input=examples({"x": 2.0}))
        request.tasks.add(
            model_spec=spec(version=1, signature="classify_x_to_y"), method_name="tensorflow/serving/classify"
        )
        request.tasks.add(
            model_spec=spec(version=1, signature="regress_x_to_y"), method_name="tensorflow/serving/regress"
        )
        response = await dp.multi_inference(request)
        assert response.results[0].classification_result.classifications[0].classes[0].score == 3.0
        assert response.results[1].regression_result.regressions[0].value == 3.0
        assert response.results[1].model_spec.version.value == 1
        request.tasks[1].model_spec.signature_name = "classify_x_to_y"
        await expect_error(
            dp.multi_inference(request), grpc.StatusCode.INVALID_ARGUMENT, "Duplicate evaluation of signature"
        )
        request.tasks[1].model_spec.name = "other"
        await expect_error(dp.multi_inference(request), grpc.StatusCode.INVALID_ARGUMENT, "same model name")

    run(tiny, tmp_path, scenario)


def test_metadata_and_status(tiny: dict[str, Path], tmp_path: Path) -> None:
    async def scenario(dp: DataPlane, _: Path) -> None:
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=spec(), metadata_field=["signature_def"]
        )
        response = await dp.get_model_metadata(request)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        assert response.metadata["signature_def"].Unpack(signatures)
        assert signatures.signature_def["serving_default"].inputs["x"].dtype == tf.float32.as_datatype_enum
        assert signatures.signature_def["regress_x_to_y"].method_name == "tensorflow/serving/regress"
        assert response.model_spec.version.value == 2
        del request.metadata_field[:]
        await expect_error(
            dp.get_model_metadata(request), grpc.StatusCode.INVALID_ARGUMENT, "at least one metadata_field"
        )

        status = await dp.get_model_status(get_model_status_pb2.GetModelStatusRequest(model_spec=spec()))
        assert [(s.version, s.state) for s in status.model_version_status] == [(2, 30), (1, 30)]
        status = await dp.get_model_status(
            get_model_status_pb2.GetModelStatusRequest(model_spec=spec(label="stable"))
        )
        assert [s.version for s in status.model_version_status] == [1]
        await expect_error(
            dp.get_model_status(get_model_status_pb2.GetModelStatusRequest(model_spec=spec(name="x"))),
            grpc.StatusCode.NOT_FOUND,
            "Could not find any versions of model x",
        )

    run(tiny, tmp_path, scenario)


def test_reload_config_serves_exactly_the_new_config(tiny: dict[str, Path], tmp_path: Path) -> None:
    async def scenario(dp: DataPlane, root: Path) -> None:
        publish(tiny["multi_input"], root / "multi", 1)
        config = text_format.Parse(
            f"""model_config_list {{
              config {{ name: "multi" base_path: "{root / "multi"}"
                        model_platform: "tensorflow" }}
              config {{ name: "half" base_path: "{root / "half"}"
                        model_version_policy {{ specific {{ versions: 1 }} }}
                        version_labels {{ key: "stable" value: 1 }} }}
            }}""",
            model_management_pb2.ReloadConfigRequest().config,
        )
        response = await dp.reload_config(model_management_pb2.ReloadConfigRequest(config=config))
        assert response.status.error_code == 0
        await dp.manager.wait_unloads()
        assert dp.manager.available_versions("half") == [1]
        assert dp.manager.available_versions("multi") == [1]
        await expect_error(
            dp.predict(predict_request([1.0], label="canary")), grpc.StatusCode.INVALID_ARGUMENT, "canary"
        )
        # a label on a version that is not available is refused
        config.model_config_list.config[1].version_labels["canary"] = 2
        await expect_error(
            dp.reload_config(model_management_pb2.ReloadConfigRequest(config=config)),
            grpc.StatusCode.FAILED_PRECONDITION,
            "not currently available",
        )
        # dropping a model unloads it
        del config.model_config_list.config[1]
        await dp.reload_config(model_management_pb2.ReloadConfigRequest(config=config))
        await dp.manager.wait_unloads()
        assert dp.manager.available_versions("half") == []
        assert dp.core.entries.keys() == {"multi"}
        assert isinstance(dp.core.entries["multi"].policy, LatestVersions)

    run(tiny, tmp_path, scenario)


def test_signature_names_a_client_invents_share_one_metrics_label(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    """Issue 25 (what a client can make the server keep): 50 made-up signature names on a known and on an
    unknown model add one label value, ``_unknown``; a signature the version has keeps its name."""

    async def scenario(dp: DataPlane, _: Path) -> None:
        for index in range(50):
            for name in ("half", f"nope{index}"):
                await expect_error(
                    dp.predict(predict_request([1.0], name=name, signature=f"made-up-{index}")),
                    grpc.StatusCode.INVALID_ARGUMENT if name == "half" else grpc.StatusCode.NOT_FOUND,
                    "",
                )
        await dp.predict(predict_request([1.0], version=1, signature="serving_default"))

    metrics = run(tiny, tmp_path, scenario)
    signatures = {
        sample.labels["signature"]
        for family in metrics.registry.collect()
        if family.name == "modelserver_requests"
        for sample in family.samples
    }
    assert signatures == {"_unknown", "serving_default"}
