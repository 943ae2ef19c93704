"""export.foreign.pixels: photos of any mode and size as a model's image input, by the contract's rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from export.foreign import pixels


def _save(tmp_path: Path, image: Image.Image, name: str) -> Path:
    path = tmp_path / name
    image.save(path)
    return path


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA", "LA"])
def test_every_mode_becomes_the_contract_channels(tmp_path: Path, mode: str) -> None:
    image = Image.new("RGB", (40, 30), (200, 100, 50)).convert(mode)
    path = _save(tmp_path, image, f"photo_{mode}.png")
    assert pixels.load(path, 16, 16, 3).shape == (16, 16, 3)
    assert pixels.load(path, 16, 16, 1).shape == (16, 16, 1)


def test_transparent_pixels_take_the_contracts_background_black_by_default(tmp_path: Path) -> None:
    """As the gateway composites an upload (tests/test_pixel_parity.py compares the two in full)."""
    path = _save(tmp_path, Image.new("RGBA", (8, 8), (255, 255, 255, 0)), "clear.png")
    assert (pixels.load(path, 8, 8, 3) == 0).all()
    assert (pixels.load(path, 8, 8, 3, background="white") == 255).all()


def test_pad_keeps_the_aspect_ratio_on_black_and_crop_cuts_the_centre() -> None:
    wide = Image.new("L", (40, 20), 255)
    padded = np.asarray(pixels.fit(wide, 20, 20, "pad"))
    assert padded[:5].max() == 0 and padded[-5:].max() == 0 and padded[10].min() == 255
    striped = Image.fromarray(np.repeat(np.arange(40, dtype=np.uint8)[None, :], 20, axis=0))
    cropped = np.asarray(pixels.fit(striped, 20, 20, "crop"))
    assert cropped.shape == (20, 20) and cropped[0, 0] == 10 and cropped[0, -1] == 29
    assert np.asarray(pixels.fit(wide, 20, 20, "stretch")).shape == (20, 20)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"dtype": "uint8", "range": [0, 255]}, [0, 255]),
        ({"dtype": "float32", "range": [0.0, 255.0]}, [0.0, 255.0]),
        ({"dtype": "float32", "range": [0.0, 1.0]}, [0.0, 1.0]),
        ({"dtype": "float32", "range": [-1.0, 1.0]}, [-1.0, 1.0]),
    ],
)
def test_intensities_map_onto_the_range(entry: dict[str, object], expected: list[float]) -> None:
    values = pixels.to_input(np.array([0, 255], np.uint8), entry)
    assert values.dtype == np.dtype(str(entry["dtype"]))
    np.testing.assert_allclose(values, expected, atol=1e-6)
