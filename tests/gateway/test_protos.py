"""tfs_protos: the vendored copy is current, the gateway never imports TensorFlow, and a process importing
both the vendored modules and real TensorFlow works (identical descriptors in protobuf's default pool)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from devtools.procs import REPO_ROOT

needs_tf = pytest.mark.skipif(
    importlib.util.find_spec("tensorflow_serving") is None,
    reason="the pinned tensorflow-serving-api is not installed",
)


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


@needs_tf
def test_vendored_protos_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/vendor_protos.py", "--check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"re-run scripts/vendor_protos.py:\n{result.stdout}{result.stderr}"


def test_gateway_app_never_imports_tensorflow() -> None:
    result = _run(
        "import sys, gateway.app, gateway.__main__; "
        "heavy = ('tensorflow', 'tensorflow_serving', 'numpy'); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in heavy); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@needs_tf
def test_vendored_and_real_tensorflow_coexist() -> None:
    # Vendored first, then TensorFlow's own modules (the pytest process itself covers the other order:
    # tests/export imports TensorFlow before tests/gateway imports the vendored modules).
    vendored = (
        "from tfs_protos.tensorflow_serving.apis import predict_pb2 as v, prediction_service_pb2_grpc\n"
        "from tfs_protos.tensorflow_serving.config import model_server_config_pb2\n"
    )
    real = "from tensorflow_serving.apis import predict_pb2 as r, prediction_service_pb2_grpc as rg\n"
    code = (
        vendored
        + real
        + (
            "req = v.PredictRequest(); req.model_spec.name = 'm'\n"
            "assert r.PredictRequest.FromString(req.SerializeToString()).model_spec.name == 'm'\n"
            "print('ok')\n"
        )
    )
    result = _run(code)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]
