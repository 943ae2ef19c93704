"""``python -m export train-images DIR --name NAME``: an image classifier from a class-folder tree
(``DIR/<label>/<photo>``, photos of any size and mode), published through ``python -m export publish``.

- Split: per class, a seeded shuffle cut 70 / 15 / 15 into train / validation / test (deterministic: the same
  tree gives the same split); labels are the folder names in sorted order.
- Model: a small CNN from scratch taking raw RGB pixels (``Rescaling`` inside, so the contract says
  ``range [0, 255]``) with flip / rotation / zoom augmentation, or ``--fine-tune MODEL.keras``: the user's
  model without its last layer as a frozen base under a new head, then its top ``--unfreeze N`` layers
  trained at a small learning rate.
- Training: early stopping on validation loss that restores the best weights, a checkpoint of the best epoch
  (``--checkpoint``, the SOURCE that is published), TensorBoard logs with ``--tensorboard DIR``.
- The card gets test accuracy beside the majority-class baseline, the curves and a confusion matrix picture.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from export.errors import InvalidSource
from export.foreign import pixels
from export.foreign.build import MODEL_NAME, Request, Trained, publish
from export.foreign.contract import Declared
from export.publish import resolve_version
from export.servable import SEED
from export.training import set_seed

__all__ = ["CONFUSION_FILE", "Settings", "Split", "build_model", "read_tree", "train_and_publish"]

CONFUSION_FILE = "confusion_matrix.png"
FRACTIONS = (0.70, 0.15)  # train, validation; the rest is the test set
FINE_TUNE_RATE = 1e-5
RATE = 1e-3


@dataclass
class Settings:
    name: str
    models_dir: Path = Path("models")
    version: str | int = "auto"
    size: int = 64
    epochs: int = 20
    patience: int = 4
    batch_size: int = 32
    tensorboard: Path | None = None
    fine_tune: Path | None = None
    unfreeze: int = 0
    checkpoint: Path | None = None  # default: checkpoints/<name>.keras


@dataclass
class Split:
    labels: list[str]
    files: dict[str, list[Path]]  # train / validation / test -> photos
    targets: dict[str, np.ndarray]  # the same order: class indices


def read_tree(directory: Path) -> Split:
    """The class folders of ``directory`` and their deterministic split."""
    if not directory.is_dir():
        raise InvalidSource(directory, "no such directory")
    classes: dict[str, list[Path]] = {}
    for folder in sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")):
        photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in pixels.IMAGE_SUFFIXES)
        if photos:
            classes[folder.name] = photos
    if len(classes) < 2:
        raise InvalidSource(directory, "needs at least two class folders with photos (DIR/<label>/<photo>)")
    small = [label for label, photos in classes.items() if len(photos) < 3]
    if small:
        raise InvalidSource(directory, f"classes {small} have fewer than 3 photos (train, validation, test)")
    rng = np.random.default_rng(SEED)
    files: dict[str, list[Path]] = {"train": [], "validation": [], "test": []}
    targets: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    for index, photos in enumerate(classes.values()):
        order = [photos[i] for i in rng.permutation(len(photos))]
        n_val = max(1, round(len(order) * FRACTIONS[1]))
        n_test = max(1, len(order) - round(len(order) * FRACTIONS[0]) - n_val)
        n_train = len(order) - n_val - n_test
        for part, chunk in (
            ("train", order[:n_train]),
            ("validation", order[n_train : n_train + n_val]),
            ("test", order[n_train + n_val :]),
        ):
            files[part].extend(chunk)
            targets[part].extend([index] * len(chunk))
    return Split(list(classes), files, {k: np.asarray(v, np.int64) for k, v in targets.items()})


def _augmentation() -> keras.Sequential:
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=SEED),
            keras.layers.RandomRotation(0.05, seed=SEED),
            keras.layers.RandomZoom(0.1, seed=SEED),
        ],
        name="augmentation",
    )


def build_model(size: int, classes: int) -> keras.Model:
    """A small CNN on raw RGB pixels (0..255)."""
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = _augmentation()(x)
    for filters in (16, 32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="image_folder_cnn")


def _fine_tune_model(path: Path, classes: int) -> tuple[keras.Model, keras.Model, int]:
    """The user's model minus its last layer as a frozen base, under a new head; returns (model, base,
    side)."""
    try:
        user = keras.models.load_model(path, compile=False)
    except Exception as err:  # the loader's own words are the reason
        raise InvalidSource(path, f"Keras cannot load the model to fine-tune: {err}") from None
    shape = user.inputs[0].shape
    if len(shape) != 4 or shape[1] is None or shape[1] != shape[2] or shape[3] != 3:
        raise InvalidSource(path, f"fine-tuning needs a square RGB image input, not {list(shape)}")
    base = keras.Model(user.inputs, user.layers[-2].output, name="base")
    base.trainable = False
    inputs = keras.Input(tuple(shape[1:]), name="image")
    # The base's own input range: raw pixels when it rescales itself, otherwise [0, 1].
    rescales = any(type(layer).__name__ == "Rescaling" for layer in user.layers[:4])
    x = inputs if rescales else keras.layers.Rescaling(1 / 255.0)(inputs)
    x = _augmentation()(x)
    x = base(x, training=False)
    if len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="fine_tuned"), base, int(shape[1])


class EpochLogs(keras.callbacks.Callback):
    """TensorBoard scalars per epoch (``train/`` and ``validation/`` runs, as Keras' own callback writes them)
    through TensorFlow's summary ops alone: the tensorboard package need not be installed to write them."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        self._tf = tf
        self._writers = {
            run: tf.summary.create_file_writer(str(directory / run)) for run in ("train", "validation")
        }
        self._metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
        )
        self._epoch = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for key, value in (logs or {}).items():
            run, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            with self._writers[run].as_default():
                self._tf.summary.write(
                    f"epoch_{name}", float(value), step=self._epoch, metadata=self._metadata
                )
        self._epoch += 1  # across the fine-tuning phases too

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        for writer in self._writers.values():
            writer.flush()


def _load(files: list[Path], size: int) -> np.ndarray:
    return np.stack([pixels.load(f, size, size, 3) for f in files]).astype(np.float32)


def _fit(
    model: keras.Model,
    data: dict[str, Any],
    settings: Settings,
    callbacks: list[Any],
    rate: float,
    epochs: int,
) -> dict[str, list[float]]:
    model.compile(
        optimizer=keras.optimizers.Adam(rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    stopping = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=settings.patience, restore_best_weights=True
    )
    history = model.fit(
        data["train"],
        data["train_y"],
        validation_data=(data["validation"], data["validation_y"]),
        epochs=epochs,
        batch_size=settings.batch_size,
        callbacks=[stopping, *callbacks],
        shuffle=True,
        verbose=2,
    )
    return {k: [float(v) for v in values] for k, values in history.history.items()}


def confusion(truth: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def confusion_png(matrix: np.ndarray, labels: list[str], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    side = max(3.5, 0.5 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (row, col), count in np.ndenumerate(matrix):
        ax.text(col, row, str(count), ha="center", va="center")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return buffer.getvalue()


def train_and_publish(directory: Path, settings: Settings, declared: Declared | None = None) -> Path:
    """Train on the class-folder tree at ``directory`` and publish the best epoch; return the version."""
    if not MODEL_NAME.fullmatch(settings.name):
        raise InvalidSource(
            "--name", f"{settings.name!r} is not a model name (letters, digits, '.', '_', '-')"
        )
    resolve_version(Path(settings.models_dir) / settings.name, settings.version)  # before training
    split = read_tree(Path(directory))
    set_seed()
    classes = len(split.labels)
    if settings.fine_tune is not None:
        model, base, size = _fine_tune_model(settings.fine_tune, classes)
    else:
        model, base, size = build_model(settings.size, classes), None, settings.size
    data: dict[str, Any] = {part: _load(files, size) for part, files in split.files.items()}
    data.update({f"{part}_y": targets for part, targets in split.targets.items()})
    checkpoint = settings.checkpoint or Path("checkpoints") / f"{settings.name}.keras"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    callbacks: list[Any] = [
        keras.callbacks.ModelCheckpoint(str(checkpoint), monitor="val_loss", save_best_only=True)
    ]
    if settings.tensorboard is not None:
        callbacks.append(EpochLogs(settings.tensorboard))
    started = time.monotonic()
    history = _fit(model, data, settings, callbacks, RATE, settings.epochs)
    phases = [{"phase": "head" if base is not None else "all", "epochs": len(history["loss"])}]
    if base is not None and settings.unfreeze > 0:
        base.trainable = True
        for layer in base.layers[: -settings.unfreeze]:
            layer.trainable = False
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False  # keep the statistics the base learnt
        more = _fit(model, data, settings, callbacks, FINE_TUNE_RATE, settings.epochs)
        phases.append({"phase": f"top {settings.unfreeze} layers", "epochs": len(more["loss"])})
        history = {k: history[k] + more.get(k, []) for k in history}
    seconds = time.monotonic() - started
    best = keras.models.load_model(checkpoint, compile=False)
    predicted = np.asarray(best.predict(data["test"], verbose=0)).argmax(axis=1)
    truth = split.targets["test"]
    majority = int(np.bincount(split.targets["train"], minlength=classes).argmax())
    metrics = {
        "accuracy": float((predicted == truth).mean()),
        "baseline_accuracy": float((truth == majority).mean()),
    }
    matrix = confusion(truth, predicted, classes)
    declared = declared or Declared()
    declared.labels = declared.labels or split.labels
    trained = Trained(
        metrics=metrics,
        history=history,
        training={
            "epochs": len(history["loss"]),
            "seconds": round(seconds, 1),
            "phases": phases,
            "batch_size": settings.batch_size,
            "optimizer": "adam",
            "learning_rate": RATE,
            "fine_tune": str(settings.fine_tune) if settings.fine_tune else None,
            "checkpoint": str(checkpoint),
        },
        data={
            "source": str(Path(directory).resolve()),
            "layout": "class folders",
            "splits": {part: len(files) for part, files in split.files.items()},
            "classes": {
                label: int((split.targets["train"] == i).sum()) for i, label in enumerate(split.labels)
            },
        },
        curves={"loss": ("loss", "val_loss"), "accuracy": ("accuracy", "val_accuracy")},
        files={CONFUSION_FILE: confusion_png(matrix, split.labels, f"{settings.name}: test set")},
        card_fields={"confusion_matrix": {"file": CONFUSION_FILE, "counts": matrix.tolist()}},
    )
    return publish(
        Request(
            source=checkpoint,
            name=settings.name,
            models_dir=settings.models_dir,
            version=settings.version,
            declared=declared,
            samples=split.files["test"][:4],
            trained=trained,
        )
    )
