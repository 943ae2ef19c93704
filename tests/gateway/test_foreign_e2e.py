"""End to end: models this project did not design (``tests/gateway/foreign_models.py``: MobileNetV2 with
``Rescaling`` inside and a contract, a uint8-input CNN, a grayscale CNN, a Keras ``TextVectorization`` model
with a ``[-1, 1]`` string input, a two-image model), served by the real modelserver and gateway processes.

Each answer is compared with the SOURCE Keras model's own prediction on the same preprocessed input, computed
here with Pillow and NumPy from the rules the contract states (docs/architecture.md): within 1e-5, or 1e-3
where the picture was resized.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw

from devtools.exported import models_config
from devtools.procs import ServerProcess
from devtools.servers import Gateway, start_gateway, start_modelserver
from tests.gateway.conftest import ADMIN_TOKEN
from tests.gateway.foreign_models import FEATURES, MOBILENET_CONTRACT, NAMES, build

pytestmark = pytest.mark.e2e
RESIZED, EXACT = 1e-3, 1e-5


@dataclass
class Stack:
    models: dict[str, Any]
    modelserver: ServerProcess
    gateway: Gateway


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("foreign")
    models = build(root)
    config = root / "models.config"
    config.write_text(models_config(root, NAMES), encoding="utf-8")
    with start_modelserver(config, log_path=root / "modelserver.log") as server:
        env = {
            "GATEWAY_DEFAULT_MODEL_SERVER": server.grpc_target,  # type: ignore[attr-defined]
            "GATEWAY_MODEL_CONFIG_FILE": str(config),
            "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        }
        gateway = start_gateway(env, root / "gateway.log")
        try:
            yield Stack(models, server, gateway)
        finally:
            gateway.process.stop()


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with stack.gateway.client() as client:
        yield client


def picture(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    """A deterministic colourful scene: a gradient sky, a sun, a hill, a stripe."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    sky = np.stack([40 + 150 * y / height, 90 + 100 * x / width, 230 - 80 * y / height], axis=-1)
    image = Image.fromarray(sky.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    cx, cy, r = (int(v) for v in rng.integers([width // 4, height // 4, 4], [width // 2, height // 2, 12]))
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(250, 220, 40))
    draw.polygon([(0, height), (width // 2, height // 2), (width, height)], fill=(30, 140, 50))
    draw.rectangle((width // 8, 0, width // 8 + 3, height), fill=(200, 30, 30))
    return image.convert(mode)


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def decoded(data: bytes, mode: str = "RGB") -> Image.Image:
    """The upload in ``mode``; a colour JPEG for one channel is decoded straight to its luma (libjpeg's
    grayscale output, as TensorFlow's ``decode_jpeg(channels=1)`` does), not converted after decoding."""
    image = Image.open(io.BytesIO(data))
    image.draft(mode, image.size)
    return image.convert(mode)


def centre_crop(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Keep the aspect ratio of ``size``: the largest centred box, cut out, then resized (bilinear)."""
    w, h = image.size
    side_w, side_h = (
        (round(h * size[0] / size[1]), h) if w * size[1] > h * size[0] else (w, round(w * size[1] / size[0]))
    )
    left, top = (w - side_w) // 2, (h - side_h) // 2
    return image.crop((left, top, left + side_w, top + side_h)).resize(size, Image.Resampling.BILINEAR)


def upload(http: httpx.Client, model: str, verb: str, files: list[tuple[str, bytes]], **params: Any) -> Any:
    reply = http.post(
        f"/v1/models/{model}:{verb}", params=params, files=[("file", (n, d, "image/x")) for n, d in files]
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def outputs(body: dict[str, Any], key: str) -> np.ndarray:
    return np.array([p[key] for p in body["predictions"]], dtype=np.float64)


def test_mobilenet_takes_raw_pixels_centre_cropped_with_the_contracts_labels(
    stack: Stack, http: httpx.Client
) -> None:
    files = [
        ("wide.jpg", encode(picture(80, 50, seed=1), "JPEG", quality=90)),
        ("tall.png", encode(picture(40, 64, seed=2), "PNG")),
        ("gray.png", encode(picture(45, 45, "L", seed=3), "PNG")),
    ]
    batch = np.stack(
        [np.asarray(centre_crop(decoded(d), (32, 32)), np.float32) for _, d in files]
    )  # raw levels 0..255: the model rescales them itself
    want = stack.models["mobilenet"].predict(batch, verbose=0)
    body = upload(http, "mobilenet", "predict", files)
    np.testing.assert_allclose(outputs(body, "probabilities"), want, atol=RESIZED, rtol=0)
    labels = MOBILENET_CONTRACT["labels"]
    ranked = upload(http, "mobilenet", "classify", files, k=4)
    assert [p["label"] for p in ranked["predictions"]] == [labels[int(i)] for i in want.argmax(axis=1)]
    assert {t["label"] for t in ranked["predictions"][0]["top"]} == set(labels)
    # the same pixels already at the model's size are not resampled: exact
    exact = centre_crop(decoded(files[0][1]), (32, 32))
    body = upload(http, "mobilenet", "predict", [("exact.png", encode(exact, "PNG"))])
    want = stack.models["mobilenet"].predict(np.asarray(exact, np.float32)[None], verbose=0)
    np.testing.assert_allclose(outputs(body, "probabilities"), want, atol=EXACT, rtol=0)


def test_uint8_model_gets_pixel_levels_from_any_upload_mode(stack: Stack, http: httpx.Client) -> None:
    rgba = picture(30, 20, "RGBA", seed=4)
    rgba.putalpha(Image.linear_gradient("L").resize((30, 20)))
    palette = picture(24, 24, seed=5).quantize(64)
    files = [("rgba.png", encode(rgba, "PNG")), ("palette.png", encode(palette, "PNG"))]
    black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    composited = Image.alpha_composite(black, rgba).convert("RGB").resize((24, 24), Image.Resampling.BILINEAR)
    batch = np.stack([np.asarray(composited), np.asarray(palette.convert("RGB"))]).astype(np.uint8)
    want = stack.models["bytes"].predict(batch, verbose=0)
    body = upload(http, "bytes", "predict", files)
    got = outputs(body, "output_0")
    np.testing.assert_allclose(got[:1], want[:1], atol=RESIZED, rtol=0)
    np.testing.assert_allclose(got[1:], want[1:], atol=EXACT, rtol=0)  # 24x24 already: no resampling
    ranked = upload(http, "bytes", "classify", files)  # no contract: labels are class indices
    assert [p["label"] for p in ranked["predictions"]] == [str(int(i)) for i in want.argmax(axis=1)]


def test_grayscale_model_fed_rgb_jpeg_stretched(stack: Stack, http: httpx.Client) -> None:
    files = [
        ("photo.jpg", encode(picture(50, 40, seed=6), "JPEG", quality=90)),
        ("exact.jpg", encode(picture(28, 28, seed=7), "JPEG", quality=90)),
    ]
    gray = [decoded(d, "L") for _, d in files]
    gray[0] = gray[0].resize((28, 28), Image.Resampling.BILINEAR)  # stretch: no contract, the default
    batch = np.stack([np.asarray(g, np.float32)[..., None] / 255.0 for g in gray])  # derived range [0, 1]
    want = stack.models["gray"].predict(batch, verbose=0)
    got = outputs(upload(http, "gray", "predict", files), "output_0")
    np.testing.assert_allclose(got[:1], want[:1], atol=RESIZED, rtol=0)
    np.testing.assert_allclose(got[1:], want[1:], atol=EXACT, rtol=0)


def test_keras_text_model_with_a_column_string_input(stack: Stack, http: httpx.Client) -> None:
    texts = ["win free cash", "see you at lunch tonight", "claim your free prize now"]
    import tensorflow as tf  # here, not at collection: the unit tier never loads TensorFlow

    want = stack.models["keras_text"](tf.constant([[t] for t in texts])).numpy()
    reply = http.post("/v1/models/keras_text:predict", json={"texts": texts})
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose(outputs(reply.json(), "output_0"), want, atol=EXACT, rtol=0)
    reply = http.post("/v1/models/keras_text:classify", json={"texts": texts})
    assert reply.status_code == 200, reply.text
    assert [p["label"] for p in reply.json()["predictions"]] == [str(int(i)) for i in want.argmax(axis=1)]
    detail = http.get("/v1/models/keras_text").json()
    assert detail["contract_source"] == "derived"
    (entry,) = detail["inputs"].values()  # Keras names it after its input tensor
    assert entry["shape"] == [-1, 1] and entry["kind"] == "text" and entry["dtype"] == "string"


def test_unmappable_model_gets_a_4xx_that_says_what_to_send(stack: Stack, http: httpx.Client) -> None:
    files = [("a.png", encode(picture(8, 8), "PNG"))]
    reply = http.post(
        "/v1/models/two_images:classify", files=[("file", (n, d, "image/png")) for n, d in files]
    )
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["code"] == "inputs_not_mappable"
    assert "left" in error["message"] and "right" in error["message"] and ":predict" in error["message"]
    # the model server's own Predict serves it
    pixels = np.zeros((1, 8, 8, 3)).tolist()
    ones = np.ones((1, 8, 8, 3)).tolist()
    served = httpx.post(
        f"{stack.modelserver.url}/v1/models/two_images:predict",  # type: ignore[attr-defined]
        json={"inputs": {"left": pixels, "right": ones}},
        timeout=30,
    )
    assert served.status_code == 200, served.text
    assert served.json()["outputs"] == pytest.approx([1.0])


def test_keras_multi_input_tabular_model_with_normalization(stack: Stack, http: httpx.Client) -> None:
    records = [{"rooms": 12.5, "age": 18.0, "income": 31.0}, {"rooms": 7.0, "age": 25.5, "income": 28.25}]
    columns = {name: np.array([[r[name]] for r in records], np.float32) for name in FEATURES}
    want = stack.models["tabular"].predict(columns, verbose=0)[:, 0]
    reply = http.post("/v1/models/tabular:regress", json={"records": records})
    assert reply.status_code == 200, reply.text
    got = np.array([p["value"] for p in reply.json()["predictions"]])
    np.testing.assert_allclose(got, want, atol=EXACT, rtol=0)
    bad = http.post("/v1/models/tabular:regress", json={"records": [{"rooms": 1.0, "floors": 2}]})
    assert bad.status_code == 400 and "floors" in bad.json()["error"]["message"]


def test_keras_vector_input_takes_a_list_per_record(stack: Stack, http: httpx.Client) -> None:
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    want = stack.models["vector"].predict(np.array(rows, np.float32), verbose=0)
    reply = http.post("/v1/models/vector:predict", json={"records": [{"measurements": r} for r in rows]})
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose(outputs(reply.json(), "output_0"), want, atol=EXACT, rtol=0)
    short = http.post("/v1/models/vector:predict", json={"records": [{"measurements": [1.0, 2.0]}]})
    assert short.status_code == 400 and "list of 4 values" in short.json()["error"]["message"]


def test_keras_structured_model_with_string_int_and_float_features(stack: Stack, http: httpx.Client) -> None:
    records = [
        {"city": "Zürich", "rooms": 3, "income": 5.5},
        {"city": "Basel", "rooms": 5, "income": 9.25},
        {"city": "Geneva", "rooms": 1, "income": 2.0},  # a city the lookup does not know: its OOV slot
    ]
    import tensorflow as tf

    columns = {
        "city": tf.constant([[r["city"]] for r in records]),
        "rooms": tf.constant([[r["rooms"]] for r in records], tf.int64),
        "income": tf.constant([[r["income"]] for r in records], tf.float32),
    }
    want = stack.models["mixed"](columns).numpy()[:, 0]
    reply = http.post("/v1/models/mixed:regress", json={"records": records})
    assert reply.status_code == 200, reply.text
    got = np.array([p["value"] for p in reply.json()["predictions"]])
    np.testing.assert_allclose(got, want, atol=EXACT, rtol=0)
    fraction = http.post("/v1/models/mixed:regress", json={"records": [{**records[0], "rooms": 2.5}]})
    assert fraction.status_code == 400 and "whole number" in fraction.json()["error"]["message"]
