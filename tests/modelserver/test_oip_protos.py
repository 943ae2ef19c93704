"""The vendored OIP modules: current with protos/kserve/grpc_predict_v2.proto, and identical in descriptor to
the KServe SDK's own (all copies share one process)."""

from __future__ import annotations

import subprocess

from devtools.procs import REPO_ROOT
from tests.support.oip_venv import oip_python


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(oip_python()), *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )


def test_vendored_oip_modules_are_up_to_date() -> None:
    result = _run("scripts/vendor_oip_protos.py", "--check")
    assert result.returncode == 0, f"re-run scripts/vendor_oip_protos.py:\n{result.stdout}{result.stderr}"


def test_ours_and_kserves_share_one_process() -> None:
    result = _run(
        "-c",
        "from kserve.protocol.grpc import grpc_predict_v2_pb2 as k\n"
        "from oip_protos import grpc_predict_v2_pb2 as m\n"
        "assert k.DESCRIPTOR.serialized_pb == m.DESCRIPTOR.serialized_pb\n"
        "assert k.ModelInferRequest is m.ModelInferRequest\n",
    )
    assert result.returncode == 0, result.stderr
