"""TF Lite versions (``--prefer_tflite_model``) end to end: a real ``python -m modelserver`` serving TF Serving's
own ``saved_model_half_plus_two_tflite_with_sigdef`` (y = 0.5 x + 2, its SignatureDef in the flatbuffer's
metadata) over gRPC, REST and the Open Inference Protocol, with batching, warm-up and a hot swap to the
model without signature metadata; plus the loader's RAM estimate and signature reading in process."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import pytest
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from devtools import tiny_models
from devtools.servers import ModelServerHandle, start_modelserver
from modelserver.errors import ServingError
from modelserver.runtime.loader import Loader
from modelserver.runtime.tflite import TfLiteServable, load_tflite
from modelserver.runtime.warmup import WarmupOptions, replay_warmup
from tfs_protos.tensorflow.core.protobuf import meta_graph_pb2
from tfs_protos.tensorflow_serving.apis import prediction_log_pb2

TESTDATA = Path(__file__).resolve().parents[1] / "tfs_conformance" / "testdata"
WITH_SIGDEF = TESTDATA / "saved_model_half_plus_two_tflite_with_sigdef" / "00000123"
PLAIN = TESTDATA / "saved_model_half_plus_two_tflite" / "00000123"
DEADLINE = 120.0  # hang guard for the hot swap


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ModelServerHandle, Path]]:
    root = tmp_path_factory.mktemp("tflite")
    base = root / "half"
    shutil.copytree(WITH_SIGDEF, base / "1")
    tiny_models.write_warmup(base / "1", [tiny_models.predict_log({"x": [[1.0]]})])
    flags = [
        "--prefer_tflite_model=true",
        "--num_tflite_pools=2",
        "--enable_batching",
        "--file_system_poll_wait_seconds=1",
    ]
    with start_modelserver(
        model_name="half", model_base_path=base, extra_flags=flags, log_path=root / "modelserver.log"
    ) as server:
        yield server, base


def _predict(address: str, values: list[float]) -> predict_pb2.PredictResponse:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half"
    x = request.inputs["x"]
    x.dtype = 1  # DT_FLOAT
    x.tensor_shape.dim.add(size=len(values))
    x.tensor_shape.dim.add(size=1)
    x.float_val.extend(values)
    with grpc.insecure_channel(address) as channel:
        return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)


def test_grpc_predict_and_metadata(served: tuple[ModelServerHandle, Path]) -> None:
    server, _ = served
    reply = _predict(server.grpc_target, [2.0])
    assert list(reply.outputs["y"].float_val) == [3.0] and reply.model_spec.version.value == 1
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "half"
    with grpc.insecure_channel(server.grpc_target) as channel:
        metadata = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(
            request, timeout=60
        )
    signatures = get_model_metadata_pb2.SignatureDefMap()
    metadata.metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    assert signature.method_name == "tensorflow/serving/predict"
    assert signature.inputs["x"].name == "tflite_input"  # "tflite_input:0" in the metadata: the legacy name
    assert signature.outputs["y"].name == "y"


def test_rest_batch_resizes_the_interpreter(served: tuple[ModelServerHandle, Path]) -> None:
    server, _ = served
    with httpx.Client(base_url=server.url, timeout=60) as http:
        answer = http.post("/v1/models/half:predict", json={"instances": [[1.0], [2.0], [3.0]]})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"predictions": [[2.5], [3.0], [3.5]]}
        status = http.get("/v1/models/half").json()
        assert status["model_version_status"][0]["state"] == "AVAILABLE"
        regress = http.post("/v1/models/half:regress", json={"examples": [{"x": 1.0}]})
        assert regress.status_code == 400  # a predict signature, as on TF Serving
        oip = http.post(
            "/v2/models/half/infer",
            json={"inputs": [{"name": "x", "shape": [2, 1], "datatype": "FP32", "data": [4.0, 6.0]}]},
        )
        assert oip.status_code == 200, oip.text
        assert oip.json()["outputs"][0]["data"] == [4.0, 5.0]


def test_concurrent_calls_share_the_interpreter_pool(served: tuple[ModelServerHandle, Path]) -> None:
    server, _ = served
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda i: _predict(server.grpc_target, [float(i)]), range(64)))
    assert [r.outputs["y"].float_val[0] for r in replies] == [0.5 * i + 2 for i in range(64)]


def test_warmup_ran_and_hot_swap_to_a_model_without_metadata(served: tuple[ModelServerHandle, Path]) -> None:
    server, base = served
    assert "version 1: warmed up with 1 requests" in server.log_text()
    tiny_models.publish(PLAIN, base, 2)
    give_up = time.monotonic() + DEADLINE
    while _predict(server.grpc_target, [2.0]).model_spec.version.value != 2:
        assert time.monotonic() < give_up, server.log_text()[-2000:]
        time.sleep(0.2)
    assert list(_predict(server.grpc_target, [4.0]).outputs["y"].float_val) == [4.0]


def test_loader_estimate_signatures_and_fallback(tmp_path: Path) -> None:
    off = WarmupOptions(enabled=False, num_request_iterations=0, method_name_check=False)
    loader = Loader("m", 1, PLAIN, off, prefer_tflite=True, tflite_interpreters=3)
    size = (PLAIN / "model.tflite").stat().st_size
    assert loader.estimate_ram_bytes() == size * 4 + 3 * (1 << 20)
    servable = loader.load()
    assert isinstance(servable, TfLiteServable) and servable.interpreters == 3
    signature: meta_graph_pb2.SignatureDef = servable.signature("")
    assert (sorted(signature.inputs), sorted(signature.outputs)) == (["x"], ["y"])  # built from the tensors
    assert [d.size for d in signature.inputs["x"].tensor_shape.dim] == [1, 1]
    servable.close()
    # without the flag, or without model.tflite, the SavedModel path is taken
    assert not Loader("m", 1, PLAIN, off).is_tflite
    assert not Loader("m", 1, tmp_path, off, prefer_tflite=True).is_tflite


def test_warmup_skips_records_for_signatures_the_tflite_file_lacks(tmp_path: Path) -> None:
    """The export writes classify/regress records that only its SavedModel has: a TF Lite version skips them."""
    version = tmp_path / "1"
    shutil.copytree(PLAIN, version)
    classify = prediction_log_pb2.PredictionLog()
    classify.classify_log.request.model_spec.signature_name = "classify"
    tiny_models.write_warmup(version, [tiny_models.predict_log({"x": [[1.0]]}), classify.SerializeToString()])
    servable = load_tflite("m", 1, version, 1, 0)
    assert replay_warmup(servable, WarmupOptions(skip_unknown_signatures=True)) == 1
    with pytest.raises(ServingError, match='Serving signature key "classify" not found'):
        replay_warmup(servable, WarmupOptions())
    loaded = Loader("m", 1, version, WarmupOptions(), prefer_tflite=True).load()  # the loader skips them
    assert isinstance(loaded, TfLiteServable)
