"""Shared training plumbing: seeding, Keras fit with progress bars, history and timing."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from export.servable import SEED

__all__ = ["bytes_example", "fit", "float_example", "seeded_permutation", "set_seed", "track_weights"]


def seeded_permutation(n: int) -> np.ndarray:
    """The fixed shuffle every split is cut from."""
    return np.random.default_rng(SEED).permutation(n)


def fit(
    model: keras.Model,
    x: Any,
    y: np.ndarray,
    validation: tuple[Any, np.ndarray],
    *,
    epochs: int,
    batch_size: int,
) -> tuple[dict[str, list[float]], float]:
    """Train with Keras progress bars; return the per-epoch history (plain floats) and the wall time in
    seconds."""
    started = time.monotonic()
    history = model.fit(
        x, y, validation_data=validation, epochs=epochs, batch_size=batch_size, verbose=1, shuffle=True
    )
    seconds = time.monotonic() - started
    return {key: [float(v) for v in values] for key, values in history.history.items()}, seconds


def track_weights(module: tf.Module, model: keras.Model) -> None:
    """Make ``module`` own the model's weights (BatchNorm statistics included) but not the model object.

    The serving functions call the model through a closure; the saver only needs its variables tracked.
    Tracking the compiled model itself would also save the optimizer (Adam's moments: 3x the size).

    Track the ``tf.Variable`` under each Keras 3 variable (``.value``), not the Keras wrapper: the saver
    exports a wrapper as a *new* variable (``Variable_N``) that the restore op fills, while the serving
    functions read the underlying layer variable - which TensorFlow's C++ loader (TF Serving) then never
    restores ("Could not find variable ..."). The Python loader hides this by mapping the object graph.
    """
    module.model_weights = [getattr(weight, "value", weight) for weight in model.weights]


def set_seed() -> None:
    keras.utils.set_random_seed(SEED)


def float_example(features: Mapping[str, Sequence[float]]) -> bytes:
    """A serialized tf.Example with one float_list per feature; a NaN value leaves the feature out
    (unknown)."""
    feature = {
        name: tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))
        for name, values in features.items()
        if not any(np.isnan(v) for v in values)
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def bytes_example(name: str, value: bytes) -> bytes:
    feature = {name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
