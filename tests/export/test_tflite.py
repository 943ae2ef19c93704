"""export.tflite: model.tflite beside the SavedModel, checked on held-out rows, served by the model server's
TF Lite path with the SavedModel's signature names; a graph the converter cannot take is recorded, not fatal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from devtools import tiny_models
from export import tflite
from modelserver.runtime.tflite import load_tflite


@pytest.fixture(scope="module")
def half_plus_two(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_models.half_plus_two(tmp_path_factory.mktemp("tflite") / "1")


def test_converted_checked_and_served_with_the_saved_model_names(half_plus_two: Path) -> None:
    x = np.linspace(-3, 3, 7, dtype=np.float32)
    section = tflite.convert(half_plus_two, {"x": x}, {"y": 0.5 * x + 2})
    assert section["file"] == "model.tflite" and section["rows"] == 7
    assert section["max_abs_difference"] <= tflite.TOLERANCE
    served = load_tflite("half", 1, half_plus_two, 1, 0)
    signature = served.signature_defs["serving_default"]
    assert (list(signature.inputs), list(signature.outputs)) == (["x"], ["y"])  # from signature_defs_metadata
    np.testing.assert_array_equal(served.run("", {"x": x})["y"], 0.5 * x + 2)


def test_disagreement_writes_no_file(tmp_path: Path) -> None:
    version = tiny_models.half_plus_two(tmp_path / "1")
    x = np.ones(3, dtype=np.float32)
    section = tflite.convert(version, {"x": x}, {"y": x})  # not what the model computes
    assert section["file"] is None and "differs from the SavedModel by 1.5" in section["reason"]
    assert not (version / "model.tflite").exists()


def test_unconvertible_graph_is_recorded(tmp_path: Path) -> None:
    version = tiny_models.strings(tmp_path / "1")  # string ops: not TF Lite builtins
    section = tflite.convert(version, {"x": np.array([b"a"], dtype=object)}, {})
    assert section["file"] is None
    assert section["reason"].startswith("TF Lite's converter cannot convert serving_default: ")
    assert not (version / "model.tflite").exists()
