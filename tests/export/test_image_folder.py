"""``python -m export train-images``: a class-folder tree of real photos (any size and mode) becomes a
published classifier with its split, early stopping, checkpoint, TensorBoard logs, test accuracy beside the
majority baseline and a confusion matrix; ``--fine-tune`` starts from the user's own Keras model."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from tensorflow.core.protobuf import meta_graph_pb2

from export.__main__ import main
from export.foreign import pixels
from export.image_folder import CONFUSION_FILE, Settings, read_tree, train_and_publish
from modelserver.runtime.session import Session
from tests.export.conftest import PHOTO_CLASSES, PHOTOS_PER_CLASS

pytestmark = pytest.mark.trains


def _classify_cpp(version: Path, photos: list[Path], entry: dict[str, object]) -> np.ndarray:
    image = pixels.to_input(np.stack([pixels.load(p, 32, 32, 3) for p in photos]), entry)
    session = Session.load(version)
    try:
        signature = meta_graph_pb2.MetaGraphDef.FromString(session.meta_graph_def).signature_def[
            "serving_default"
        ]
        (name,) = signature.inputs
        feeds = {signature.inputs[name].name: (image, signature.inputs[name].dtype)}
        return session.run(feeds, [signature.outputs["probabilities"].name])[0]
    finally:
        session.close()


def test_split_is_deterministic_and_covers_every_photo(photo_tree: Path) -> None:
    first, second = read_tree(photo_tree), read_tree(photo_tree)
    assert first.files == second.files
    assert first.labels == sorted(PHOTO_CLASSES)
    assert sum(len(f) for f in first.files.values()) == len(PHOTO_CLASSES) * PHOTOS_PER_CLASS
    assert {len(f) for f in first.files.values()} == {51, 12, 9}


def test_train_images_cli(photo_tree: Path, tmp_path: Path) -> None:
    models, logs, checkpoint = tmp_path / "models", tmp_path / "tb", tmp_path / "ck" / "best.keras"
    code = main(
        [
            "train-images",
            str(photo_tree),
            "--name",
            "garments",
            "--models-dir",
            str(models),
            "--size",
            "32",
            "--epochs",
            "3",
            "--batch-size",
            "16",
            "--tensorboard",
            str(logs),
            "--checkpoint",
            str(checkpoint),
        ]
    )
    assert code == 0
    version = models / "garments" / "1"
    card = json.loads((version / "model_card.json").read_text())
    contract = card["contract"]
    assert contract["labels"] == sorted(PHOTO_CLASSES)
    expected = {"range": [0.0, 255.0], "height": 32, "width": 32, "channels": 3, "dtype": "float32"}
    assert expected.items() <= contract["inputs"]["image"].items()
    assert set(card["metrics"]) == {"accuracy", "baseline_accuracy"}
    assert card["metrics"]["baseline_accuracy"] == pytest.approx(3 / 9)
    assert np.asarray(card["confusion_matrix"]["counts"]).sum() == 9
    assert (version / CONFUSION_FILE).stat().st_size > 0 and (version / "training_curves.png").exists()
    # a trained image classifier is differentiable: published with its explain signature, gated too
    assert set(card["serving_check"]["signatures"]) == {"serving_default", "classify", "contract", "explain"}
    assert contract["explain"]["baseline"] == "black image"
    assert checkpoint.exists() and any(logs.rglob("events.out.tfevents.*"))
    photos = read_tree(photo_tree).files["test"][:3]
    want = keras.models.load_model(checkpoint, compile=False).predict(
        np.stack([pixels.load(p, 32, 32, 3) for p in photos]).astype(np.float32), verbose=0
    )
    np.testing.assert_allclose(_classify_cpp(version, photos, contract["inputs"]["image"]), want, atol=1e-5)


def test_fine_tune_from_users_model(photo_tree: Path, tmp_path: Path) -> None:
    """The user's own Keras model (its last layer dropped) under a new head, then its top layers."""
    keras.utils.set_random_seed(7)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    base = tmp_path / "base.keras"
    keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x)).save(base)
    settings = Settings(
        name="tuned",
        models_dir=tmp_path / "models",
        epochs=2,
        batch_size=16,
        fine_tune=base,
        unfreeze=2,
        checkpoint=tmp_path / "tuned.keras",
    )
    version = train_and_publish(photo_tree, settings)
    card = json.loads((version / "model_card.json").read_text())
    assert [p["phase"] for p in card["training"]["phases"]] == ["head", "top 2 layers"]
    assert card["contract"]["inputs"]["image"]["range"] == [0.0, 255.0]
    assert card["contract"]["labels"] == sorted(PHOTO_CLASSES)
