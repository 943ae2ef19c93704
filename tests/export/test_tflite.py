"""export.tflite: model.tflite beside the SavedModel, checked on held-out rows, served by the model server's
TF Lite path with the SavedModel's signature names; a graph the converter cannot take is recorded, not fatal;
``python -m export publish`` writes it too, and with ``--tflite-quantize`` the int8 variant within its bound."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devtools import tiny_models
from export import tflite
from export.foreign import samples
from export.foreign.build import Request, publish
from modelserver.runtime.tflite import load_tflite
from tests.export import own_models


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


def _published(source: Path, repo: Path, name: str, *, quantize: bool = False) -> tuple[Path, dict[str, Any]]:
    version = publish(Request(source=source, name=name, models_dir=repo, tflite_quantize=quantize))
    return version, json.loads((version / "model_card.json").read_text())


def _served(version: Path, card: dict[str, Any], file: str = tflite.TFLITE_FILE) -> tuple[Any, Any]:
    """``file`` served as ``model.tflite`` by the model server's TF Lite servable; the contract's rows."""
    served_dir = version.parent.parent / "served" / version.name
    served_dir.mkdir(parents=True)
    shutil.copy(version / file, served_dir / tflite.TFLITE_FILE)
    rows = samples.generate(card["contract"]["inputs"], rows=5)
    return load_tflite("served", 1, served_dir, 1, 0), rows


@pytest.mark.slow
def test_published_keras_image_model_served_like_the_saved_model(tmp_path: Path) -> None:
    source, predict = own_models.grayscale_h5(tmp_path)
    version, card = _published(source, tmp_path / "models", "gray")
    section = card["tflite"]
    assert section["file"] == "model.tflite" and section["max_abs_difference"] <= tflite.TOLERANCE
    assert card["sizes"]["tflite"] == (version / "model.tflite").stat().st_size
    assert "int8" not in section and not (version / tflite.INT8_FILE).exists()
    served, rows = _served(version, card)
    output = card["contract"]["predict"]["outputs"][0]
    got = served.run("serving_default", rows)[output]
    np.testing.assert_allclose(got, predict(rows), rtol=0, atol=tflite.TOLERANCE)


@pytest.mark.slow
def test_quantized_variant_within_its_bound_and_opt_in(tmp_path: Path) -> None:
    source, predict = own_models.fashion_dense_keras(tmp_path)
    version, card = _published(source, tmp_path / "models", "fashion-int8", quantize=True)
    float_section, int8 = card["tflite"], card["tflite"]["int8"]
    assert float_section["file"] == "model.tflite"  # stays float: what --prefer_tflite_model serves
    assert int8["file"] == tflite.INT8_FILE and int8["bound"] == tflite.QUANTIZED_BOUND
    check = int8["checks"]["probs"]
    assert check["top1_agreement"] >= tflite.QUANTIZED_BOUND["top1_agreement_min"]
    assert check["max_score_difference"] <= tflite.QUANTIZED_BOUND["max_score_difference"]
    assert int8["bytes"] < float_section["bytes"] / 2  # int8 weights: about a quarter
    assert card["sizes"]["tflite_int8"] == int8["bytes"] and "publish a version" in int8["serving"]
    served, rows = _served(version, card, tflite.INT8_FILE)  # the opt-in: a version whose model.tflite is it
    got, want = served.run("serving_default", rows)["probs"], predict(rows)
    assert np.max(np.abs(got - want)) <= tflite.QUANTIZED_BOUND["max_score_difference"]
    assert np.mean(np.argmax(got, axis=1) == np.argmax(want, axis=1)) >= 0.99
