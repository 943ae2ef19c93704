"""Photos as a model's image input: decode any file Pillow reads (RGB, grayscale, palette, RGBA), convert to
the contract's channels, fit to its height x width by its resize rule, and map intensities 0..255 onto its
range. The same rule as the gateway's (docs/architecture.md, "The input contract")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["IMAGE_SUFFIXES", "fit", "load", "to_input"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _mode(image: Image.Image, channels: int) -> Image.Image:
    if image.mode in ("RGBA", "LA", "P", "PA") or "transparency" in image.info:
        # Transparent pixels become white, as a viewer would show them on a page.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("L" if channels == 1 else "RGB")


def fit(image: Image.Image, height: int, width: int, resize: str) -> Image.Image:
    """``stretch`` to the size; ``pad`` keeps the aspect ratio and centres on black; ``crop`` keeps it and
    cuts the centre."""
    if resize == "stretch" or image.size == (width, height):
        return image.resize((width, height), Image.Resampling.BILINEAR)
    scale = (min if resize == "pad" else max)(width / image.width, height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    scaled = image.resize(size, Image.Resampling.BILINEAR)
    if resize == "crop":
        left, top = (size[0] - width) // 2, (size[1] - height) // 2
        return scaled.crop((left, top, left + width, top + height))
    canvas = Image.new(image.mode, (width, height))
    canvas.paste(scaled, ((width - size[0]) // 2, (height - size[1]) // 2))
    return canvas


def load(path: Path, height: int, width: int, channels: int, resize: str = "stretch") -> np.ndarray:
    """uint8 pixels [height, width, channels] of the photo at ``path``."""
    with Image.open(path) as image:
        image.load()
        fitted = fit(_mode(image, channels), height, width, resize)
    pixels = np.asarray(fitted, dtype=np.uint8)
    return pixels.reshape(height, width, channels)


def to_input(pixels: np.ndarray, entry: dict[str, Any]) -> np.ndarray:
    """uint8 pixels as the contract's image input: its dtype, with 0 and 255 mapped onto its range."""
    if entry["dtype"] == "uint8":
        return pixels.astype(np.uint8)
    lo, hi = (float(v) for v in entry["range"])
    return (lo + pixels.astype(np.float32) * np.float32((hi - lo) / 255.0)).astype(entry["dtype"])
