"""The published signatures: keys, method names, dtypes and shapes, labels, and what they return."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from export import signatures
from export.fashion import LABELS as FASHION_LABELS
from export.housing import FEATURES
from export.text import LABELS as TEXT_LABELS

PREDICT = "tensorflow/serving/predict"
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"
# What every explain signature returns beside its attributions (export.explain).
EXPLAINED = {
    "class_id": ("int32", [-1]),
    "score": ("float32", [-1]),
    "baseline_score": ("float32", [-1]),
}

EXPECTED: dict[
    str, dict[str, tuple[str, dict[str, tuple[str, list[int]]], dict[str, tuple[str, list[int]]]]]
] = {
    "fashion": {
        "serving_default": (
            PREDICT,
            {"image": ("float32", [-1, 28, 28, 1])},
            {"probabilities": ("float32", [-1, 10])},
        ),
        "classify": (
            CLASSIFY,
            {"inputs": ("string", [-1])},
            {"classes": ("string", [-1, 10]), "scores": ("float32", [-1, 10])},
        ),
        "contract": (PREDICT, {}, {"contract": ("string", [])}),
        "explain": (
            PREDICT,
            {"image": ("float32", [-1, 28, 28, 1]), "class_id": ("int32", [-1]), "steps": ("int32", [-1])},
            {"attributions": ("float32", [-1, 28, 28, 1]), **EXPLAINED},
        ),
    },
    "text": {
        "serving_default": (PREDICT, {"text": ("string", [-1])}, {"probabilities": ("float32", [-1, 2])}),
        "classify": (
            CLASSIFY,
            {"inputs": ("string", [-1])},
            {"classes": ("string", [-1, 2]), "scores": ("float32", [-1, 2])},
        ),
        "contract": (PREDICT, {}, {"contract": ("string", [])}),
        "explain": (
            PREDICT,
            {"text": ("string", [-1]), "class_id": ("int32", [-1]), "steps": ("int32", [-1])},
            {"attributions": ("float32", [-1, 64]), "tokens": ("string", [-1, 64]), **EXPLAINED},
        ),
    },
    "housing": {
        "serving_default": (
            PREDICT,
            {name: ("float32", [-1]) for name in FEATURES},
            {"median_house_value": ("float32", [-1])},
        ),
        "regress": (REGRESS, {"inputs": ("string", [-1])}, {"outputs": ("float32", [-1])}),
        "contract": (PREDICT, {}, {"contract": ("string", [])}),
        "explain": (
            PREDICT,
            {**{name: ("float32", [-1]) for name in FEATURES}, "steps": ("int32", [-1])},
            {"attributions": ("float32", [-1, 8]), **EXPLAINED},
        ),
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_signature_defs_match_the_architecture_contract(versions: dict[str, Path], name: str) -> None:
    described = signatures.describe(versions[name])
    assert set(described) == set(EXPECTED[name])
    for key, (method, inputs, outputs) in EXPECTED[name].items():
        sig = described[key]
        assert sig["method_name"] == method, key
        assert {k: (v["dtype"], v["shape"]) for k, v in sig["inputs"].items()} == inputs, key
        assert {k: (v["dtype"], v["shape"]) for k, v in sig["outputs"].items()} == outputs, key


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_method_names_are_recorded_in_saved_model_pb(versions: dict[str, Path], name: str) -> None:
    meta_graph = signatures.read_saved_model(versions[name]).meta_graphs[0]
    assert "serve" in meta_graph.meta_info_def.tags
    for key, (method, _inputs, _outputs) in EXPECTED[name].items():
        assert meta_graph.signature_def[key].method_name == method


@pytest.mark.parametrize(("name", "labels"), [("fashion", FASHION_LABELS), ("text", TEXT_LABELS)])
def test_labels_file_and_classify_classes_agree(
    versions: dict[str, Path], loaded: dict[str, Any], name: str, labels: list[str]
) -> None:
    assert (versions[name] / "labels.txt").read_text().splitlines() == labels
    if name == "fashion":
        feature = tf.train.Feature(float_list=tf.train.FloatList(value=[0.5] * 784))
    else:
        feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"WIN a FREE prize now!"]))
    example = tf.train.Example(
        features=tf.train.Features(feature={"image" if name == "fashion" else "text": feature})
    )
    out = loaded[name].signatures["classify"](inputs=tf.constant([example.SerializeToString()] * 2))
    assert [c.decode() for c in out["classes"].numpy()[1]] == labels
    np.testing.assert_allclose(out["scores"].numpy().sum(axis=1), 1.0, atol=1e-5)


def test_fashion_classify_equals_serving_default(loaded: dict[str, Any]) -> None:
    images = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    examples = [
        tf.train.Example(
            features=tf.train.Features(
                feature={
                    "image": tf.train.Feature(float_list=tf.train.FloatList(value=img.reshape(-1).tolist()))
                }
            )
        ).SerializeToString()
        for img in images
    ]
    model = loaded["fashion"]
    probabilities = model.signatures["serving_default"](image=tf.constant(images))["probabilities"].numpy()
    scores = model.signatures["classify"](inputs=tf.constant(examples))["scores"].numpy()
    np.testing.assert_allclose(scores, probabilities, atol=1e-5)


def test_text_takes_raw_strings_including_unicode_and_empty(loaded: dict[str, Any]) -> None:
    texts = tf.constant(["", "Ünïcödé ☃ emoji 🎉 text", "Call 09061701461 to claim £900 prize!!"])
    out = loaded["text"].signatures["serving_default"](text=texts)["probabilities"].numpy()
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)


def test_text_vocabulary_is_a_savedmodel_asset(versions: dict[str, Path]) -> None:
    vocabulary = (versions["text"] / "assets" / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    assert len(vocabulary) > 50 and len(set(vocabulary)) == len(vocabulary)


def test_housing_regress_treats_a_missing_feature_like_nan(loaded: dict[str, Any]) -> None:
    row = {
        "longitude": -122.2,
        "latitude": 37.9,
        "housing_median_age": 30.0,
        "total_rooms": 2000.0,
        "total_bedrooms": 400.0,
        "population": 1000.0,
        "households": 380.0,
        "median_income": 5.0,
    }
    model = loaded["housing"]
    with_nan = {k: tf.constant([v if k != "total_bedrooms" else np.nan], tf.float32) for k, v in row.items()}
    predicted = model.signatures["serving_default"](**with_nan)["median_house_value"].numpy()
    feature = {
        k: tf.train.Feature(float_list=tf.train.FloatList(value=[v]))
        for k, v in row.items()
        if k != "total_bedrooms"
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
    regressed = model.signatures["regress"](inputs=tf.constant([example]))["outputs"].numpy()
    assert np.isfinite(predicted).all()
    np.testing.assert_allclose(regressed, predicted, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_contract_signature_returns_the_card_contract(
    loaded: dict[str, Any], cards: dict[str, dict[str, Any]], name: str
) -> None:
    contract = json.loads(loaded[name].signatures["contract"]()["contract"].numpy().decode())
    assert contract == cards[name]["contract"]
    assert contract["model"] == name
    assert contract["predict"]["signature"] == "serving_default"
    if name == "housing":
        assert contract["task"] == "regression" and contract["labels"] == []
        assert contract["regress"] == {"signature": "regress"}
        assert contract["output"]["name"] == "median_house_value" and contract["output"]["unit"] == "USD"
        assert set(contract["inputs"]) == set(FEATURES)
        assert all(
            spec["missing"] == "NaN" and spec["kind"] == "numeric" for spec in contract["inputs"].values()
        )
    else:
        assert contract["classify"]["signature"] == "classify"
    if name == "fashion":
        assert contract["inputs"]["image"] == {
            "dtype": "float32",
            "shape": [-1, 28, 28, 1],
            "kind": "image",
            "height": 28,
            "width": 28,
            "channels": 1,
            "range": [0.0, 1.0],
            "background": "black",
        }
        assert contract["labels"] == FASHION_LABELS
    if name == "text":
        assert contract["inputs"] == {"text": {"dtype": "string", "shape": [-1], "kind": "text"}}
        assert contract["labels"] == ["ham", "spam"]
