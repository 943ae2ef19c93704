"""End to end: the real gateway process in front of the real modelserver on exported models.

No mocks: images, texts and records go over HTTP to ``python -m gateway``, which calls
``python -m modelserver`` over gRPC. The exported test models are small (a slice, one epoch), so image
accuracy is checked against the model's own test accuracy from its model card, and - the real check of the
preprocessing - the labels through PNG upload must match the model's answers on the raw IDX pixels.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import grpc
import httpx
import pytest
from PIL import Image

from devtools.fashion import FASHION_LABELS, encode, fashion_test_images
from devtools.servers import Gateway
from gateway.upstream.tensors import float_tensor, to_list
from tfs_protos.tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

pytestmark = pytest.mark.e2e
COUNT = 64


def _files(images: list[Image.Image], fmt: str, ext: str, **options: object) -> list[tuple[str, tuple]]:
    return [
        ("file", (f"{i}.{ext}", encode(im, fmt, **options), f"image/{ext}")) for i, im in enumerate(images)
    ]


def _raw_predictions(modelserver: object, images: list[Image.Image]) -> list[int]:
    """The model's own top class on the IDX pixels scaled to [0, 1] (no gateway involved)."""
    values = [b / 255.0 for im in images for b in im.tobytes()]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "fashion"
    request.inputs["image"].CopyFrom(float_tensor(values, [len(images), 28, 28, 1]))
    with grpc.insecure_channel(modelserver.grpc_target) as channel:  # type: ignore[attr-defined]
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    probs = to_list(reply.outputs["probabilities"])
    return [max(range(10), key=lambda c: probs[i * 10 + c]) for i in range(len(images))]  # type: ignore[operator]


@pytest.fixture(scope="module")
def fashion(data_dir: Path) -> tuple[list[Image.Image], list[int]]:
    pairs = fashion_test_images(data_dir, COUNT)
    return [p[0] for p in pairs], [p[1] for p in pairs]


@pytest.fixture(scope="module")
def card_accuracy(live_repo: Path) -> float:
    card = json.loads((live_repo / "fashion" / "1" / "model_card.json").read_text())
    return float(card["metrics"]["accuracy"])


@pytest.mark.parametrize(("fmt", "ext", "agree"), [("PNG", "png", 0.98), ("JPEG", "jpeg", 0.85)])
def test_fashion_images_get_the_models_labels(
    http: httpx.Client,
    modelserver: object,
    fashion: tuple[list[Image.Image], list[int]],
    card_accuracy: float,
    fmt: str,
    ext: str,
    agree: float,
) -> None:
    images, truth = fashion
    options = {"quality": 92} if fmt == "JPEG" else {}
    reply = http.post(
        "/v1/models/fashion:classify", params={"k": 3}, files=_files(images, fmt, ext, **options)
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model"] == "fashion" and body["version"] >= 1
    got = [FASHION_LABELS.index(p["label"]) for p in body["predictions"]]
    assert [p["input"] for p in body["predictions"]] == [f"{i}.{ext}" for i in range(COUNT)]
    assert all(len(p["top"]) == 3 and p["top"][0]["label"] == p["label"] for p in body["predictions"])
    raw = _raw_predictions(modelserver, images)
    assert sum(g == r for g, r in zip(got, raw, strict=True)) / COUNT >= agree
    accuracy = sum(g == t for g, t in zip(got, truth, strict=True)) / COUNT
    assert accuracy >= min(0.8, card_accuracy - 0.15), (accuracy, card_accuracy)


def test_large_colour_photo_is_resized_and_classified(http: httpx.Client, fashion: tuple) -> None:
    # A 4000x3000 RGB "photo": a garment from the test set, dark on a light table, blown up.
    garment = Image.eval(fashion[0][1], lambda p: 255 - p).resize((2400, 2400)).convert("RGB")
    photo = Image.new("RGB", (4000, 3000), (235, 230, 220))
    photo.paste(garment, (800, 300))
    data = encode(photo, "JPEG", quality=85)
    reply = http.post("/v1/models/fashion:classify", files={"file": ("photo.jpg", data, "image/jpeg")})
    assert reply.status_code == 200, reply.text
    assert reply.json()["predictions"][0]["label"] in FASHION_LABELS


def test_predict_returns_raw_outputs_per_image(http: httpx.Client, fashion: tuple) -> None:
    reply = http.post("/v1/models/fashion:predict", files=_files(fashion[0][:2], "PNG", "png"))
    assert reply.status_code == 200, reply.text
    rows = reply.json()["predictions"]
    assert len(rows) == 2 and all(len(r["probabilities"]) == 10 for r in rows)
    assert abs(sum(rows[0]["probabilities"]) - 1.0) < 1e-3


def test_text_model_classifies_texts(http: httpx.Client) -> None:
    texts = [
        "WINNER!! You have won a free prize, call 09061701461 now to claim",
        "Are we still on for lunch?",
    ]
    reply = http.post("/v1/models/text:classify", json={"texts": texts}, params={"k": 2})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model"] == "text" and body["version"] == 1
    assert [p["input"] for p in body["predictions"]] == ["texts[0]", "texts[1]"]
    for p in body["predictions"]:
        assert {t["label"] for t in p["top"]} == {"ham", "spam"}
        assert abs(sum(t["score"] for t in p["top"]) - 1.0) < 1e-3


def test_housing_records_regress_and_predict(http: httpx.Client) -> None:
    full = {
        "longitude": -122.23,
        "latitude": 37.88,
        "housing_median_age": 41,
        "total_rooms": 880,
        "total_bedrooms": 129,
        "population": 322,
        "households": 126,
        "median_income": 8.3252,
    }
    records = [full, {"median_income": 2.5, "latitude": 34.0}]
    reply = http.post("/v1/models/housing:regress", json={"records": records})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model"] == "housing" and body["version"] == 1
    assert body["unit"] == "USD"  # from the contract's output description
    values = [p["value"] for p in body["predictions"]]
    assert len(values) == 2 and all(0 < v < 2_000_000 for v in values)
    predicted = http.post("/v1/models/housing:predict", json={"records": records})
    assert predicted.status_code == 200, predicted.text
    again = [p["median_house_value"] for p in predicted.json()["predictions"]]
    assert again == pytest.approx(values, rel=1e-3)


def _bomb() -> bytes:
    # 6000x6000 = 36 M pixels (limit 30 M), a few KB as PNG.
    return encode(Image.new("L", (6000, 6000)), "PNG")


def _png(size: tuple[int, int] = (28, 28)) -> bytes:
    return encode(Image.new("L", size), "PNG")


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "code"),
    [
        (
            "/v1/models/fashion:classify",
            {"files": {"file": ("big.png", b"\x89PNG" + b"0" * (4 * 1024 * 1024 + 10))}},
            413,
            "payload_too_large",
        ),
        ("/v1/models/fashion:classify", {"files": {"file": ("bomb.png", _bomb())}}, 413, "too_many_pixels"),
        (
            "/v1/models/fashion:classify",
            {"files": {"file": ("a.txt", b"hello, not an image")}},
            415,
            "unsupported_media_type",
        ),
        ("/v1/models/fashion:classify", {"files": {"file": ("empty.png", b"")}}, 400, "bad_request"),
        (
            "/v1/models/fashion:classify",
            {"files": [("file", (f"{i}.png", _png())) for i in range(65)]},
            400,
            None,
        ),
        (
            "/v1/models/fashion:classify",
            {"data": {"x": "1"}, "files": {"other": ("a.png", _png())}},
            400,
            "bad_request",
        ),
        ("/v1/models/text:classify", {"json": {"texts": []}}, 400, "bad_request"),
        ("/v1/models/text:classify", {"json": {"texts": "hi"}}, 400, "bad_request"),
        ("/v1/models/text:classify", {"json": {"text": ["hi"]}}, 400, "bad_request"),
        (
            "/v1/models/text:classify",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "bad_request",
        ),
        (
            "/v1/models/text:classify",
            {"content": b"hi", "headers": {"content-type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        ("/v1/models/housing:regress", {"json": {"records": [{"rooms": 3}]}}, 400, "bad_request"),
        (
            "/v1/models/housing:regress",
            {"json": {"records": [{"median_income": "lots"}]}},
            400,
            "bad_request",
        ),
        ("/v1/models/text:classify", {"files": {"file": ("a.png", _png())}}, 415, "unsupported_media_type"),
        ("/v1/models/nope:classify", {"files": {"file": ("a.png", _png())}}, 404, "model_not_found"),
        (
            "/v1/models/fashion:classify?version=99",
            {"files": {"file": ("a.png", _png())}},
            404,
            "model_not_found",
        ),
        (
            "/v1/models/fashion:classify?label=nolabel",
            {"files": {"file": ("a.png", _png())}},
            404,
            "model_not_found",
        ),
        (
            "/v1/models/fashion:classify?version=1&label=x",
            {"files": {"file": ("a.png", _png())}},
            400,
            "bad_request",
        ),
        ("/v1/models/fashion:classify?k=0", {"files": {"file": ("a.png", _png())}}, 422, "validation"),
    ],
    ids=[
        "too-big",
        "bomb",
        "not-image",
        "empty",
        "too-many-files",
        "no-file-field",
        "no-texts",
        "texts-not-list",
        "wrong-key",
        "bad-json",
        "wrong-content-type",
        "unknown-feature",
        "non-numeric",
        "image-to-text-model",
        "unknown-model",
        "unknown-version",
        "unknown-label",
        "version-and-label",
        "bad-k",
    ],
)
def test_bad_input_gets_a_clear_error(
    http: httpx.Client, path: str, kwargs: dict, status: int, code: str | None
) -> None:
    reply = http.post(path, **kwargs)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["message"] and "Traceback" not in reply.text
    if code is not None:
        assert error["code"] == code


def test_gateway_survives_bad_input(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").json()["ready"] is True


def test_gif_webp_bmp_uploads_work(http: httpx.Client, fashion: tuple) -> None:
    image = fashion[0][0]
    files = [
        ("file", ("a.gif", encode(image, "GIF"))),
        ("file", ("a.webp", encode(image, "WEBP", lossless=True))),
        ("file", ("a.bmp", encode(image, "BMP"))),
    ]
    reply = http.post("/v1/models/fashion:classify", files=files)
    assert reply.status_code == 200, reply.text
    assert len({p["label"] for p in reply.json()["predictions"]}) == 1


def test_models_listing_and_detail(http: httpx.Client) -> None:
    listing = http.get("/v1/models").json()["models"]
    assert {m["name"] for m in listing} == {"fashion", "text", "housing", "half"}
    assert all(any(v["state"] == "AVAILABLE" for v in m["versions"]) for m in listing)
    detail = http.get("/v1/models/fashion").json()
    assert detail["labels"] == FASHION_LABELS and detail["contract_source"] == "signature"
    assert detail["inputs"]["image"]["height"] == 28
    assert set(detail["signatures"]) >= {"serving_default", "classify", "contract"}
    housing = http.get("/v1/models/housing").json()
    assert "median_income" in housing["inputs"] and housing["task"] == "regression"
    assert http.get("/v1/models/nope").status_code == 404


def test_openapi_and_metrics(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    assert {
        "/v1/models/{name}:classify",
        "/v1/models/{name}:predict",
        "/v1/models/{name}:regress",
        "/v1/models",
        "/v1/models/{name}",
        "/v1/admin/models/{name}:promote",
    } <= set(paths)
    text = http.get("/metrics").text
    assert 'gateway_requests_total{method="POST",model="fashion",route="/v1/models/{name}:classify"' in text
    assert "gateway_upstream_seconds_bucket" in text and "gateway_errors_total" in text


def test_image_error_bodies_are_json(gateway: Gateway) -> None:
    # A truncated PNG: identified by Pillow, fails while decoding.
    data = _png((64, 64))[:60]
    reply = httpx.post(
        f"{gateway.url}/v1/models/fashion:classify", files={"file": ("t.png", io.BytesIO(data))}
    )
    assert reply.status_code == 415 and reply.json()["error"]["code"] == "unsupported_media_type"


def test_model_without_contract_signature_works_from_metadata(http: httpx.Client) -> None:
    # TF Serving's half_plus_two: y = 0.5 * x + 2, no contract signature, no labels.
    detail = http.get("/v1/models/half").json()
    assert detail["contract_source"] == "derived" and detail["inputs"]["x"]["kind"] == "numeric"
    records = {"records": [{"x": 2.0}, {"x": 4.0}]}
    regressed = http.post("/v1/models/half:regress", json=records)
    assert regressed.status_code == 200, regressed.text
    assert [p["value"] for p in regressed.json()["predictions"]] == [3.0, 4.0]
    predicted = http.post("/v1/models/half:predict", json=records).json()
    assert predicted["predictions"] == [{"y": 3.0}, {"y": 4.0}] and predicted["version"] == 1
    assert http.post("/v1/models/half:classify", json=records).status_code == 400


def test_concurrent_uploads_each_get_their_own_answer(
    gateway: Gateway, http: httpx.Client, fashion: tuple[list[Image.Image], list[int]]
) -> None:
    # Concurrent single-image uploads may share one Predict (gateway.upstream.coalesce): each reply must still be the
    # one its image gets alone (to float32 rounding: TensorFlow's kernels sum in another order per batch size).
    pngs = [encode(image, "PNG") for image in fashion[0][:24]]
    path = "/v1/models/fashion:predict"

    def alone(data: bytes) -> list[float]:
        reply = http.post(path, files={"file": ("i.png", data)})
        assert reply.status_code == 200, reply.text
        (prediction,) = reply.json()["predictions"]
        return prediction["probabilities"]  # type: ignore[no-any-return]

    expected = [alone(data) for data in pngs]

    async def together() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=60.0) as client:
            posts = (client.post(path, files={"file": ("i.png", data)}) for data in pngs * 4)
            return await asyncio.gather(*posts)

    for index, reply in enumerate(asyncio.run(together())):
        assert reply.status_code == 200, reply.text
        (prediction,) = reply.json()["predictions"]
        assert prediction["probabilities"] == pytest.approx(expected[index % len(pngs)], abs=1e-5), index
    assert "gateway_coalesced_requests_count" in http.get("/metrics").text
