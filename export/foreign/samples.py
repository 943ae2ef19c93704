"""Held-out rows for a user's model (verification, the C++ gate, frozen-graph check and warm-up): from the
files the user gives with ``--samples`` (photos, ``.txt`` with one text per line, ``.csv`` with a header of
input names), or generated from the contract; and the same rows as serialized ``tf.Example``\\s."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from export.errors import InvalidSource
from export.foreign import pixels
from export.servable import SEED

__all__ = ["ROWS", "examples", "from_files", "generate", "parse_spec"]

ROWS = 8
TEXTS = (
    "win a free prize now",
    "see you at lunch tomorrow",
    "call me when you are home",
    "urgent: claim your cash reward",
)


def _row_shape(entry: dict[str, Any]) -> tuple[int, ...]:
    if entry["kind"] == "image":
        return (entry["height"], entry["width"], entry["channels"])
    return tuple(max(1, d) for d in entry["shape"][1:])


def generate(inputs: dict[str, dict[str, Any]], rows: int = ROWS) -> dict[str, np.ndarray]:
    """Deterministic rows for every input of the contract (its kind, dtype, range and statistics)."""
    rng = np.random.default_rng(SEED)
    out: dict[str, np.ndarray] = {}
    for name, entry in inputs.items():
        shape = (rows, *_row_shape(entry))
        dtype = np.dtype(object if entry["dtype"] == "string" else entry["dtype"])
        if entry["dtype"] == "string":
            flat = [TEXTS[i % len(TEXTS)].encode() for i in range(int(np.prod(shape)))]
            out[name] = np.asarray(flat, dtype=object).reshape(shape)
        elif entry["kind"] == "image":
            out[name] = pixels.to_input(rng.integers(0, 256, shape, dtype=np.uint8), entry)
        elif dtype.kind == "f":
            mean = np.asarray(entry.get("mean", 0.0), np.float64)
            std = np.asarray(entry.get("std", 1.0), np.float64)
            values = rng.normal(size=shape)
            if mean.size in (1, int(np.prod(shape[1:]))):
                values = values * std.reshape(-1)[: mean.size].reshape(mean.shape) + mean
            out[name] = values.astype(dtype)
        elif dtype.kind in "iu":
            out[name] = rng.integers(0, 10, shape).astype(dtype)
        elif dtype.kind == "b":
            out[name] = rng.random(shape) < 0.5
        else:
            raise InvalidSource(f"input {name!r}", f"cannot make sample rows of dtype {entry['dtype']}")
    return out


def from_files(files: Sequence[Path], inputs: dict[str, dict[str, Any]]) -> dict[str, np.ndarray]:
    """The user's ``--samples``: photos for a single image input, text lines for a single text input, or CSV
    rows with one column per input."""
    kinds = {entry["kind"] for entry in inputs.values()}
    if all(f.suffix.lower() == ".csv" for f in files):
        rows: list[dict[str, str]] = []
        for file in files:
            with file.open(newline="", encoding="utf-8") as handle:
                rows.extend(csv.DictReader(handle))
        return from_records(rows, inputs, str(files[0]))
    if len(inputs) != 1:
        raise InvalidSource("--samples", "a model with several inputs takes CSV samples (one column each)")
    name, entry = next(iter(inputs.items()))
    if kinds == {"image"}:
        images = [pixels.load_for(f, entry) for f in files]
        return {name: pixels.to_input(np.stack(images), entry)}
    if kinds == {"text"}:
        lines = [line for f in files for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
        shape = (len(lines), *_row_shape(entry))
        return {name: np.asarray([line.encode() for line in lines], dtype=object).reshape(shape)}
    raise InvalidSource("--samples", f"give photos, .txt or .csv files for a {entry['kind']} input")


def from_records(
    rows: list[dict[str, str]], inputs: dict[str, dict[str, Any]], where: str
) -> dict[str, np.ndarray]:
    """CSV rows (column per input) as input arrays."""
    if not rows:
        raise InvalidSource(where, "no rows")
    missing = [name for name in inputs if name not in rows[0]]
    if missing:
        raise InvalidSource(where, f"no column for the inputs {', '.join(missing)}")
    out = {}
    for name, entry in inputs.items():
        shape = (len(rows), *_row_shape(entry))
        if entry["dtype"] == "string":
            out[name] = np.asarray([r[name].encode() for r in rows], dtype=object).reshape(shape)
        else:
            out[name] = (
                np.asarray([float(r[name] or "nan") for r in rows]).astype(entry["dtype"]).reshape(shape)
            )
    return out


def parse_spec(inputs: dict[str, dict[str, Any]]) -> dict[str, tf.io.FixedLenFeature]:
    """The tf.Example features of the classify / regress signatures: one per input, strings as bytes_list,
    numbers as float_list (cast to the input's dtype after parsing)."""
    return {
        name: tf.io.FixedLenFeature(
            _row_shape(entry), tf.string if entry["dtype"] == "string" else tf.float32
        )
        for name, entry in inputs.items()
    }


def examples(values: dict[str, np.ndarray]) -> list[bytes]:
    rows = len(next(iter(values.values())))
    out = []
    for row in range(rows):
        feature = {}
        for name, column in values.items():
            flat = np.asarray(column[row]).reshape(-1)
            if column.dtype == object:
                feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=list(flat)))
            else:
                values_ = flat.astype(np.float32).tolist()
                feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values_))
        out.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return out
