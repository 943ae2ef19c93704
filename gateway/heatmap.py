"""Image attributions as pictures (Pillow, no NumPy): a transparent heat layer and its overlay on the input.

Red marks pixels that raise the explained class's score, blue those that lower it; the opacity grows with
the magnitude, relative to the 99th percentile of the image's magnitudes (one hot pixel does not wash out the
rest). Both pictures have the model's input resolution scaled up ``scale`` times with nearest-neighbour, so
each model pixel stays a visible square.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

__all__ = ["heat_layer", "overlay", "pixel_weights", "png"]

POSITIVE = (230, 30, 20)
NEGATIVE = (20, 110, 240)
MAX_ALPHA = 220
PERCENTILE = 0.99


def pixel_weights(attributions: Sequence[float], channels: int) -> list[float]:
    """One weight per pixel: the sum over its channels (row-major [h, w, c] in, [h, w] out)."""
    if channels == 1:
        return [float(v) for v in attributions]
    return [float(sum(attributions[i : i + channels])) for i in range(0, len(attributions), channels)]


def _scale_of(weights: Sequence[float]) -> float:
    magnitudes = sorted(abs(w) for w in weights)
    if not magnitudes:
        return 1.0
    top = magnitudes[min(len(magnitudes) - 1, int(PERCENTILE * len(magnitudes)))]
    return top if top > 0 else (magnitudes[-1] or 1.0)


def heat_layer(weights: Sequence[float], height: int, width: int, scale: int = 8) -> Image.Image:
    """An RGBA image of ``weights`` ([h * w] row-major): transparent where a pixel carries nothing."""
    top = _scale_of(weights)
    data = bytearray()
    for w in weights:
        red, green, blue = POSITIVE if w >= 0 else NEGATIVE
        data += bytes((red, green, blue, int(MAX_ALPHA * min(1.0, abs(w) / top))))
    layer = Image.frombytes("RGBA", (width, height), bytes(data))
    return layer.resize((width * scale, height * scale), Image.Resampling.NEAREST)


def overlay(
    pixels: Sequence[float], channels: int, weights: Sequence[float], height: int, width: int, scale: int = 8
) -> Image.Image:
    """The model's input (``pixels`` in [0, 1], row-major [h, w, c]) with the heat layer on top."""
    levels = bytes(max(0, min(255, round(float(v) * 255))) for v in pixels)
    mode = "L" if channels == 1 else "RGB"
    base = Image.frombytes(mode, (width, height), levels) if channels in (1, 3) else None
    if base is None:  # other channel counts: their mean as grey
        means = [sum(pixels[i : i + channels]) / channels for i in range(0, len(pixels), channels)]
        base = Image.frombytes("L", (width, height), bytes(max(0, min(255, round(v * 255))) for v in means))
    base = base.convert("RGBA").resize((width * scale, height * scale), Image.Resampling.NEAREST)
    return Image.alpha_composite(base, heat_layer(weights, height, width, scale))


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
