"""The gateway serves a photo as the pixels ``python -m export`` trained, evaluated and warmed up the model on.

``gateway.preprocess.image`` (serving) and ``export.foreign.pixels`` (training, evaluation, warm-up) may not
import each other (layer contracts in pyproject.toml), so this holds them to the same bytes: every upload
kind the gateway takes, every resize rule, both channel counts, with and without a background.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from export.foreign import pixels
from gateway.preprocess.image import decode_image
from gateway.upstream.spec import ImageSpec

MAX_PIXELS = 40_000_000


def _photo(width: int, height: int, seed: int) -> Image.Image:
    """A photo-like picture: smooth colour gradients and noise, bright in one corner."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    noisy = base + rng.normal(0, 18, base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def _bytes(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _rotated_jpeg() -> bytes:
    """A 640x400 JPEG whose EXIF says: turn it 90 degrees to see it upright (a phone photo)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _bytes(_photo(640, 400, 1), "JPEG", quality=90, exif=exif.tobytes())


def _transparent_png() -> bytes:
    rgba = _photo(90, 60, 2).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((90, 60)))
    return _bytes(rgba, "PNG")


def _palette_png() -> bytes:
    palette = _photo(50, 70, 3).quantize(32)
    palette.info["transparency"] = 0
    return _bytes(palette, "PNG", transparency=0)


def _grey16_png() -> bytes:
    levels = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    return _bytes(Image.frombytes("I;16", (64, 48), levels.astype("<u2").tobytes()), "PNG")


def _bright_border_png() -> bytes:
    """A dark object on a white table: a model trained white-on-black sees it inverted."""
    canvas = Image.new("L", (120, 80), 250)
    canvas.paste(40, (30, 20, 90, 60))
    return _bytes(canvas, "PNG")


UPLOADS = {
    "rotated.jpg": _rotated_jpeg,
    "transparent.png": _transparent_png,
    "palette.png": _palette_png,
    "grey16.png": _grey16_png,
    "bright-border.png": _bright_border_png,
    "small.webp": lambda: _bytes(_photo(20, 30, 4), "WEBP", quality=90),
}


@pytest.mark.parametrize("name", sorted(UPLOADS))
@pytest.mark.parametrize("resize", ["stretch", "pad", "crop"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("background", [None, "black", "white"])
@pytest.mark.parametrize("size", [(32, 32), (224, 160)])
def test_export_reads_a_photo_as_the_gateway_serves_it(
    tmp_path: Path, name: str, resize: str, channels: int, background: str | None, size: tuple[int, int]
) -> None:
    data = UPLOADS[name]()
    (path := tmp_path / name).write_bytes(data)
    height, width = size
    spec = ImageSpec(height, width, channels, background=background, dtype="uint8", resize=resize)
    served = np.asarray(decode_image(data, name, spec, MAX_PIXELS), dtype=np.uint8).reshape(height, width, -1)
    trained = pixels.load(path, height, width, channels, resize, background)
    assert trained.shape == served.shape == (height, width, channels)
    np.testing.assert_array_equal(trained, served)


def test_the_rule_resamples_bilinearly_and_turns_the_photo_upright(tmp_path: Path) -> None:
    """What both sides share is the rule the trainers use, not just each other: the EXIF turn, then
    Pillow's bilinear resampling (Keras's default interpolation), checked against a hand-built expectation."""
    data = _rotated_jpeg()
    (path := tmp_path / "rotated.jpg").write_bytes(data)
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (64, 64))
        upright = image.transpose(Image.Transpose.ROTATE_270)  # orientation 6
        want = np.asarray(upright.resize((32, 32), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(pixels.load(path, 32, 32, 3), want)
    assert upright.size[1] > upright.size[0]  # turned: taller than wide
