"""Port of TF Serving's ``tensorflow_serving/model_servers/tensorflow_model_server_test.py`` against
``python -m modelserver``: one pytest case per official case, same flags, same requests, same expected values
(see README.md in this folder for the mapping and for the cases that do not apply to a CPU TF Serving).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tests.tfs_conformance.conftest import BASE_CONFIG_PROTO
from tests.tfs_conformance.tfs_test_base import (
    RPC_TIMEOUT,
    TESTDATA,
    ServerPool,
    call_rest,
    get_model_version,
    sorted_object,
    verify_model_spec,
    verify_predict_request,
)

pytestmark = pytest.mark.e2e

HALF_PLUS_TWO = TESTDATA / "saved_model_half_plus_two_cpu"
HALF_PLUS_TWO_TF2 = TESTDATA / "saved_model_half_plus_two_tf2_cpu"
HALF_PLUS_THREE = TESTDATA / "saved_model_half_plus_three"
HALF_PLUS_TWO_TFLITE = TESTDATA / "saved_model_half_plus_two_tflite"
HALF_PLUS_TWO_TFLITE_WITH_SIGDEF = TESTDATA / "saved_model_half_plus_two_tflite_with_sigdef"
BAD_MODEL_CONFIG = TESTDATA / "bad_model_config.txt"
MODEL_METADATA = TESTDATA / "half_plus_two_model_metadata.json"
MONITORING_CONFIG = TESTDATA / "monitoring_config.txt"
# A hang guard for conditions the original waits on with a fixed sleep.
CONDITION_DEADLINE = 120.0


def _grpc(pool: ServerPool, model_path: Path) -> str:
    return pool.run("default", model_path)[1]


def _rest(pool: ServerPool, model_path: Path) -> str:
    return pool.run("default", model_path)[2]


WRITTEN_MODELS = (
    "tf_saved_model_save",
    "tf_saved_model_save_multiple_signatures",
    "keras_sequential_saved_model_save",
    "distrat_keras_sequential_saved_model_save",
)
# The official file's cases, each one pytest case here (26 that apply, 4 in NOT_APPLICABLE).
OFFICIAL_CASES = 30
GRPC_CHANNEL_ARGUMENTS = "grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb"


def _whole_module_selected(request: pytest.FixtureRequest) -> bool:
    """True when every case of this module runs (``make test``), not a ``-k`` selection of a few."""
    module = request.module
    collected = [item for item in request.session.items if getattr(item, "module", None) is module]
    return len(collected) == OFFICIAL_CASES


@pytest.fixture(scope="module", autouse=True)
def prestart(request: pytest.FixtureRequest, pool: ServerPool) -> None:
    """On a run of the whole module, queue every server the cases use (and start the SavedModel writer) at
    once, so their TensorFlow start-ups overlap with each other and with the cases. Each case still asks for
    its server with the original's arguments and waits until it is ready; a partial run starts only those."""
    if not _whole_module_selected(request):
        return
    request.getfixturevalue("saved_models_writer")
    pool.launch("default", HALF_PLUS_TWO)
    pool.launch("default", HALF_PLUS_TWO_TF2)
    pool.launch(None, None, model_config_file=request.getfixturevalue("good_model_config_file"))
    for poll, config_path in request.getfixturevalue("reload_config_files").items():
        pool.launch(None, None, model_config_file=config_path, model_config_file_poll_period=poll)
    pool.launch("default", HALF_PLUS_TWO, grpc_channel_arguments=GRPC_CHANNEL_ARGUMENTS)
    pool.launch("default", HALF_PLUS_TWO, monitoring_config_file=MONITORING_CONFIG)


@pytest.fixture(scope="module")
def written_models(request: pytest.FixtureRequest, pool: ServerPool, saved_models: Path) -> Path:
    """The written SavedModels; on a whole-module run their servers are queued together."""
    if _whole_module_selected(request):
        for case in WRITTEN_MODELS:
            pool.launch("default", saved_models / case)
    return saved_models


# ---- gRPC: status, metadata ------------------------------------------------------------------------------
def test_get_model_status(pool: ServerPool) -> None:
    """testGetModelStatus"""
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "default"
    with grpc.insecure_channel(_grpc(pool, HALF_PLUS_TWO)) as channel:
        result = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, RPC_TIMEOUT)
    assert len(result.model_version_status) == 1
    assert result.model_version_status[0].version == 123
    assert result.model_version_status[0].status.error_code == 0  # OK


def test_get_model_metadata(pool: ServerPool) -> None:
    """testGetModelMetadata"""
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "default"
    request.metadata_field.append("signature_def")
    with grpc.insecure_channel(_grpc(pool, HALF_PLUS_TWO)) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        result = stub.GetModelMetadata(request, RPC_TIMEOUT)
    assert result.model_spec.name == "default"
    assert result.model_spec.version.value == get_model_version(HALF_PLUS_TWO)
    assert len(result.metadata) == 1
    assert "signature_def" in result.metadata


# ---- gRPC: classify, regress, multi-inference (TF1 and TF2 half_plus_two) --------------------------------
Request = TypeVar("Request", classification_pb2.ClassificationRequest, regression_pb2.RegressionRequest)


def _x_is_two(request: Request, signature_name: str) -> Request:
    """The official request: model 'default', one tf.Example with x = 2.0."""
    request.model_spec.name = "default"
    request.model_spec.signature_name = signature_name
    request.input.example_list.examples.add().features.feature["x"].float_list.value.extend([2.0])
    return request


@pytest.mark.parametrize(
    "model_path", [HALF_PLUS_TWO, HALF_PLUS_TWO_TF2], ids=["testClassify", "testClassifyTf2"]
)
def test_classify(pool: ServerPool, model_path: Path) -> None:
    request = _x_is_two(classification_pb2.ClassificationRequest(), "classify_x_to_y")
    with grpc.insecure_channel(_grpc(pool, model_path)) as channel:
        result = prediction_service_pb2_grpc.PredictionServiceStub(channel).Classify(request, RPC_TIMEOUT)
    assert len(result.result.classifications) == 1
    assert len(result.result.classifications[0].classes) == 1
    assert result.result.classifications[0].classes[0].score == 3.0
    spec = request.model_spec
    verify_model_spec(result.model_spec, spec.name, spec.signature_name, get_model_version(model_path))


@pytest.mark.parametrize(
    "model_path", [HALF_PLUS_TWO, HALF_PLUS_TWO_TF2], ids=["testRegress", "testRegressTf2"]
)
def test_regress(pool: ServerPool, model_path: Path) -> None:
    request = _x_is_two(regression_pb2.RegressionRequest(), "regress_x_to_y")
    with grpc.insecure_channel(_grpc(pool, model_path)) as channel:
        result = prediction_service_pb2_grpc.PredictionServiceStub(channel).Regress(request, RPC_TIMEOUT)
    assert len(result.result.regressions) == 1
    assert result.result.regressions[0].value == 3.0
    spec = request.model_spec
    verify_model_spec(result.model_spec, spec.name, spec.signature_name, get_model_version(model_path))


@pytest.mark.parametrize(
    "model_path", [HALF_PLUS_TWO, HALF_PLUS_TWO_TF2], ids=["testMultiInference", "testMultiInferenceTf2"]
)
def test_multi_inference(pool: ServerPool, model_path: Path) -> None:
    request = inference_pb2.MultiInferenceRequest()
    request.tasks.add().model_spec.name = "default"
    request.tasks[0].model_spec.signature_name = "regress_x_to_y"
    request.tasks[0].method_name = "tensorflow/serving/regress"
    request.tasks.add().model_spec.name = "default"
    request.tasks[1].model_spec.signature_name = "classify_x_to_y"
    request.tasks[1].method_name = "tensorflow/serving/classify"
    example = request.input.example_list.examples.add()
    example.features.feature["x"].float_list.value.extend([2.0])
    with grpc.insecure_channel(_grpc(pool, model_path)) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        result = stub.MultiInference(request, RPC_TIMEOUT)
    assert len(result.results) == 2
    assert result.results[0].regression_result.regressions[0].value == 3.0
    assert result.results[1].classification_result.classifications[0].classes[0].score == 3.0
    for i in range(2):
        task_spec = request.tasks[i].model_spec
        verify_model_spec(
            result.results[i].model_spec,
            task_spec.name,
            task_spec.signature_name,
            get_model_version(model_path),
        )


# ---- gRPC: predict --------------------------------------------------------------------------------------
def test_predict_saved_model(pool: ServerPool) -> None:
    """testPredictSavedModel (``_TestPredict`` of the test base)"""
    address = _grpc(pool, HALF_PLUS_TWO)
    expected_version = get_model_version(HALF_PLUS_TWO)
    verify_predict_request(address, expected_output=3.0, expected_version=expected_version)
    verify_predict_request(
        address, expected_output=3.0, specify_output=False, expected_version=expected_version
    )


def test_predict_on_tflite(pool: ServerPool) -> None:
    """testPredictOnTfLite (``model_type='tflite'``: ``--prefer_tflite_model=true``)"""
    address = pool.run("default", HALF_PLUS_TWO_TFLITE, model_type="tflite")[1]
    verify_predict_request(
        address,
        expected_output=3.0,
        specify_output=False,
        expected_version=get_model_version(HALF_PLUS_TWO_TFLITE),
    )


def test_predict_with_signature_def_on_tflite(pool: ServerPool) -> None:
    """testPredictWithSignatureDefOnTfLite (the signature def is in the model's metadata)"""
    address = pool.run("default", HALF_PLUS_TWO_TFLITE_WITH_SIGDEF, model_type="tflite")[1]
    verify_predict_request(
        address,
        expected_output=3.0,
        specify_output=False,
        expected_version=get_model_version(HALF_PLUS_TWO_TFLITE),
    )


def test_good_model_config(pool: ServerPool, good_model_config_file: Path) -> None:
    """testGoodModelConfig"""
    address = pool.run(None, None, model_config_file=good_model_config_file)[1]
    two, three = get_model_version(HALF_PLUS_TWO), get_model_version(HALF_PLUS_THREE)
    verify_predict_request(address, model_name="half_plus_two", expected_output=3.0, expected_version=two)
    verify_predict_request(
        address, model_name="half_plus_two", expected_output=3.0, specify_output=False, expected_version=two
    )
    verify_predict_request(address, model_name="half_plus_three", expected_output=4.0, expected_version=three)
    verify_predict_request(
        address,
        model_name="half_plus_three",
        expected_output=4.0,
        specify_output=False,
        expected_version=three,
    )


def test_bad_model_config(pool: ServerPool) -> None:
    """testBadModelConfig: the server does not start and its stderr names the text-format parse error."""
    command = pool.command(None, None, model_config_file=BAD_MODEL_CONFIG)
    proc = subprocess.run(
        command,
        env={**os.environ, **pool.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=CONDITION_DEADLINE,
    )
    error_message = b"Error parsing text-format tensorflow.serving.ModelServerConfig"
    assert proc.stderr.find(error_message) > -1, proc.stderr.decode(errors="replace")[-2000:]


def _predict_until(address: str, deadline_secs: float, **kwargs: object) -> None:
    """verify_predict_request, retried while the new config is not applied yet; the original sleeps 10 s
    instead. Not yet applied: the model is unknown (NOT_FOUND) or its version is still loading, which TF
    Serving answers NOT_FOUND and this server UNAVAILABLE ("... version 123 LOADING")."""
    deadline = time.monotonic() + deadline_secs
    not_yet = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE)
    while True:
        try:
            verify_predict_request(address, **kwargs)  # type: ignore[arg-type]
            return
        except grpc.RpcError as exc:
            if exc.code() not in not_yet or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def test_model_config_reload(pool: ServerPool, reload_config_files: dict[int, Path]) -> None:
    """testModelConfigReload: with a 1 s poll period a rewritten config file is applied."""
    config_path = reload_config_files[1]  # serving half_plus_two
    address = pool.run(None, None, model_config_file=config_path, model_config_file_poll_period=1)[1]
    verify_predict_request(
        address,
        model_name="half_plus_two",
        expected_output=3.0,
        specify_output=False,
        expected_version=get_model_version(HALF_PLUS_TWO),
    )
    config_path.write_text(BASE_CONFIG_PROTO.format(name="half_plus_three", model_path=HALF_PLUS_THREE))
    _predict_until(
        address,
        CONDITION_DEADLINE,
        model_name="half_plus_three",
        expected_output=4.0,
        specify_output=False,
        expected_version=get_model_version(HALF_PLUS_THREE),
    )


def test_model_config_reload_with_zero_poll_period(
    pool: ServerPool, reload_config_files: dict[int, Path]
) -> None:
    """testModelConfigReloadWithZeroPollPeriod: with poll period 0 the file is not polled."""
    poll_period = 0
    config_path = reload_config_files[poll_period]  # serving half_plus_two
    address = pool.run(None, None, model_config_file=config_path, model_config_file_poll_period=poll_period)[
        1
    ]
    verify_predict_request(
        address,
        model_name="half_plus_two",
        expected_output=3.0,
        specify_output=False,
        expected_version=get_model_version(HALF_PLUS_TWO),
    )
    config_path.write_text(BASE_CONFIG_PROTO.format(name="half_plus_three", model_path=HALF_PLUS_THREE))
    # The original gives the server poll_period + 1 seconds to (not) act on the change.
    time.sleep(poll_period + 1)
    verify_predict_request(
        address,
        model_name="half_plus_two",
        expected_output=3.0,
        specify_output=False,
        expected_version=get_model_version(HALF_PLUS_THREE),
    )


def test_good_grpc_channel_args(pool: ServerPool) -> None:
    """testGoodGrpcChannelArgs"""
    address = pool.run(
        "default",
        HALF_PLUS_TWO,
        grpc_channel_arguments=GRPC_CHANNEL_ARGUMENTS,
    )[1]
    verify_predict_request(
        address,
        expected_output=3.0,
        specify_output=False,
        expected_version=get_model_version(HALF_PLUS_THREE),
    )


# ---- REST ----------------------------------------------------------------------------------------------
def test_classify_rest(pool: ServerPool) -> None:
    """testClassifyREST"""
    url = f"http://{_rest(pool, HALF_PLUS_TWO)}/v1/models/default:classify"
    json_req = {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}
    assert json.loads(call_rest(url, json_req).decode()) == {"results": [[["", 3.0]]]}


def test_regress_rest(pool: ServerPool) -> None:
    """testRegressREST"""
    url = f"http://{_rest(pool, HALF_PLUS_TWO)}/v1/models/default:regress"
    json_req = {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}
    assert json.loads(call_rest(url, json_req).decode()) == {"results": [3.0]}


def test_predict_rest(pool: ServerPool) -> None:
    """testPredictREST: three scalars fed to the [-1,1] input; the graph decides, as in TF Serving."""
    url = f"http://{_rest(pool, HALF_PLUS_TWO)}/v1/models/default:predict"
    json_req = {"instances": [2.0, 3.0, 4.0]}
    assert json.loads(call_rest(url, json_req).decode()) == {"predictions": [3.0, 3.5, 4.0]}


def test_predict_columnar_rest(pool: ServerPool) -> None:
    """testPredictColumnarREST"""
    url = f"http://{_rest(pool, HALF_PLUS_TWO)}/v1/models/default:predict"
    json_req = {"inputs": [2.0, 3.0, 4.0]}
    assert json.loads(call_rest(url, json_req).decode()) == {"outputs": [3.0, 3.5, 4.0]}


def test_get_status_rest(pool: ServerPool) -> None:
    """testGetStatusREST"""
    url = f"http://{_rest(pool, HALF_PLUS_TWO)}/v1/models/default"
    assert json.loads(call_rest(url, None).decode()) == {
        "model_version_status": [
            {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }


def test_get_model_metadata_rest(pool: ServerPool) -> None:
    """testGetModelMetadataREST: the official half_plus_two_model_metadata.json, compared order-free."""
    url = f"http://{_rest(pool, HALF_PLUS_TWO)}/v1/models/default/metadata"
    resp_data = call_rest(url, None)
    expected_metadata = json.loads(MODEL_METADATA.read_text())
    assert sorted_object(json.loads(resp_data.decode())) == sorted_object(expected_metadata)


def test_prometheus_endpoint(pool: ServerPool) -> None:
    """testPrometheusEndpoint"""
    rest = pool.run("default", HALF_PLUS_TWO, monitoring_config_file=MONITORING_CONFIG)[2]
    resp_data = call_rest(f"http://{rest}/monitoring/prometheus/metrics", None)
    assert "# TYPE" in resp_data.decode("utf-8")


def test_predict_uds(pool: ServerPool) -> None:
    """testPredictUDS: Predict over the server's --grpc_socket_path."""
    proc = pool.run("default", HALF_PLUS_TWO)[0]
    verify_predict_request(
        f"unix:{proc.grpc_socket_path}",  # type: ignore[attr-defined]
        expected_output=3.0,
        specify_output=False,
        expected_version=get_model_version(HALF_PLUS_THREE),
    )


# ---- SavedModels written at test time ------------------------------------------------------------------
def test_tf_saved_model_save(pool: ServerPool, written_models: Path) -> None:
    """test_tf_saved_model_save: y = v1 * v2 * x with v1 = 3, v2 = 2."""
    base_path = written_models / "tf_saved_model_save"
    address = pool.run("default", base_path)[1]
    verify_predict_request(
        address, expected_output=12.0, specify_output=False, expected_version=get_model_version(base_path)
    )


def test_tf_saved_model_save_multiple_signatures(pool: ServerPool, written_models: Path) -> None:
    """test_tf_saved_model_save_multiple_signatures"""
    base_path = written_models / "tf_saved_model_save_multiple_signatures"
    address = pool.run("default", base_path)[1]
    expected_version = get_model_version(base_path)
    verify_predict_request(
        address, expected_output=2.0, expected_version=expected_version, signature_name="custom_signature_key"
    )
    verify_predict_request(address, expected_output=1.0, expected_version=expected_version)


@pytest.mark.parametrize(
    "case",
    ["keras_sequential_saved_model_save", "distrat_keras_sequential_saved_model_save"],
    ids=["test_sequential_keras_saved_model_save", "test_distrat_sequential_keras_saved_model_save"],
)
def test_keras_sequential_saved_model_save(pool: ServerPool, written_models: Path, case: str) -> None:
    """A Keras Sequential model (identity; with tf.distribute a Dense of ones first) fed x = [[2.0]]."""
    base_path = written_models / case
    address = pool.run("default", base_path)[1]
    verify_predict_request(
        address,
        batch_input=True,
        specify_output=False,
        expected_output=2.0,
        expected_version=get_model_version(base_path),
    )


# ---- not applicable to this server (see README.md) -----------------------------------------------------
NOT_APPLICABLE = {
    "test_profiler_service_with_valid_trace_request": "needs TensorFlow's profiler gRPC service "
    "(tensorflow.ProfilerService) on the model server's gRPC port, which this server does not host",
    "test_tf_text": "the tf_text_regression model needs TF Text's custom ops (tensorflow-text is not a "
    "dependency), and its saved_model.pb is absent from the repository snapshot",
}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, marks=pytest.mark.skip(reason=f"{case}: {why}"), id=case)
        for case, why in NOT_APPLICABLE.items()
    ],
)
def test_not_applicable(case: str) -> None:
    pytest.fail(f"{case} is listed as not applicable and must stay skipped")
