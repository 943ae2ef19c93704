"""The OIP clients venv (``make oip-clients``: ``.venv-oip``) seen from the test process: where its Python is,
and ``run_client`` to run one plan of ``tests/support/oip_clients.py`` in it (one client per process)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devtools.procs import REPO_ROOT

__all__ = ["OIP_PYTHON", "oip_python", "run_client"]

OIP_PYTHON = REPO_ROOT / os.environ.get("OIP_VENV", ".venv-oip") / "bin" / "python"


def oip_python() -> Path:
    """The venv's Python; skips the test (fails under CI=true) when ``make oip-clients`` has not run."""
    if not OIP_PYTHON.exists():
        message = f"{OIP_PYTHON} is missing: run `make oip-clients` (make test does)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return OIP_PYTHON


def run_client(client: str, http: str, grpc: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results of ``calls`` made by ``client`` (``oip_clients.CLIENTS``) against the given addresses."""
    plan = {"client": client, "http": http, "grpc": grpc, "calls": calls}
    done = subprocess.run(
        [str(oip_python()), str(REPO_ROOT / "tests" / "support" / "oip_clients.py")],
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO_ROOT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO_ROOT)},
    )
    assert done.returncode == 0, f"{client} failed:\n{done.stderr[-3000:]}"
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results
