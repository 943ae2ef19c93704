"""End to end: the gateway in front of a modelserver run with ``--prefer_tflite_model``, on the exported
fashion and housing versions (the export writes ``model.tflite`` beside each SavedModel).

A TF Lite version serves only the signatures written into its ``model.tflite`` (as on TF Serving's
TfLiteSession), and the export writes ``serving_default`` alone: there is no ``contract`` signature, so the
gateway takes the contract from the version's model card. The answers must equal those of the session's
gateway in front of the SavedModels (tests/gateway/conftest.py) within TF Lite's float32 bound, labels,
inversion and units included."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.exported import models_config
from devtools.fashion import encode, fashion_test_images
from devtools.servers import Gateway, start_gateway, start_modelserver

pytestmark = pytest.mark.e2e
MODELS = ("fashion", "housing")
TOLERANCE = 1e-4  # export.tflite's bound: TF Lite agrees with the SavedModel to float32 precision


@pytest.fixture(scope="module")
def tflite(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    root = tmp_path_factory.mktemp("tflite_repo")
    for name in MODELS:
        assert (model_repo / name / "1" / "model.tflite").is_file(), (
            f"the export wrote no {name} model.tflite"
        )
        shutil.copytree(model_repo / name / "1", root / name / "1")
    (root / "models.config").write_text(models_config(root, MODELS), encoding="utf-8")
    flags = ["--prefer_tflite_model=true"]
    with start_modelserver(
        root / "models.config", rest=False, extra_flags=flags, log_path=root / "modelserver.log"
    ) as server:
        env = {
            "GATEWAY_DEFAULT_MODEL_SERVER": server.grpc_target,
            "GATEWAY_MODEL_CONFIG_FILE": str(root / "models.config"),
        }
        gw: Gateway = start_gateway(env, root / "gateway.log")
        try:
            with gw.client() as client:
                yield client
        finally:
            gw.process.stop()


def test_the_tflite_version_serves_serving_default_and_its_card_is_the_contract(
    tflite: httpx.Client, http: httpx.Client
) -> None:
    for name in MODELS:
        lite, saved = tflite.get(f"/v1/models/{name}").json(), http.get(f"/v1/models/{name}").json()
        assert list(lite["signatures"]) == ["serving_default"]  # as TF Serving's TfLiteSession
        assert lite["contract_source"] == "card" and saved["contract_source"] == "signature"
        assert lite["contract"] == saved["contract"] and lite["labels"] == saved["labels"]


def test_uploads_get_the_savedmodels_answers(
    tflite: httpx.Client, http: httpx.Client, data_dir: Path
) -> None:
    files = [
        ("file", (f"{i}.png", encode(image, "PNG"), "image/png"))
        for i, (image, _) in enumerate(fashion_test_images(data_dir, 16))
    ]
    lite = tflite.post("/v1/models/fashion:classify?k=10", files=files)
    saved = http.post("/v1/models/fashion:classify?k=10", files=files)  # version 2: a copy of 1
    assert lite.status_code == 200 and saved.status_code == 200, (lite.text, saved.text)
    for ours, theirs in zip(lite.json()["predictions"], saved.json()["predictions"], strict=True):
        scores = {t["label"]: t["score"] for t in theirs["top"]}
        assert ours["label"] == theirs["label"]
        assert {t["label"]: pytest.approx(t["score"], abs=TOLERANCE) for t in ours["top"]} == scores


def _house(client: httpx.Client) -> dict[str, float]:
    """One block group: the example value of every housing input, from its contract."""
    inputs = client.get("/v1/models/housing").json()["contract"]["inputs"]
    return {name: entry["example"] for name, entry in inputs.items()}


def test_records_get_the_savedmodels_values_and_unit(tflite: httpx.Client, http: httpx.Client) -> None:
    records = {"records": [_house(tflite), {"median_income": 2.5, "latitude": 34.0}]}
    lite = tflite.post("/v1/models/housing:regress", json=records)
    saved = http.post("/v1/models/housing:regress", json=records)
    assert lite.status_code == 200 and saved.status_code == 200, (lite.text, saved.text)
    assert lite.json()["unit"] == saved.json()["unit"] == "USD"
    values = [p["value"] for p in saved.json()["predictions"]]
    assert [p["value"] for p in lite.json()["predictions"]] == pytest.approx(values, rel=1e-4)


def test_explain_says_the_tflite_version_does_not_serve_it(tflite: httpx.Client) -> None:
    reply = tflite.post("/v1/models/housing:explain", json={"records": [_house(tflite)]})
    assert reply.status_code == 400
    assert "does not serve its explain signature 'explain'" in reply.json()["error"]["message"]
