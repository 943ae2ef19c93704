"""Fashion-MNIST image classifier: a small Keras CNN on 28x28x1 float images in [0, 1] (white garment on
black)."""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from export import explain, signatures
from export.data import FASHION_LABELS, load_fashion
from export.servable import CLASSIFY_METHOD, Servable
from export.training import fit, float_example, seeded_permutation, set_seed, track_weights

__all__ = ["DEFAULT_EPOCHS", "LABELS", "train"]

LABELS = FASHION_LABELS
DEFAULT_EPOCHS = 6
VALIDATION = 5000  # held out of the training files for the curves; the t10k files are the test set
BATCH_SIZE = 128
LEARNING_RATE = 2e-3
HELD_OUT = 64  # test rows carried for verification, frozen-graph equivalence and warm-up

CONTRACT: dict[str, Any] = {
    "model": "fashion",
    "task": "image_classification",
    "labels": LABELS,
    "predict": {"signature": "serving_default", "outputs": ["probabilities"]},
    "classify": {"signature": "classify", "feature": "image"},
    "explain": explain.contract_section("black image", classes=True),
    "inputs": {
        "image": {
            "dtype": "float32",
            "shape": [-1, 28, 28, 1],
            "kind": "image",
            "height": 28,
            "width": 28,
            "channels": 1,
            "range": [0.0, 1.0],
            "background": "black",
        },
    },
}


def build_model() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((28, 28, 1), name="image"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(len(LABELS), activation="softmax", name="probabilities"),
        ],
        name="fashion_cnn",
    )


def train(
    data_dir: str | os.PathLike[str] | None = None, epochs: int | None = None, limit: int | None = None
) -> Servable:
    """Train on the training files (a fixed slice of ``limit`` rows when given) and test on the t10k files."""
    set_seed()
    epochs = DEFAULT_EPOCHS if epochs is None else epochs
    data = load_fashion(data_dir)
    x_all = (data.x_train.astype(np.float32) / 255.0)[..., None]
    y_all = data.y_train.astype(np.int64)
    order = seeded_permutation(len(y_all))
    validation = max(1, limit // 10) if limit else VALIDATION
    train_idx = order[validation:] if not limit else order[validation : validation + limit]
    val_idx = order[:validation]
    x_test = (data.x_test.astype(np.float32) / 255.0)[..., None]
    y_test = data.y_test.astype(np.int64)
    if limit:
        x_test, y_test = x_test[:limit], y_test[:limit]

    model = build_model()
    # Cosine decay to zero over the run: the last epochs settle instead of bouncing between BatchNorm states.
    steps = epochs * -(-len(train_idx) // BATCH_SIZE)
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(LEARNING_RATE, steps)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history, seconds = fit(
        model,
        x_all[train_idx],
        y_all[train_idx],
        (x_all[val_idx], y_all[val_idx]),
        epochs=epochs,
        batch_size=BATCH_SIZE,
    )
    predicted = model.predict(x_test, batch_size=512, verbose=0).argmax(axis=1)
    accuracy = float((predicted == y_test).mean())
    baseline = float(np.bincount(y_test, minlength=len(LABELS)).max() / len(y_test))

    module = tf.Module()
    track_weights(module, model)

    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32, name="image")])
    def serving_default(image: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": model(image, training=False)}

    def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        spec = {"image": tf.io.FixedLenFeature([28 * 28], tf.float32)}
        images = tf.reshape(tf.io.parse_example(serialized, spec)["image"], [-1, 28, 28, 1])
        return signatures.class_outputs(LABELS, model(images, training=False))

    module.serving_default = serving_default
    module.classify = signatures.example_function(parse)
    module.contract = signatures.contract_function(CONTRACT)
    image_spec = tf.TensorSpec([None, 28, 28, 1], tf.float32, name="image")
    module.explain = explain.explain_signature(model, image_spec, baseline=0.0)  # black image
    held_out = x_test[:HELD_OUT]
    return Servable(
        name="fashion",
        task="image_classification",
        labels=LABELS,
        module=module,
        signatures={
            "serving_default": serving_default.get_concrete_function(),
            "classify": module.classify.get_concrete_function(),
            "contract": module.contract.get_concrete_function(),
            "explain": module.explain.get_concrete_function(),
        },
        method_names={"classify": CLASSIFY_METHOD},
        contract=CONTRACT,
        frozen_source=serving_default.get_concrete_function(),
        frozen_note="serving_default with every variable folded into a constant",
        predict_inputs={"image": held_out},
        examples=[float_example({"image": row.reshape(-1).tolist()}) for row in held_out],
        signature_inputs={"explain": explain.feeds({"image": held_out}, classes=True)},
        metrics={"accuracy": accuracy, "baseline_accuracy": baseline},
        history=history,
        training={
            "epochs": epochs,
            "seconds": round(seconds, 1),
            "batch_size": BATCH_SIZE,
            "optimizer": "adam, cosine decay",
            "learning_rate": LEARNING_RATE,
        },
        data={
            "source": "Fashion-MNIST (Zalando Research), IDX files",
            "files": data.files,
            "splits": {
                "train": len(train_idx),
                "validation": len(val_idx),
                "test": len(y_test),
            },
        },
        parameters=int(model.count_params()),
        curves={"loss": ("loss", "val_loss"), "accuracy": ("accuracy", "val_accuracy")},
        reference={"image": x_all[train_idx[:5000]]},  # the drift profile's reference (export.profile)
    )
