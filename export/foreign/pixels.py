"""Photos as a model's image input, by the rule the gateway serves them with (gateway/preprocess/image.py,
docs/architecture.md "The input contract"), so a model trains, is evaluated and warms up on the pixels its
uploads will become. Step by step, as the gateway does:

JPEG decoded at reduced scale while decoding (down to twice the model's size), the EXIF orientation honoured,
16-bit grey scaled (not clipped) to 8 bits, transparency composited on the contract's background (black unless
it says white), converted to the contract's channels, inverted when the contract names a background and the
picture's border is the opposite, fitted to height x width by the ``resize`` rule (``stretch``; ``pad`` on the
background; ``crop`` cuts the centred box first), resampled bilinearly (as Keras's ``Resizing`` and
``image_dataset_from_directory`` do by default); then intensities 0..255 mapped onto the contract's range.

export never imports the gateway (a layer contract); tests/test_pixel_parity.py holds both to the same pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

__all__ = ["IMAGE_SUFFIXES", "RESAMPLE", "fit", "load", "load_for", "to_input"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
RESAMPLE = Image.Resampling.BILINEAR
_WIDE_MODES = frozenset({"I;16", "I;16B", "I;16L", "I"})
_WIDE_SCALE = 255 / 65535


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def _fill(channels: int, background: str | None) -> int | tuple[int, ...]:
    level = 255 if background == "white" else 0
    return level if channels == 1 else (level,) * channels


def _mode(image: Image.Image, channels: int, background: str | None) -> Image.Image:
    if image.mode in _WIDE_MODES:
        image = image.convert("I").point(lambda level: level * _WIDE_SCALE).convert("L")
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, "white" if background == "white" else "black")
        image = Image.alpha_composite(canvas, rgba)
    return image.convert("L" if channels == 1 else "RGB")


def _inverted(image: Image.Image, background: str | None) -> Image.Image:
    """The picture with its levels inverted when its border is bright and the model's background black (or
    the reverse); as it is without a background in the contract."""
    if background is None:
        return image
    gray = np.asarray(image.convert("L"), dtype=np.float64)
    band = max(1, min(gray.shape) // 20)
    means = [gray[:band].mean(), gray[-band:].mean(), gray[:, :band].mean(), gray[:, -band:].mean()]
    border = sum(means) / len(means)
    if border > 127 if background == "black" else border < 128:
        return ImageOps.invert(image)
    return image


def _centre_box(have: tuple[int, int], want: tuple[int, int]) -> tuple[int, int, int, int]:
    (w, h), (tw, th) = have, want
    if w * th > h * tw:
        cw, ch = max(1, round(h * tw / th)), h
    else:
        cw, ch = w, max(1, round(w * th / tw))
    left, top = (w - cw) // 2, (h - ch) // 2
    return left, top, left + cw, top + ch


def fit(
    image: Image.Image, height: int, width: int, resize: str, background: str | None = None
) -> Image.Image:
    """``stretch`` to the size; ``pad`` keeps the aspect ratio and centres on the background (black unless
    ``"white"``); ``crop`` keeps it and cuts the centred box before resampling."""
    size = (width, height)
    if image.size == size:
        return image
    if resize == "crop":
        image = image.crop(_centre_box(image.size, size))
    if resize == "pad":
        channels = 1 if image.mode == "L" else 3
        return ImageOps.pad(image, size, method=RESAMPLE, color=_fill(channels, background))
    return image.resize(size, RESAMPLE)


def load(
    path: Path, height: int, width: int, channels: int, resize: str = "stretch", background: str | None = None
) -> np.ndarray:
    """uint8 pixels [height, width, channels] of the photo at ``path``."""
    with Image.open(path) as image:
        image.seek(0)  # animations: the first frame
        image.draft("L" if channels == 1 else "RGB", (width * 2, height * 2))
        image.load()
        upright = ImageOps.exif_transpose(image)
        converted = _inverted(_mode(upright, channels, background), background)
        fitted = fit(converted, height, width, resize, background)
    pixels = np.asarray(fitted, dtype=np.uint8)
    return pixels.reshape(height, width, channels)


def load_for(path: Path, entry: dict[str, Any]) -> np.ndarray:
    """``load`` by a contract's image entry (its size, channels, resize rule and background)."""
    return load(
        path,
        entry["height"],
        entry["width"],
        entry["channels"],
        entry.get("resize", "stretch"),
        entry.get("background"),
    )


def to_input(pixels: np.ndarray, entry: dict[str, Any]) -> np.ndarray:
    """uint8 pixels as the contract's image input: its dtype, with 0 and 255 mapped onto its range."""
    if entry["dtype"] == "uint8":
        return pixels.astype(np.uint8)
    lo, hi = (float(v) for v in entry["range"])
    return (lo + pixels.astype(np.float32) * np.float32((hi - lo) / 255.0)).astype(entry["dtype"])
