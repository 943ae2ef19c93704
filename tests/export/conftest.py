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
