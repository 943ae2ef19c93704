"""The reference points the modelserver is measured against: the in-process signature call
(``bench.scenarios.inprocess.measure``) and the naive FastAPI server (``bench.baselines.naive_fastapi``),
both on the real export's tiny fashion model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from bench.baselines.naive_fastapi import create_app
from bench.scenarios.inprocess import measure


@pytest.fixture(scope="module")
def fashion_dir(model_repo: Path) -> Path:
    return model_repo / "fashion" / "1"


@pytest.fixture(scope="module")
def client(fashion_dir: Path) -> TestClient:
    return TestClient(create_app(str(fashion_dir)))


def test_inprocess_measures_each_batch_size(fashion_dir: Path) -> None:
    found = measure(fashion_dir, 0.05, batches=(1, 4))
    assert set(found) == {"batch1", "batch4", "execution"}
    assert found["batch4"]["calls"] >= 1
    assert found["batch4"]["images_per_s"] == pytest.approx(
        found["batch4"]["calls"] * 4 / found["batch4"]["seconds"]
    )
    # both execution paths measured at each batch size, and their ratio derived from the same figures
    execution = found["execution"]
    for batch in ("batch1", "batch4"):
        assert execution["session"][batch]["calls"] >= 1 and execution["function"][batch]["calls"] >= 1
        assert execution["session_over_function"][batch] == pytest.approx(
            execution["session"][batch]["ms_per_call"] / execution["function"][batch]["ms_per_call"]
        )


def test_inprocess_under_the_intra_op_rule_runs_in_a_child_with_a_caller_per_core(fashion_dir: Path) -> None:
    """The second thread rule through the child entry point the bench runs (TensorFlow sizes its intra-op pool
    once per process): batch 1 from one caller, batch 32 from the callers asked, each counted."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.scenarios.inprocess", str(fashion_dir), "0.05", "--intra-op-1", "2"],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=300,
        check=True,
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(found) == {"batch1", "batch32"}
    assert (found["batch1"]["callers"], found["batch32"]["callers"]) == (1, 2)
    assert found["batch32"]["calls"] >= 4  # at least twice from each caller
    assert found["batch32"]["images_per_s"] == pytest.approx(
        found["batch32"]["calls"] * 32 / found["batch32"]["seconds"]
    )
    assert found["batch32"]["cpu_ms_per_image"] > 0


def test_naive_server_answers_like_tf_serving_rest(client: TestClient) -> None:
    image = np.zeros((28, 28, 1), dtype=np.float32).tolist()
    reply = client.post("/v1/models/fashion:predict", json={"instances": [image, image]})
    assert reply.status_code == 200
    predictions = np.asarray(reply.json()["predictions"])
    assert predictions.shape == (2, 10)
    assert np.allclose(predictions.sum(axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize("body", [{"instances": [[1.0, 2.0, 3.0]]}, {"instances": "x"}, {"images": []}])
def test_naive_server_rejects_bad_input_with_a_message(client: TestClient, body: dict) -> None:
    reply = client.post("/v1/models/fashion:predict", json=body)
    assert reply.status_code in (400, 422)
    assert "detail" in reply.json()
