"""Fixtures for the export tests: the published versions of the shared ``model_repo`` and their reloads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devtools.exported import MODEL_NAMES


@pytest.fixture(scope="session")
def versions(model_repo: Path) -> dict[str, Path]:
    """name -> the published version directory ``<model_repo>/<name>/1``."""
    return {name: model_repo / name / "1" for name in MODEL_NAMES}


@pytest.fixture(scope="session")
def loaded(versions: dict[str, Path]) -> dict[str, Any]:
    """name -> the SavedModel reloaded with ``tf.saved_model.load`` (what a Python server would do)."""
    import tensorflow as tf

    return {name: tf.saved_model.load(str(path)) for name, path in versions.items()}


@pytest.fixture(scope="session")
def cards(versions: dict[str, Path]) -> dict[str, dict[str, Any]]:
    return {name: json.loads((path / "model_card.json").read_text()) for name, path in versions.items()}


PHOTO_CLASSES = {"bag": 8, "sneaker": 7, "trouser": 1}  # folder name -> Fashion-MNIST class
PHOTOS_PER_CLASS = 24


@pytest.fixture(scope="session")
def photo_tree(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A class-folder tree of real photos: Fashion-MNIST test images (dark garment on white, as a photo
    shows it) written as JPEG and PNG files of sizes 20..69 px, in RGB, grayscale, palette and RGBA modes."""
    import numpy as np
    from PIL import Image

    from export.data import load_fashion

    data = load_fashion(data_dir)
    root = tmp_path_factory.mktemp("photos")
    modes = ("RGB", "L", "P", "RGBA")
    for label, index in PHOTO_CLASSES.items():
        (root / label).mkdir()
        for i, row in enumerate(np.flatnonzero(data.y_test == index)[:PHOTOS_PER_CLASS]):
            side = 20 + (i * 7) % 50
            image = Image.fromarray(255 - data.x_test[row]).resize((side, side + i % 5))
            mode = modes[i % len(modes)]
            if mode == "RGBA":
                image = image.convert("RGBA")
                image.putalpha(Image.new("L", image.size, 255 - i))
            elif mode == "P":
                image = image.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
            else:
                image = image.convert(mode)
            suffix = ".jpg" if mode in ("RGB", "L") and i % 2 == 0 else ".png"
            image.save(root / label / f"{i:03d}{suffix}")
    return root
