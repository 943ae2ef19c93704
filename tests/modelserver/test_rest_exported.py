"""modelserver.protocols.tfs.rest end to end on the stack's exported models (fashion, text, housing from the ``model_repo``
fixture): predict in both layouts, classify and regress through their signatures, metadata, all over plain
HTTP against a real ``python -m modelserver``."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from devtools.fashion import FASHION_LABELS
from devtools.servers import ModelServerHandle, start_modelserver
from export.data import HOUSING_FEATURES

pytestmark = pytest.mark.e2e

HOUSING_INPUTS = list(HOUSING_FEATURES)
HOUSES = [
    {
        "longitude": -122.23,
        "latitude": 37.88,
        "housing_median_age": 41.0,
        "total_rooms": 880.0,
        "total_bedrooms": 129.0,
        "population": 322.0,
        "households": 126.0,
        "median_income": 8.3252,
    },
    {
        "longitude": -118.3,
        "latitude": 34.05,
        "housing_median_age": 20.0,
        "total_rooms": 2000.0,
        "total_bedrooms": float("nan"),
        "population": 1200.0,
        "households": 400.0,
        "median_income": 3.1,
    },
]


@pytest.fixture(scope="module")
def server(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServerHandle]:
    log = tmp_path_factory.mktemp("rest_exported") / "modelserver.log"
    with start_modelserver(model_repo / "models.config", log_path=log) as handle:
        yield handle


@pytest.fixture(scope="module")
def http(server: ModelServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60.0) as client:
        yield client


def _post(http: httpx.Client, path: str, body: dict[str, Any]) -> Any:
    reply = http.post(path, content=json.dumps(body).encode())  # json.dumps writes NaN as TF Serving reads it
    assert reply.status_code == 200, reply.text
    return reply.json()


def _images(count: int) -> np.ndarray:
    return np.random.default_rng(7).random((count, 28, 28, 1)).astype(np.float32)


def _assert_distributions(rows: Any, width: int) -> None:
    array = np.asarray(rows, dtype=np.float64)
    assert array.shape[1:] == (width,)
    assert np.all(array >= 0)
    np.testing.assert_allclose(array.sum(axis=1), 1.0, rtol=1e-4)


def test_fashion_predict_row_and_columnar_agree(http: httpx.Client) -> None:
    images = _images(3)
    rows = _post(http, "/v1/models/fashion:predict", {"instances": images.tolist()})["predictions"]
    _assert_distributions(rows, 10)
    columns = _post(http, "/v1/models/fashion:predict", {"inputs": {"image": images.tolist()}})["outputs"]
    np.testing.assert_allclose(np.asarray(columns), np.asarray(rows), rtol=1e-5)


def test_fashion_classify_returns_labelled_scores(http: httpx.Client) -> None:
    images = _images(2)
    examples = [{"image": image.ravel().astype(float).tolist()} for image in images]
    results = _post(http, "/v1/models/fashion:classify", {"signature_name": "classify", "examples": examples})
    assert len(results["results"]) == 2
    for pairs in results["results"]:
        assert [label for label, _ in pairs] == FASHION_LABELS
        assert math.isclose(sum(score for _, score in pairs), 1.0, rel_tol=1e-4)
    # the same images through predict give the same scores
    predictions = _post(http, "/v1/models/fashion:predict", {"instances": images.tolist()})["predictions"]
    scores = [[score for _, score in pairs] for pairs in results["results"]]
    np.testing.assert_allclose(scores, predictions, rtol=1e-4, atol=1e-6)


def test_text_predict_and_classify(http: httpx.Client) -> None:
    texts = ["WINNER!! Claim your free prize now, call 09061701461", "Are we still meeting for lunch today?"]
    predictions = _post(http, "/v1/models/text:predict", {"instances": texts})["predictions"]
    _assert_distributions(predictions, 2)
    examples = [{"text": text} for text in texts]
    results = _post(http, "/v1/models/text:classify", {"signature_name": "classify", "examples": examples})
    for pairs, row in zip(results["results"], predictions, strict=True):
        assert [label for label, _ in pairs] == ["ham", "spam"]
        np.testing.assert_allclose([score for _, score in pairs], row, rtol=1e-4, atol=1e-6)


def test_housing_predict_row_columnar_and_regress_agree(http: httpx.Client) -> None:
    rows = _post(http, "/v1/models/housing:predict", {"instances": HOUSES})["predictions"]
    assert len(rows) == 2 and all(math.isfinite(v) and v > 0 for v in rows)  # NaN = unknown, imputed
    columns = {name: [house[name] for house in HOUSES] for name in HOUSING_INPUTS}
    outputs = _post(http, "/v1/models/housing:predict", {"inputs": columns})["outputs"]
    np.testing.assert_allclose(outputs, rows, rtol=1e-5)
    # regress: a missing feature is unknown too
    examples = [dict(HOUSES[0]), {k: v for k, v in HOUSES[1].items() if k != "total_bedrooms"}]
    results = _post(http, "/v1/models/housing:regress", {"signature_name": "regress", "examples": examples})
    np.testing.assert_allclose(results["results"], rows, rtol=1e-4)


def test_housing_metadata_lists_the_eight_inputs(http: httpx.Client) -> None:
    reply = http.get("/v1/models/housing/metadata")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model_spec"] == {"name": "housing", "signature_name": "", "version": "1"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert sorted(signatures["serving_default"]["inputs"]) == sorted(HOUSING_INPUTS)
    assert signatures["regress"]["method_name"] == "tensorflow/serving/regress"


def test_contract_signature_has_no_rest_input_map(http: httpx.Client) -> None:
    # TF Serving's REST predict needs at least one input; clients read the contract over gRPC.
    reply = http.post("/v1/models/fashion:predict", content=b'{"signature_name": "contract", "inputs": {}}')
    assert reply.status_code == 400
    assert reply.json() == {"error": "Failed to get input map for signature: contract"}
