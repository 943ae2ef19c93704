"""Fixtures for the bench tests.

- ``results``: a synthetic results dict shaped like one full run's (every load point and scenario), for the
  goal, report and plot tests; no process is started.
- ``run_smoke``: ``python -m bench --smoke --only ...`` as a subprocess on a model repository; returns the
  results JSON it wrote (fails with the run's output when it exits non-zero).
- ``load_tools``: skips when h2load / wrk are missing (``make bench-loadgen`` installs them), and fails
  instead when ``CI=true``, where they must be present.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT


def point(rps: float, p50: float, p99: float, errors: int = 0, requests: int | None = None) -> dict[str, Any]:
    total = requests if requests is not None else int(rps * 6) + errors
    return {
        "tool": "h2load",
        "url": "http://127.0.0.1:1/x",
        "concurrency": 1,
        "duration_s": 6.0,
        "requests": total,
        "ok": total - errors,
        "errors": errors,
        "rps": rps,
        "p50_ms": p50,
        "p90_ms": p50,
        "p99_ms": p99,
        "mean_ms": p50,
        "loadgen_cpu_s": 0.3,
        "server_cpu_s": 11.0,
        "notes": [],
        "loadgen_cores": 0.05,
        "server_cores": 1.8,
    }


@pytest.fixture
def results() -> dict[str, Any]:
    return {
        "started": "2026-11-23T14:00:00+00:00",
        "scale": "full",
        "settings": {"concurrencies": [1, 8, 64], "hotswap_s": 24.0},
        "environment": {"cores": 2, "cpu": "test cpu", "load_average_at_start": [0.5, 0.4, 0.3]},
        "models": {"fashion": {"version": 3}},
        "inprocess": {
            "batch1": {"batch": 1, "images_per_s": 2000.0, "ms_per_call": 0.5},
            "batch32": {"batch": 32, "images_per_s": 20000.0, "ms_per_call": 1.6},
        },
        "points": {
            "naive.c1": point(30, 30, 60),
            "naive.c64": point(20, 900, 4000, errors=12),
            "bentoml.c1": point(40, 24, 40),
            "bentoml.c64": point(700, 80, 200, errors=11),
            "ray.c1": point(90, 11.0, 20.0),
            "ray.c64": point(250, 200, 400),
            "kserve.c1": point(450, 2.0, 4.0),  # the best peer p50: 6.0 / 2.0 = 3x, missed
            "kserve.c64": point(430, 140, 300),  # the best peer c64 is BentoML (700): 3000 / 700, met
            "grpc.batching_on.c1": point(900, 1.0, 2.0),
            "grpc.batching_on.c64": point(8000, 7.5, 15.0),  # 0.4 x in-process, 400 x naive: met
            "rest.batching_on.c1": point(600, 6.0, 9.0),  # 6/24 = 0.25 > 0.2: missed
            "rest.batching_on.c64": point(3000, 20.0, 40.0),  # 0.375 x gRPC: missed; 4.3 x BentoML: met
            "gateway.upload.c1": point(400, 2.5, 5.0),  # added p50 1.5 ms: met
            "gateway.upload.c64": point(3500, 18.0, 30.0),  # 0.44 x gRPC: missed
            "floor.grpc.c1": point(3000, 0.33, 0.6),
            "floor.grpc.c64": point(10000, 6.0, 9.0),  # gRPC c64 8000: 0.8x of the floor
            "floor.rest.c1": point(4000, 0.25, 0.4),
            "floor.rest.c64": point(12000, 5.0, 8.0),
        },
        "hotswap": {
            "old_version": 3,
            "new_version": 4,
            "available_after_s": 0.8,
            "old_unloaded_after_s": 0.9,
            "failed": 0,
            "requests": 20000,
            "phases": {
                "before": {"requests": 6000, "p50_ms": 7.0, "p90_ms": 9.0, "p99_ms": 10.0, "mean_ms": 7.0},
                "during": {"requests": 400, "p50_ms": 7.0, "p90_ms": 30.0, "p99_ms": 200.0, "mean_ms": 15.0},
                "after": {"requests": 13600, "p50_ms": 7.0, "p90_ms": 9.0, "p99_ms": 10.0, "mean_ms": 7.0},
            },
            "timeline": [
                {"t_s": -0.5, "requests": 900, "p50_ms": 7.0, "p99_ms": 10.0},
                {"t_s": 0.0, "requests": 400, "p50_ms": 7.0, "p99_ms": 200.0},
            ],
        },
        "memory": {
            "baseline_rss": 600 * 2**20,
            "models": [
                {
                    "model": "fashion",
                    "version": 3,
                    "rss_after": 640 * 2**20,
                    "growth": 40 * 2**20,
                    "estimate": 22 * 2**20,
                    "estimate_error": -0.45,
                },
                {
                    "model": "housing",
                    "version": 1,
                    "rss_after": 650 * 2**20,
                    "growth": 10 * 2**20,
                    "estimate": 11 * 2**20,
                    "estimate_error": 0.1,
                },
            ],
        },
        "rss_bytes": {"gateway": 90 * 2**20, "ray": 1900 * 2**20, "kserve": 780 * 2**20},
        "pss_bytes": {"gateway": 80 * 2**20, "ray": 1500 * 2**20, "kserve": 700 * 2**20},
        "startup_s": {"ray": 11.0, "kserve": 4.5},
        "exposed": {"ray": {"listeners": ["[::]:40001", "0.0.0.0:40002"], "why": "Ray's gRPC servers"}},
        "versions": {"ray": "2.60.0", "kserve": "0.21.0"},
        "profiles": [
            {
                "target": "modelserver gRPC Predict",
                "samples": 500,
                "own": [["_call (dataplane.py)", 0.4]],
                "inclusive": [["predict (dataplane.py)", 0.7]],
                "error": "",
            }
        ],
        "skipped": {"bentoml": "example reason"},
        "verified": {
            "grpc.batching_on": "ok",
            "ray answer": "ok",
            "kserve answer": "class 3 where ours says 0",
        },
    }


@pytest.fixture(scope="session")
def load_tools() -> None:
    missing = [tool for tool in ("h2load", "wrk") if shutil.which(tool) is None]
    if missing:
        message = (
            f"{', '.join(missing)} missing: `make bench-loadgen` installs Debian's nghttp2-client and wrk"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def run_smoke(only: str, models_dir: Path, data_dir: Path, out: Path, timeout_s: float) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench", "--smoke", "--only", only]
    argv += ["--models-dir", str(models_dir), "--results-dir", str(out)]
    env = {**os.environ, "DATA_DIR": str(data_dir)}
    done = subprocess.run(
        argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (found,) = out.glob("20*.json")
    return dict(json.loads(found.read_text()))
