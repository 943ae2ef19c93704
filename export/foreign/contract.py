"""The input contract (docs/architecture.md) of a user's model: inferred from the model where it can be, stated
by ``publish`` flags where it cannot, and a record of which is which for the model card.

Inference, input by input of the serving signature:
- dtype string -> ``text`` (signature shape kept: ``[-1]`` or ``[-1, 1]``); a ``TextVectorization`` /
  ``StringLookup`` layer reading it confirms it;
- rank 4 with 1 or 3 channels -> ``image``: ``height`` / ``width`` from the shape or a ``Resizing`` layer,
  ``range`` = what pixel intensities 0 and 255 map to: ``[0, 255]`` for uint8 inputs and for models that
  rescale inside (a ``Rescaling`` layer reading the input), else ``[0.0, 1.0]`` (a default: state it with
  ``--input-range``);
- other numeric inputs -> ``numeric``, with ``mean`` / ``std`` / ``example`` from a ``Normalization`` layer.
The score output is the only output, or ``--output``: ``[-1, K]`` (K >= 2) scores -> classifier, ``[-1]`` or
``[-1, 1]`` -> regressor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from export.errors import InvalidSource
from export.foreign.source import Source, functional
from export.servable import PREDICT_METHOD

__all__ = ["KINDS", "RESIZE_RULES", "TASKS", "Declared", "Inferred", "infer", "input_specs"]

KINDS = ("image", "text", "numeric")
RESIZE_RULES = ("stretch", "pad", "crop")
TASKS = ("classification", "regression", "prediction")
DEFAULT_SIDE = 224  # an image input of any size, with no Resizing layer and no flag
AUGMENTATION = "Random"  # RandomFlip, RandomRotation, RandomZoom, ...: inactive when serving
PREPROCESSING = frozenset(
    {"Rescaling", "Resizing", "Normalization", "TextVectorization", "StringLookup", "CenterCrop"}
)


@dataclass
class Declared:
    """What the user stated with ``publish`` flags (None: infer)."""

    input_kind: str | None = None
    input_range: tuple[float, float] | None = None
    resize: str | None = None
    logits: bool = False
    task: str | None = None
    signature: str | None = None
    output: str | None = None
    labels: list[str] | None = None


@dataclass
class Inferred:
    contract: dict[str, Any]
    signature: str  # the serving (predict) signature
    score_output: str
    task: str  # classification | regression | prediction
    provenance: dict[str, str] = field(default_factory=dict)  # contract field -> how it was decided


def input_specs(function: Any) -> dict[str, tf.TensorSpec]:
    """A signature function's inputs by name (keyword specs, or positional specs by their names)."""
    args, kwargs = function.structured_input_signature
    if kwargs:
        return dict(kwargs)
    return {spec.name: spec for spec in tf.nest.flatten(args)}


def _serving_key(source: Source, declared: Declared) -> str:
    if declared.signature is not None:
        if declared.signature not in source.signatures:
            raise InvalidSource(
                "--signature", f"{declared.signature!r} is not one of {', '.join(source.signatures)}"
            )
        return declared.signature
    if "serving_default" in source.signatures:
        return "serving_default"
    candidates = [
        key
        for key, fn in source.signatures.items()
        if input_specs(fn) and source.method_names.get(key, PREDICT_METHOD) == PREDICT_METHOD
    ]
    if not candidates:
        raise InvalidSource(source.path, "no predict signature with inputs; name one with --signature")

    def numeric_outputs(key: str) -> bool:
        outputs = source.signatures[key].structured_outputs.values()
        return any(t.dtype.is_floating for t in outputs)

    # A model's scores or values are numbers: prefer a signature that gives some, then the first by name.
    return sorted(candidates, key=lambda key: (not numeric_outputs(key), key))[0]


def _chain(model: Any, index: int) -> list[Any]:
    """The preprocessing layers that read Keras input ``index`` one after the other (nested models too)."""
    graph = functional(model)
    tensor = graph.inputs[index]
    layers: list[Any] = []
    for _ in range(8):
        consumers = [
            (layer, node)
            for layer in graph.layers
            for node in getattr(layer, "_inbound_nodes", [])
            if any(t is tensor for t in node.input_tensors)
        ]
        if len(consumers) != 1:
            break
        layer, node = consumers[0]
        kind = type(layer).__name__
        if isinstance(layer, keras.Model):
            inner = [sub for sub in layer.layers if type(sub).__name__ != "InputLayer"]
            if all(_passive(sub) for sub in inner):  # e.g. a Sequential of augmentation layers
                layers.extend(sub for sub in inner if type(sub).__name__ in PREPROCESSING)
                tensor = node.output_tensors[0]
                continue
            if not getattr(functional(layer), "inputs", None):
                break
            graph, tensor = functional(layer), functional(layer).inputs[0]
            continue
        if kind not in PREPROCESSING and not kind.startswith(AUGMENTATION):
            break
        if kind in PREPROCESSING:
            layers.append(layer)
        tensor = node.output_tensors[0]
    return layers


def _passive(layer: Any) -> bool:
    """Preprocessing, or augmentation (the identity when serving)."""
    kind = type(layer).__name__
    return kind in PREPROCESSING or kind.startswith(AUGMENTATION)


def _find(chain: list[Any], *names: str) -> Any:
    return next((layer for layer in chain if type(layer).__name__ in names), None)


def _floats(value: Any) -> list[float]:
    return [round(float(v), 6) for v in np.asarray(value, dtype=np.float64).reshape(-1)]


def _describe_input(
    name: str, spec: tf.TensorSpec, chain: list[Any], declared: Declared, why: dict[str, str]
) -> dict[str, Any]:
    shape = [-1 if dim is None else int(dim) for dim in spec.shape.as_list()]
    if shape:
        shape[0] = -1
    dtype = spec.dtype.name
    entry: dict[str, Any] = {"dtype": dtype, "shape": shape}
    at = f"inputs.{name}"
    if declared.input_kind is not None:
        kind, why[f"{at}.kind"] = declared.input_kind, "given: --input-kind"
    elif spec.dtype == tf.string:
        text_layer = _find(chain, "TextVectorization", "StringLookup")
        kind = "text"
        why[f"{at}.kind"] = "inferred: " + (
            f"{type(text_layer).__name__} layer" if text_layer is not None else "string input"
        )
    elif len(shape) == 4 and shape[3] in (1, 3):
        kind, why[f"{at}.kind"] = "image", "inferred: rank-4 input with 1 or 3 channels"
    elif spec.dtype.is_floating or spec.dtype.is_integer:
        kind, why[f"{at}.kind"] = "numeric", "inferred: numeric input"
    else:
        kind, why[f"{at}.kind"] = "tensor", "inferred: no known kind"
    entry["kind"] = kind
    if kind == "image":
        _describe_image(entry, shape, dtype, chain, declared, at, why)
    elif kind == "numeric":
        norm = _find(chain, "Normalization")
        if norm is not None:
            mean = _floats(norm.mean)
            std = _floats(np.sqrt(np.asarray(norm.variance, dtype=np.float64)))
            width = 1 if len(shape) < 2 else int(np.prod([d for d in shape[1:] if d > 0]))
            entry["mean"], entry["std"] = mean, std
            entry["example"] = mean[0] if width == 1 and len(mean) == 1 else mean[:width]
            why[f"{at}.mean"] = why[f"{at}.std"] = "inferred: Normalization layer"
    return entry


def _describe_image(
    entry: dict[str, Any],
    shape: list[int],
    dtype: str,
    chain: list[Any],
    declared: Declared,
    at: str,
    why: dict[str, str],
) -> None:
    resizing = _find(chain, "Resizing")
    for axis, key in ((1, "height"), (2, "width")):
        if len(shape) > axis and shape[axis] > 0:
            entry[key], why[f"{at}.{key}"] = shape[axis], "inferred: input shape"
        elif resizing is not None:
            entry[key], why[f"{at}.{key}"] = int(getattr(resizing, key)), "inferred: Resizing layer"
        else:
            entry[key], why[f"{at}.{key}"] = DEFAULT_SIDE, "default"
    entry["channels"] = shape[3] if len(shape) == 4 and shape[3] > 0 else 3
    why[f"{at}.channels"] = "inferred: input shape"
    rescaling = _find(chain, "Rescaling")
    if declared.input_range is not None:
        entry["range"], why[f"{at}.range"] = list(map(float, declared.input_range)), "given: --input-range"
    elif dtype == "uint8":
        entry["range"], why[f"{at}.range"] = [0.0, 255.0], "inferred: uint8 input"
    elif rescaling is not None:
        entry["range"] = [0.0, 255.0]
        why[f"{at}.range"] = (
            f"inferred: Rescaling(scale={float(rescaling.scale):g}, offset={float(rescaling.offset):g}) "
            "inside the model takes raw pixels"
        )
    else:
        entry["range"], why[f"{at}.range"] = [0.0, 1.0], "default (state it with --input-range LO HI)"
    if declared.resize is not None:
        entry["resize"], why[f"{at}.resize"] = declared.resize, "given: --resize"
    else:
        entry["resize"], why[f"{at}.resize"] = "stretch", "default"


def _score_output(outputs: dict[str, Any], declared: Declared) -> str:
    if declared.output is not None:
        if declared.output not in outputs:
            raise InvalidSource("--output", f"{declared.output!r} is not one of {', '.join(sorted(outputs))}")
        return declared.output
    if len(outputs) == 1:
        return next(iter(outputs))
    scores = [k for k, t in sorted(outputs.items()) if t.shape.rank == 2 and t.dtype.is_floating]
    return scores[0] if scores else sorted(outputs)[0]


def _task(output: Any, declared: Declared, why: dict[str, str]) -> str:
    if declared.task is not None:
        why["task"] = "given: --task"
        return declared.task
    dims = output.shape.as_list() if output.shape.rank is not None else None
    numeric = output.dtype.is_floating or output.dtype.is_integer
    if numeric and dims is not None and len(dims) == 2 and (dims[1] or 0) >= 2:
        why["task"] = f"inferred: output of shape [-1, {dims[1]}] scores"
        return "classification"
    if numeric and dims is not None and (len(dims) == 1 or (len(dims) == 2 and dims[1] == 1)):
        why["task"] = "inferred: one number per row"
        return "regression"
    why["task"] = "inferred: neither [-1, K] scores nor one number"
    return "prediction"


def infer(source: Source, name: str, declared: Declared) -> Inferred:
    """The contract of ``source`` published as ``name`` (without ``classify`` / ``regress``, which the
    builder adds once the signatures exist)."""
    why: dict[str, str] = {}
    key = _serving_key(source, declared)
    function = source.signatures[key]
    specs = input_specs(function)
    chains: dict[str, list[Any]] = {}
    if source.keras_model is not None:
        chains = {spec_name: _chain(source.keras_model, i) for i, spec_name in enumerate(specs)}
    inputs = {
        input_name: _describe_input(input_name, spec, chains.get(input_name, []), declared, why)
        for input_name, spec in specs.items()
    }
    outputs = dict(function.structured_outputs)
    score = _score_output(outputs, declared)
    task = _task(outputs[score], declared, why)
    labels: list[str] = []
    if task == "classification":
        classes = outputs[score].shape.as_list()[-1]
        if declared.labels is not None:
            if classes is not None and len(declared.labels) != classes:
                raise InvalidSource(
                    "--labels", f"{len(declared.labels)} labels for {classes} classes (output {score!r})"
                )
            labels, why["labels"] = declared.labels, "given: --labels"
        else:
            labels, why["labels"] = [str(i) for i in range(classes or 0)], "default: class indices"
    kinds = {entry["kind"] for entry in inputs.values()}
    task_name = task
    if task == "classification":
        task_name = next((f"{k}_classification" for k in ("image", "text") if kinds == {k}), "classification")
    contract: dict[str, Any] = {
        "model": name,
        "task": task_name,
        "labels": labels,
        "predict": {"signature": key, "outputs": [score]},
        "inputs": inputs,
        "source": {"kind": source.kind, "sha256": source.sha256},
    }
    return Inferred(contract, key, score, task, why)
