"""``publish --eval``: the user's model on their labelled samples, beside the trivial baseline, for the card.

- a folder in the class-folder layout (``DIR/<label>/<photo or .txt>``): accuracy against the majority class;
- a CSV with one column per input and one more (the target): RMSE against predicting the mean (regressor),
  or accuracy against the majority class (classifier; the target is a label or a class index).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from export.errors import InvalidSource
from export.foreign import pixels, samples
from export.foreign.contract import Inferred

__all__ = ["BATCH", "accuracy", "evaluate", "predict"]

BATCH = 64


def predict(function: Any, output: str, inputs: dict[str, np.ndarray]) -> np.ndarray:
    rows = len(next(iter(inputs.values())))
    parts = [
        np.asarray(function(**{k: tf.constant(v[i : i + BATCH]) for k, v in inputs.items()})[output])
        for i in range(0, rows, BATCH)
    ]
    return np.concatenate(parts)


def accuracy(scores: np.ndarray, truth: np.ndarray, classes: int) -> dict[str, float]:
    baseline = np.bincount(truth, minlength=classes).max() / len(truth)
    return {"accuracy": float((scores.argmax(axis=1) == truth).mean()), "baseline_accuracy": float(baseline)}


def _folder(path: Path, inferred: Inferred) -> tuple[dict[str, np.ndarray], np.ndarray, list[str]]:
    labels = inferred.contract["labels"]
    (name, entry), *others = inferred.contract["inputs"].items()
    if others or entry["kind"] not in ("image", "text"):
        raise InvalidSource(path, "a class-folder --eval needs a model with one image or text input")
    folders = sorted(p for p in path.iterdir() if p.is_dir())
    unknown = [f.name for f in folders if f.name not in labels]
    if unknown:
        raise InvalidSource(path, f"folders {unknown} are not labels of the model (give --labels)")
    rows, truth, files = [], [], []
    for folder in folders:
        for file in sorted(p for p in folder.iterdir() if p.is_file()):
            if entry["kind"] == "image" and file.suffix.lower() in pixels.IMAGE_SUFFIXES:
                rows.append(pixels.load_for(file, entry))
            elif entry["kind"] == "text" and file.suffix.lower() == ".txt":
                rows.append(np.asarray(file.read_text(encoding="utf-8").strip().encode(), dtype=object))
            else:
                continue
            truth.append(labels.index(folder.name))
            files.append(str(file.relative_to(path)))
    if not rows:
        raise InvalidSource(path, "no samples in the class folders")
    if entry["kind"] == "image":
        values = pixels.to_input(np.stack(rows), entry)
    else:
        values = np.asarray([r[()] for r in rows], dtype=object).reshape(len(rows), *entry["shape"][1:])
    return {name: values}, np.asarray(truth), files


Evaluated = tuple[dict[str, float], dict[str, Any], dict[str, np.ndarray]]


def evaluate(path: Path, function: Any, inferred: Inferred) -> Evaluated:
    """Metrics (each with its baseline), what was evaluated (for the card's ``data``) and the inputs it was
    evaluated on (the reference of the version's drift profile, ``export.profile``)."""
    path = Path(path)
    task, output = inferred.task, inferred.score_output
    labels = inferred.contract["labels"]
    if path.is_dir():
        if task != "classification":
            raise InvalidSource(path, "a class-folder --eval needs a classifier; give a CSV for a regressor")
        inputs, truth, files = _folder(path, inferred)
        metrics = accuracy(predict(function, output, inputs), truth, len(labels))
        return (
            metrics,
            {"eval": {"path": str(path), "layout": "class folders", "samples": len(files)}},
            inputs,
        )
    if path.suffix.lower() != ".csv" or not path.is_file():
        raise InvalidSource(path, "--eval takes a class-folder directory or a .csv file")
    with path.open(newline="", encoding="utf-8") as handle:
        records = list(csv.DictReader(handle))
    inputs = samples.from_records(records, inferred.contract["inputs"], str(path))
    targets = [c for c in records[0] if c not in inferred.contract["inputs"]]
    if len(targets) != 1:
        raise InvalidSource(path, f"expected one target column beside the inputs, found {targets}")
    column = [r[targets[0]] for r in records]
    predicted = predict(function, output, inputs)
    if task == "regression":
        truth = np.asarray(column, dtype=np.float64)
        rmse = float(np.sqrt(np.mean((predicted.reshape(-1) - truth) ** 2)))
        baseline = float(np.sqrt(np.mean((truth - truth.mean()) ** 2)))
        metrics = {"rmse": rmse, "baseline_rmse": baseline}
    elif task == "classification":
        truth = np.asarray([labels.index(v) if v in labels else int(v) for v in column])
        metrics = accuracy(predicted, truth, len(labels))
    else:
        raise InvalidSource(path, "--eval needs a classifier or a regressor")
    return metrics, {"eval": {"path": str(path), "target": targets[0], "samples": len(records)}}, inputs
