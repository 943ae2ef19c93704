"""The gateway calling the model server over the Open Inference Protocol (``GATEWAY_MODEL_PROTOCOLS``): a
second gateway process, every model set to ``oip``, in front of the same real modelserver as the default
(TF Serving API) gateway; both must give the same answers. Over OIP the gateway knows only the signature's
inputs, so it derives each model's contract (as for any SavedModel without a ``contract`` signature)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from devtools.fashion import encode, fashion_test_images
from devtools.servers import Gateway, start_gateway
from tests.gateway.conftest import MODELS

pytestmark = pytest.mark.e2e

HOUSE = {"longitude": -122.23, "latitude": 37.88, "housing_median_age": 41, "total_rooms": 880,
         "total_bedrooms": 129, "population": 322, "households": 126, "median_income": 8.3252}  # fmt: skip


@pytest.fixture(scope="module")
def oip_http(
    modelserver: object, live_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    logs = tmp_path_factory.mktemp("gateway_oip")
    env = {
        "GATEWAY_DEFAULT_MODEL_SERVER": modelserver.grpc_target,  # type: ignore[attr-defined]
        "GATEWAY_MODEL_CONFIG_FILE": str(live_repo / "models.config"),
        "GATEWAY_MODEL_PROTOCOLS": json.dumps(dict.fromkeys(MODELS, "oip")),
    }
    gateway: Gateway = start_gateway(env, logs / "gateway.log")
    try:
        with gateway.client() as client:
            yield client
    finally:
        gateway.process.stop()


@pytest.fixture(scope="module")
def images(data_dir: Path) -> list[Image.Image]:
    return [pair[0] for pair in fashion_test_images(data_dir, 4)]


def _files(images: list[Image.Image]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", (f"{i}.png", encode(im, "PNG"), "image/png")) for i, im in enumerate(images)]


def test_ready_over_oip(oip_http: httpx.Client) -> None:
    reply = oip_http.get("/readyz")
    assert reply.status_code == 200, reply.text
    assert set(reply.json()["models"]) == set(MODELS)


def test_fashion_predict_same_as_tf_serving_api(
    http: httpx.Client, oip_http: httpx.Client, images: list[Image.Image]
) -> None:
    answers = [client.post("/v1/models/fashion:predict", files=_files(images)) for client in (http, oip_http)]
    assert [a.status_code for a in answers] == [200, 200], answers[1].text
    tf_rows, oip_rows = (a.json()["predictions"] for a in answers)
    assert answers[1].json()["version"] == answers[0].json()["version"]
    for tf_row, oip_row in zip(tf_rows, oip_rows, strict=True):
        assert oip_row["probabilities"] == pytest.approx(tf_row["probabilities"], rel=1e-5, abs=1e-7)


def test_text_and_housing_same_as_tf_serving_api(http: httpx.Client, oip_http: httpx.Client) -> None:
    texts = {"texts": ["WINNER!! claim your free prize now", "Are we still on for lunch?"]}
    tf_text, oip_text = (c.post("/v1/models/text:predict", json=texts) for c in (http, oip_http))
    assert oip_text.status_code == 200, oip_text.text
    tf_probs = [row["probabilities"] for row in tf_text.json()["predictions"]]
    oip_probs = [row["probabilities"] for row in oip_text.json()["predictions"]]
    assert oip_probs == [pytest.approx(p, rel=1e-5) for p in tf_probs]
    records = {"records": [HOUSE, {"median_income": 2.5, "latitude": 34.0}]}
    tf_house, oip_house = (c.post("/v1/models/housing:regress", json=records) for c in (http, oip_http))
    assert oip_house.status_code == 200, oip_house.text
    values = [p["value"] for p in oip_house.json()["predictions"]]
    assert values == pytest.approx([p["value"] for p in tf_house.json()["predictions"]], rel=1e-5)


def test_unknown_version_over_oip_is_404(oip_http: httpx.Client) -> None:
    reply = oip_http.post("/v1/models/half:predict", params={"version": 9}, json={"records": [{"x": 1.0}]})
    assert reply.status_code == 404, reply.text
