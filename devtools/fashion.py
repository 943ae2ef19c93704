"""Real Fashion-MNIST test images (from the shared IDX files) as Pillow images, their labels, and encoders
for uploads. The labels are written out here on purpose: tests check the models against the dataset's own
list, not against the export's copy of it."""

from __future__ import annotations

import gzip
import io
import struct
from pathlib import Path

from PIL import Image

from export.data import FASHION_LABELS

__all__ = ["FASHION_LABELS", "encode", "fashion_test_images"]


def fashion_test_images(data_dir: Path, count: int, start: int = 0) -> list[tuple[Image.Image, int]]:
    """``count`` test images (28x28 'L', white garment on black) with their label index."""
    folder = data_dir / "fashion-mnist"
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz", "rb") as handle:
        magic, _count, rows, cols = struct.unpack(">IIII", handle.read(16))
        assert magic == 2051, "not an IDX image file"
        handle.seek(16 + start * rows * cols)
        pixels = handle.read(count * rows * cols)
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz", "rb") as handle:
        handle.seek(8 + start)
        labels = handle.read(count)
    size = rows * cols
    return [
        (Image.frombytes("L", (cols, rows), pixels[i * size : (i + 1) * size]), labels[i])
        for i in range(count)
    ]


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()
