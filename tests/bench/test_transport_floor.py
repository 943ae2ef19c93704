"""bench.baselines.transport_floor: the canned replies are shaped like the modelserver's fashion answers, the
ASGI app reads the body and answers, and the module stays free of TensorFlow (its cost is the transport's).
The process itself runs in the smoke run (tests/bench/test_harness.py, scenario ``floor``)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from bench.baselines.transport_floor import PREDICT_PATH, PROBABILITIES, create_rest_app, predict_reply
from tests.conftest import REPO_ROOT
from tfs_protos.tensorflow_serving.apis import predict_pb2


def test_grpc_reply_is_a_fashion_predict_response() -> None:
    reply = predict_pb2.PredictResponse.FromString(predict_reply(version=3))
    assert (reply.model_spec.name, reply.model_spec.version.value) == ("fashion", 3)
    tensor = reply.outputs["probabilities"]
    assert [d.size for d in tensor.tensor_shape.dim] == [1, 10]
    assert list(tensor.float_val) == pytest.approx(PROBABILITIES)
    assert sum(PROBABILITIES) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("POST", PREDICT_PATH, 200), ("GET", "/healthz", 200), ("GET", PREDICT_PATH, 404), ("POST", "/x", 404)],
)
def test_rest_app_routes(method: str, path: str, status: int) -> None:
    reply = TestClient(create_rest_app()).request(method, path, json={"instances": [[0.0] * 784]})
    assert reply.status_code == status


def test_rest_app_answers_canned_predictions() -> None:
    reply = TestClient(create_rest_app()).post(PREDICT_PATH, json={"instances": [[0.0] * 784]})
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"predictions": [list(PROBABILITIES)]}


def test_the_floor_imports_no_tensorflow() -> None:
    code = (
        "import sys; from bench.baselines import transport_floor as f; f.predict_reply(); f.create_rest_app(); "
        "import uvicorn, grpc; assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("sync_threads", [0, 4])
def test_the_floor_answers_over_grpc(sync_threads: int) -> None:
    """grpc.aio (0) or grpcio's synchronous server (``SYNC_THREADS``, the A/B lever of issue 30) answer the
    canned reply; ready once /healthz answers."""
    import time

    import grpc

    from bench.procs import free_port, http_get

    grpc_port, http_port = free_port(), free_port()
    argv = [sys.executable, "-m", "bench.baselines.transport_floor", str(grpc_port), str(http_port)]
    process = subprocess.Popen(argv + ([str(sync_threads)] if sync_threads else []), cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + 60  # a hang guard, not a bound
        while True:
            try:
                if http_get(f"http://127.0.0.1:{http_port}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "the floor did not start"
            time.sleep(0.1)
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            call = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
            assert call(b"", timeout=30) == predict_reply()
    finally:
        process.terminate()
        process.wait(timeout=30)
