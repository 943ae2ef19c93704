"""Models this project did not design, built with plain Keras / TensorFlow the way a user builds them (no
project code), for the gateway's "serve the user's own model" tests. Random weights, small inputs: each
builds in a second or two.

- ``mobilenet``: ``keras.applications.MobileNetV2`` (alpha 0.35, 32x32x3, 4 classes) behind a
  ``Rescaling(1/127.5, offset=-1)`` layer, so it takes raw pixels 0..255. Saved by Keras' ``ExportArchive``
  (what ``model.export()`` uses) with ``serving_default`` (``pixels`` -> ``probabilities``) and a no-input
  ``contract`` endpoint answering :data:`MOBILENET_CONTRACT` (range [0, 255], centre crop, labels).
- ``bytes``: a small CNN whose input is ``keras.Input((24, 24, 3), dtype="uint8")``; ``model.export()``, no
  contract.
- ``gray``: a small CNN on ``keras.Input((28, 28, 1))`` floats in [0, 1]; ``model.export()``, no contract.
- ``keras_text``: ``TextVectorization`` inside, ``keras.Input((1,), dtype="string")`` (signature input
  ``[-1, 1]``); ``model.export()``, no contract.
- ``tabular``: a functional Keras model with three named ``keras.Input((1,))`` features, each through its
  own adapted ``Normalization``, to one regression output; ``model.export()``, no contract.
- ``mixed``: structured data the Keras way - ``city`` (string, ``StringLookup`` one-hot), ``rooms`` (int64)
  and ``income`` (float32, ``Normalization``), each ``keras.Input((1,))``, to one regression output.
- ``vector``: ``keras.Input((4,), name="measurements")`` -> 3 classes; ``model.export()``, no contract.
- ``two_images``: a ``tf.Module`` taking two images (``left``, ``right``): the gateway cannot map one upload
  onto it.

``build(root)`` writes ``root/<name>/1`` for each and returns the Keras models (the source of truth the
gateway's answers are compared with).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["MOBILENET_CONTRACT", "NAMES", "build"]

NAMES: tuple[str, ...] = (
    "mobilenet",
    "bytes",
    "gray",
    "keras_text",
    "tabular",
    "mixed",
    "vector",
    "two_images",
)
CITIES: tuple[str, ...] = ("Basel", "Bern", "Zürich")
FEATURES: tuple[str, ...] = ("rooms", "age", "income")
MOBILENET_CONTRACT: dict[str, Any] = {
    "model": "mobilenet",
    "task": "image_classification",
    "labels": ["daisy", "dandelion", "rose", "tulip"],
    "predict": {"signature": "serving_default", "outputs": ["probabilities"]},
    "inputs": {
        "pixels": {
            "kind": "image",
            "dtype": "float32",
            "shape": [-1, 32, 32, 3],
            "height": 32,
            "width": 32,
            "channels": 3,
            "range": [0, 255],
            "resize": "crop",
        }
    },
}
TEXTS = ["win free cash now", "free prize claim today", "see you at lunch", "are we still on for tonight"]


def _mobilenet(target: Path) -> Any:
    import keras
    import tensorflow as tf

    inputs = keras.Input((32, 32, 3))
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    base = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=4, classifier_activation="softmax"
    )
    model = keras.Model(inputs, base(scaled))
    contract = tf.constant(json.dumps(MOBILENET_CONTRACT))
    archive = keras.export.ExportArchive()  # what model.export() uses, with an extra endpoint
    archive.track(model)

    def serve(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": model(pixels, training=False)}

    def contract_fn() -> dict[str, tf.Tensor]:
        return {"contract": contract}

    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.float32, name="pixels")],
    )
    archive.add_endpoint("contract", contract_fn, input_signature=[])
    archive.write_out(str(target), verbose=False)
    return model


def _cnn(target: Path, shape: tuple[int, int, int], dtype: str, classes: int) -> Any:
    import keras

    inputs = keras.Input(shape, dtype=dtype)
    x = keras.layers.Rescaling(1 / 255)(inputs) if dtype == "uint8" else inputs
    x = keras.layers.Conv2D(6, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))
    model.export(str(target), verbose=False)
    return model


def _text(target: Path) -> Any:
    import keras

    vectorize = keras.layers.TextVectorization(max_tokens=64, output_sequence_length=6)
    vectorize.adapt(TEXTS)
    inputs = keras.Input((1,), dtype="string")
    x = keras.layers.Embedding(64, 8)(vectorize(inputs))
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    model.export(str(target), verbose=False)
    return model


def _tabular(target: Path) -> Any:
    import keras
    import numpy as np

    rng = np.random.default_rng(23)
    inputs, scaled = [], []
    for k, name in enumerate(FEATURES):
        feature = keras.Input((1,), name=name)
        normalize = keras.layers.Normalization()
        normalize.adapt(rng.normal(10.0 * (k + 1), 3.0, size=(64, 1)).astype("float32"))
        inputs.append(feature)
        scaled.append(normalize(feature))
    x = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()(scaled))
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    model.export(str(target), verbose=False)
    return model


def _mixed(target: Path) -> Any:
    import keras
    import numpy as np

    city = keras.Input((1,), dtype="string", name="city")
    rooms = keras.Input((1,), dtype="int64", name="rooms")
    income = keras.Input((1,), name="income")
    normalize = keras.layers.Normalization()
    normalize.adapt(np.array([[2.5], [4.0], [7.5], [11.0]], np.float32))
    parts = [
        keras.layers.StringLookup(vocabulary=list(CITIES), output_mode="one_hot")(city),
        keras.ops.cast(rooms, "float32"),
        normalize(income),
    ]
    x = keras.layers.Dense(6, activation="relu")(keras.layers.Concatenate()(parts))
    model = keras.Model([city, rooms, income], keras.layers.Dense(1)(x))
    model.export(str(target), verbose=False)
    return model


def _vector(target: Path) -> Any:
    import keras

    inputs = keras.Input((4,), name="measurements")
    x = keras.layers.Dense(6, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    model.export(str(target), verbose=False)
    return model


def _two_images(target: Path) -> None:
    import tensorflow as tf

    class TwoImages(tf.Module):
        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 8, 8, 3], tf.float32, name="left"),
                tf.TensorSpec([None, 8, 8, 3], tf.float32, name="right"),
            ]
        )
        def serve(self, left: tf.Tensor, right: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"difference": tf.reduce_mean(tf.abs(left - right), axis=[1, 2, 3])}

    module = TwoImages()
    tf.saved_model.save(module, str(target), signatures={"serving_default": module.serve})


def build(root: Path) -> dict[str, Any]:
    """Write ``root/<name>/1`` for every model of :data:`NAMES`; return name -> Keras model."""
    import keras

    keras.utils.set_random_seed(23)
    models = {
        "mobilenet": _mobilenet(root / "mobilenet" / "1"),
        "bytes": _cnn(root / "bytes" / "1", (24, 24, 3), "uint8", 3),
        "gray": _cnn(root / "gray" / "1", (28, 28, 1), "float32", 5),
        "keras_text": _text(root / "keras_text" / "1"),
        "tabular": _tabular(root / "tabular" / "1"),
        "mixed": _mixed(root / "mixed" / "1"),
        "vector": _vector(root / "vector" / "1"),
    }
    _two_images(root / "two_images" / "1")
    return models
