"""``POST /v1/models/{name}:explain`` end to end: the real gateway in front of the real modelserver on the
exported models, whose ``explain`` signature it calls with Predict. The attributions must be complete
(sum to score - baseline_score), aligned with what was sent, and the class the one ``:classify`` names."""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import httpx
import pytest
from PIL import Image

from devtools.fashion import FASHION_LABELS, encode, fashion_test_images

pytestmark = pytest.mark.e2e
RELATIVE, FLOOR = 0.05, 0.002  # completeness at the default 32 steps (tests/export/test_explain.py)


def _complete(item: dict, floor: float = FLOOR) -> bool:
    delta = item["score"] - item["baseline_score"]
    return abs(item["total"] - delta) <= RELATIVE * abs(delta) + floor


@pytest.fixture(scope="module")
def images(data_dir: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [
        ("file", (f"{i}.png", encode(image, "PNG"), "image/png"))
        for i, (image, _label) in enumerate(fashion_test_images(data_dir, 3))
    ]


def test_images_get_per_pixel_attributions_a_heat_layer_and_the_classify_label(
    http: httpx.Client, images: list[tuple[str, tuple[str, bytes, str]]]
) -> None:
    reply = http.post("/v1/models/fashion:explain", files=images)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["signature"] == "explain" and body["baseline"] == "black image" and body["steps"] == 32
    classified = http.post("/v1/models/fashion:classify", files=images).json()["predictions"]
    for item, answer in zip(body["predictions"], classified, strict=True):
        assert item["label"] == answer["label"] and item["class_id"] == FASHION_LABELS.index(answer["label"])
        assert math.isclose(item["score"], answer["score"], rel_tol=1e-4)
        assert len(item["attributions"]) == 28 and len(item["attributions"][0][0]) == 1
        assert _complete(item), item["total"]
        layer = Image.open(io.BytesIO(base64.b64decode(item["heatmap"])))
        assert layer.format == "PNG" and layer.mode == "RGBA" and layer.size == (224, 224)


def test_a_named_class_and_steps_are_explained(
    http: httpx.Client, images: list[tuple[str, tuple[str, bytes, str]]]
) -> None:
    reply = http.post("/v1/models/fashion:explain", params={"class": "Trouser", "steps": 8}, files=images[:1])
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["steps"] == 8
    assert body["predictions"][0]["class_id"] == 1 and body["predictions"][0]["label"] == "Trouser"


def test_format_png_is_the_overlay_of_one_image(
    http: httpx.Client, images: list[tuple[str, tuple[str, bytes, str]]]
) -> None:
    reply = http.post("/v1/models/fashion:explain", params={"format": "png"}, files=images[:1])
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "image/png"
    picture = Image.open(io.BytesIO(reply.content))
    assert picture.size == (224, 224)
    many = http.post("/v1/models/fashion:explain", params={"format": "png"}, files=images)
    assert many.status_code == 400 and "one image" in many.text


def test_texts_get_their_tokens_with_weights(http: httpx.Client) -> None:
    texts = ["WINNER!! Call 09061701461 to claim your prize", "ok see you at lunch"]
    reply = http.post("/v1/models/text:explain", json={"texts": texts})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["baseline"] == "empty-string embedding"
    first, second = body["predictions"]
    assert [t["token"] for t in first["tokens"]] == [
        "winner", "!", "!", "call", "<longnum>", "to", "claim", "your", "prize",
    ]  # fmt: skip
    assert [t["token"] for t in second["tokens"]] == ["ok", "see", "you", "at", "lunch"]
    for item in body["predictions"]:
        assert item["label"] in ("ham", "spam")
        assert math.isclose(sum(t["weight"] for t in item["tokens"]), item["total"], abs_tol=1e-5)
        assert _complete(item)


def test_records_get_each_features_contribution_in_dollars(http: httpx.Client) -> None:
    record = {
        "longitude": -122.23,
        "latitude": 37.88,
        "housing_median_age": 41,
        "total_rooms": 880,
        "total_bedrooms": None,
        "population": 322,
        "households": 126,
        "median_income": 8.3252,
    }
    reply = http.post("/v1/models/housing:explain", json={"records": [record]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["unit"] == "USD" and body["baseline"] == "training mean"
    (item,) = body["predictions"]
    assert item["class_id"] is None and item["label"] is None
    features = {f["feature"]: f for f in item["features"]}
    assert list(features) == list(record)
    assert features["total_bedrooms"]["value"] is None and features["median_income"][
        "value"
    ] == pytest.approx(8.3252)
    assert all(f["baseline"] is not None for f in item["features"])
    assert _complete(item, floor=0.0), item
    regressed = http.post("/v1/models/housing:regress", json={"records": [record]}).json()
    assert item["score"] == pytest.approx(regressed["predictions"][0]["value"], rel=1e-4)


def test_a_model_without_an_explain_signature_gets_a_400_that_says_so(http: httpx.Client) -> None:
    reply = http.post("/v1/models/half:explain", json={"records": [{"x": 1.0}]})
    assert reply.status_code == 400
    assert "no explain signature" in reply.json()["error"]["message"]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"steps": 1000}, "over this model's limit of 256"),
        ({"class": "Sandal"}, "not one of 'text'"),
        ({"format": "png"}, "one image"),
        ({"steps": 0}, "steps"),
    ],
)
def test_bad_explain_parameters_get_a_clear_4xx(http: httpx.Client, params: dict, fragment: str) -> None:
    reply = http.post("/v1/models/text:explain", params=params, json={"texts": ["hello"]})
    assert reply.status_code in (400, 422), reply.text
    assert fragment in reply.text
