"""bench.payloads: the request bodies are the bytes TensorFlow's own client code makes, built without
importing TensorFlow in the bench process (checked in a separate interpreter)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.payloads import first_house, first_sms, predict_request
from devtools.procs import REPO_ROOT


def _tf_request(model: str, inputs: dict[str, np.ndarray]) -> bytes:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "serving_default"
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return bytes(request.SerializeToString())


@pytest.mark.parametrize(
    "inputs",
    [
        {"image": np.random.default_rng(0).random((1, 28, 28, 1), dtype=np.float32)},
        {"a": np.arange(6, dtype=np.int64).reshape(2, 3), "b": np.array([7], dtype=np.int32)},
        {"c": np.array([1.5]), "d": np.array([[3]], dtype=np.uint8), "e": np.array([b"x", b""])},
    ],
)
def test_requests_are_byte_identical_to_tensorflows(inputs: dict[str, np.ndarray]) -> None:
    assert predict_request("m", inputs) == _tf_request("m", inputs)


def test_the_real_bodies_match_and_need_no_tensorflow(data_dir: Path, tmp_path: Path) -> None:
    house = {k: np.array([v], dtype=np.float32) for k, v in first_house(data_dir).items()}
    text = {"text": np.array([first_sms(data_dir).encode()])}
    assert predict_request("housing", house) == _tf_request("housing", house)
    assert predict_request("text", text) == _tf_request("text", text)
    code = (
        "import sys; from pathlib import Path; from bench.payloads import build_payloads;"
        f" build_payloads(Path({str(data_dir)!r}), Path(sys.argv[1]));"
        " print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_serving')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert out.stdout.strip() == "[]"
