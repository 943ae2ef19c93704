"""gateway.preprocess.image: formats, EXIF, modes, inversion, resize, scaling, bombs, bad files."""

from __future__ import annotations

import io
import random
import struct
import zlib
from array import array
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from devtools.fashion import encode, fashion_test_images
from gateway.errors import BadRequest, TooManyPixels, UnsupportedMediaType
from gateway.preprocess.image import (
    ImageSpec,
    _border_means,
    _border_means_of_bytes,
    decode_image,
    images_to_batch,
    small_images,
)

FASHION = ImageSpec(height=28, width=28, channels=1, low=0.0, high=1.0, background="black")
LIMIT = 10_000_000


@pytest.fixture(scope="module")
def garments(data_dir: Path) -> list[Image.Image]:
    return [image for image, _ in fashion_test_images(data_dir, 8)]


@pytest.mark.parametrize(
    ("fmt", "options"), [("PNG", {}), ("BMP", {}), ("GIF", {}), ("WEBP", {"lossless": True})]
)
def test_lossless_formats_give_the_exact_pixels(garments: list[Image.Image], fmt: str, options: dict) -> None:
    for image in garments:
        decoded = decode_image(encode(image, fmt, **options), f"x.{fmt}", FASHION, LIMIT)
        assert decoded.mode == "L" and decoded.size == (28, 28)
        assert decoded.tobytes() == image.tobytes()


def test_jpeg_is_close(garments: list[Image.Image]) -> None:
    image = garments[0]
    decoded = decode_image(encode(image, "JPEG", quality=95), "x.jpg", FASHION, LIMIT)
    diff = sum(abs(a - b) for a, b in zip(decoded.tobytes(), image.tobytes(), strict=True)) / 784
    assert diff < 6


def test_batch_scales_to_the_contract_range(garments: list[Image.Image]) -> None:
    files = [(f"{i}.png", encode(im, "PNG")) for i, im in enumerate(garments[:3])]
    values, dims = images_to_batch(files, FASHION, LIMIT)
    assert dims == [3, 28, 28, 1] and len(values) == 3 * 784
    assert min(values) >= 0.0 and max(values) <= 1.0
    assert values[:784].tolist() == pytest.approx([b / 255 for b in garments[0].tobytes()], abs=1e-6)
    signed = ImageSpec(28, 28, 1, -1.0, 1.0, "black")
    values, _ = images_to_batch(files[:1], signed, LIMIT)
    assert min(values) >= -1.0 and values[0] == pytest.approx(-1.0 + 2 * garments[0].tobytes()[0] / 255)


@pytest.mark.parametrize(("channels", "low", "high"), [(1, 0.0, 1.0), (3, -1.0, 1.0), (1, 0.0, 255.0)])
def test_batch_values_are_the_table_floats_exactly(channels: int, low: float, high: float) -> None:
    # every byte level in every channel, in noise that no background rule inverts
    rng = random.Random(channels)
    mode = {1: "L", 3: "RGB"}[channels]
    images = [Image.frombytes(mode, (16, 16), bytes(rng.randrange(256) for _ in range(256 * channels)))]
    images.append(Image.frombytes(mode, (16, 16), bytes(range(256)) * channels))
    spec = ImageSpec(16, 16, channels, low, high, background=None)
    files = [(f"{i}.png", encode(im, "PNG")) for i, im in enumerate(images)]
    values, dims = images_to_batch(files, spec, LIMIT)
    scale = (high - low) / 255.0
    want = array("f", [low + b * scale for im in images for b in im.tobytes()])  # rounded to float32
    assert dims == [2, 16, 16, channels]
    assert values.tobytes() == want.tobytes()


def test_small_images_counts_header_pixels_of_all_files(garments: list[Image.Image]) -> None:
    one = ("g.png", encode(garments[0], "PNG"))
    assert small_images([one], 784)
    assert small_images([one, one], 2 * 784)
    assert not small_images([one, one], 2 * 784 - 1)
    big = ("big.png", encode(Image.new("L", (4000, 3000)), "PNG"))  # a few KB, 12 million pixels
    assert len(big[1]) < 64 * 1024 and not small_images([big], 128 * 128)
    assert not small_images([("bad.png", b"not an image")], 10**6)  # reported by the thread path


def test_a_png_stuffed_with_chunks_is_not_opened_on_the_event_loop(garments: list[Image.Image]) -> None:
    # 28x28 pixels, but 64 KiB of empty ancillary chunks before the image data: Pillow walks them one by one
    png = encode(garments[0], "PNG")
    chunk = struct.pack(">I", 0) + b"prVt" + struct.pack(">I", zlib.crc32(b"prVt"))
    stuffed = png[:33] + chunk * (64 * 1024 // len(chunk)) + png[33:]
    assert small_images([("g.png", png)], 784)
    assert not small_images([("s.png", stuffed)], 784)  # over the byte bound: not even its header is read
    values, _ = images_to_batch([("s.png", stuffed)], FASHION, LIMIT)  # still a valid picture (thread path)
    assert values.tobytes() == images_to_batch([("g.png", png)], FASHION, LIMIT)[0].tobytes()


def test_exif_orientation_is_applied() -> None:
    # 40x20, white left half, stored with EXIF orientation 6 (rotate 90 degrees clockwise to view).
    image = Image.new("L", (40, 20), 0)
    image.paste(255, (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(image, "JPEG", exif=exif.tobytes(), quality=100)
    spec = ImageSpec(40, 20, 1, background=None)  # height 40, width 20: the viewed (rotated) shape
    decoded = decode_image(data, "r.jpg", spec, LIMIT)
    top, bottom = decoded.crop((0, 0, 20, 20)), decoded.crop((0, 20, 20, 40))
    assert sum(top.tobytes()) / 400 > 200 and sum(bottom.tobytes()) / 400 < 50


def test_rgb_becomes_gray_and_gray_becomes_rgb(garments: list[Image.Image]) -> None:
    rgb = garments[0].convert("RGB")
    gray = decode_image(encode(rgb, "PNG"), "c.png", FASHION, LIMIT)
    assert gray.mode == "L" and gray.tobytes() == garments[0].tobytes()
    colour = ImageSpec(32, 32, 3, background=None)
    out = decode_image(encode(garments[0], "PNG"), "g.png", colour, LIMIT)
    assert out.mode == "RGB" and out.size == (32, 32)
    values, dims = images_to_batch([("g.png", encode(garments[0], "PNG"))], colour, LIMIT)
    assert dims == [1, 32, 32, 3] and len(values) == 32 * 32 * 3


def test_transparent_background_takes_the_training_background() -> None:
    image = Image.new("RGBA", (28, 28), (0, 0, 0, 0))
    image.paste((255, 255, 255, 255), (8, 8, 20, 20))
    decoded = decode_image(encode(image, "PNG"), "t.png", FASHION, LIMIT)
    assert decoded.getpixel((0, 0)) == 0 and decoded.getpixel((14, 14)) == 255


def test_dark_garment_on_white_is_inverted(garments: list[Image.Image]) -> None:
    photo = Image.eval(garments[0], lambda p: 255 - p).resize((560, 560)).convert("RGB")
    decoded = decode_image(encode(photo, "PNG"), "p.png", FASHION, LIMIT)
    assert decoded.getpixel((0, 0)) < 30  # background black again
    diff = sum(abs(a - b) for a, b in zip(decoded.tobytes(), garments[0].tobytes(), strict=True)) / 784
    assert diff < 20


@pytest.mark.parametrize(
    ("resize", "background", "probes"),
    [
        # a 280x140 picture: left quarter black, the rest white. (x, y) -> level in the 28x28 result
        ("stretch", None, {(3, 0): 0, (3, 27): 0, (20, 14): 255}),  # no padding, the whole picture
        ("pad", None, {(14, 0): 0, (3, 14): 0, (20, 14): 255}),  # black bands top and bottom
        ("pad", "white", {(14, 0): 255, (3, 14): 0, (20, 14): 255}),  # bands in the background's colour
        ("crop", None, {(0, 14): 255, (14, 0): 255, (27, 27): 255}),  # centre 140x140: the black quarter cut
        (None, "black", {(14, 0): 0, (20, 14): 255}),  # no rule + a background: pad (the fashion contract)
        (None, None, {(3, 0): 0, (20, 14): 255}),  # no rule at all: stretch
    ],
)
def test_resize_rules(resize: str | None, background: str | None, probes: dict[tuple[int, int], int]) -> None:
    wide = Image.new("L", (280, 140), 255)
    wide.paste(0, (0, 0, 70, 140))
    contract = {"shape": [-1, 28, 28, 1], "resize": resize, "background": background}
    spec = ImageSpec.from_contract(contract)
    decoded = decode_image(encode(wide, "PNG"), "w.png", replace(spec, background=None), LIMIT)
    assert decoded.size == (28, 28)
    if background == "white":  # the padding colour comes from the background (no inversion here)
        decoded = decode_image(encode(wide, "PNG"), "w.png", replace(spec, background="white"), LIMIT)
    for (x, y), level in probes.items():
        assert abs(decoded.getpixel((x, y)) - level) < 8, (x, y)


@pytest.mark.parametrize(
    ("mode", "channels"), [("I;16", 1), ("I;16", 3), ("P", 3), ("P", 1), ("RGBA", 3), ("LA", 1), ("CMYK", 3)]
)
def test_every_upload_mode_becomes_the_models_channels(mode: str, channels: int) -> None:
    gray = Image.linear_gradient("L").resize((64, 48))  # levels 0..255 top to bottom
    if mode == "I;16":
        image = Image.new("I;16", gray.size)
        image.putdata([level * 257 for level in gray.tobytes()])  # the same levels on 16 bits
    elif mode == "P":
        image = gray.convert("RGB").quantize(256)
    else:
        image = gray.convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    spec = ImageSpec(48, 64, channels, 0.0, 255.0, background=None, dtype="uint8")
    data, dims = images_to_batch([(f"x.{fmt}", encode(image, fmt))], spec, LIMIT)
    assert isinstance(data, bytes) and dims == [1, 48, 64, channels] and len(data) == 48 * 64 * channels
    rows = [data[y * 64 * channels] for y in (0, 24, 47)]  # first pixel, first channel, of three rows
    want = [gray.getpixel((0, y)) for y in (0, 24, 47)]
    assert all(abs(a - b) <= 6 for a, b in zip(rows, want, strict=True)), (rows, want)


def test_gif_uses_the_first_frame() -> None:
    frames = [Image.new("L", (28, 28), 200), Image.new("L", (28, 28), 10)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    decoded = decode_image(buffer.getvalue(), "a.gif", ImageSpec(28, 28, 1, background=None), LIMIT)
    assert abs(decoded.getpixel((5, 5)) - 200) < 3


@pytest.mark.parametrize("divisor", [1.5, 3])  # Pillow's warning band (1x-2x the limit) and error band
def test_decompression_bomb_is_refused(divisor: float) -> None:
    data = encode(Image.new("L", (3000, 3000)), "PNG")
    with pytest.raises(TooManyPixels):
        decode_image(data, "bomb.png", FASHION, max_pixels=int(3000 * 3000 / divisor))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", BadRequest),
        (b"not an image at all", UnsupportedMediaType),
        (b"%PDF-1.4\n", UnsupportedMediaType),
        (encode(Image.new("L", (64, 64), 7), "PNG")[:50], UnsupportedMediaType),
        (encode(Image.new("L", (8, 8)), "TIFF"), UnsupportedMediaType),
    ],
    ids=["empty", "text", "pdf", "truncated-png", "tiff-not-accepted"],
)
def test_bad_files_are_refused(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_image(data, "f", FASHION, LIMIT)


def test_spec_from_contract() -> None:
    spec = ImageSpec.from_contract({"shape": [-1, 28, 28, 1], "range": [0, 1], "background": "black"})
    assert (spec.height, spec.width, spec.channels, spec.background) == (28, 28, 1, "black")
    with pytest.raises(BadRequest):
        ImageSpec.from_contract({"shape": [-1, 10]})


def test_border_means_from_bytes_equal_the_histogram_ones() -> None:
    rng = random.Random(5)
    sizes = [(1, 1), (1, 9), (9, 1), (28, 28), (40, 20), (127, 129), (128, 128)]
    sizes += [(rng.randint(1, 128), rng.randint(1, 128)) for _ in range(20)]
    for w, h in sizes:
        image = Image.frombytes("L", (w, h), bytes(rng.randrange(256) for _ in range(w * h)))
        assert _border_means_of_bytes(image) == _border_means(image), (w, h)
