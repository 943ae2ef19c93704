"""Signature building blocks and the method-name rewrite of ``saved_model.pb``.

TF2's saver records every signature as ``tensorflow/serving/predict``. TensorFlow Serving's Classify and
Regress APIs (and clients that check ``method_name``) expect ``tensorflow/serving/classify`` /
``.../regress``, so after
``tf.saved_model.save`` the export rewrites those method names in place (atomically) and verifies them by
reading the file back. ``describe`` renders the signatures for the model card.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.saved_model import fingerprinting_utils

from export.errors import VerificationFailed
from export.servable import Servable

__all__ = [
    "class_outputs",
    "contract_function",
    "describe",
    "read_saved_model",
    "rewrite_method_names",
    "save",
    "verify_method_names",
]

SERVE_TAG = "serve"


def contract_function(contract: Mapping[str, Any]) -> Any:
    """The ``contract`` signature: no inputs, one string scalar output holding the JSON input contract."""
    text = json.dumps(contract, sort_keys=False)

    @tf.function(input_signature=[])
    def contract_fn() -> dict[str, tf.Tensor]:
        return {"contract": tf.constant(text, dtype=tf.string)}

    return contract_fn


def class_outputs(labels: list[str], scores: tf.Tensor) -> dict[str, tf.Tensor]:
    """The Classify API's outputs: ``classes`` (labels repeated per row) beside ``scores``, both [batch,
    classes]."""
    batch = tf.shape(scores)[0]
    classes = tf.tile(tf.constant([labels], dtype=tf.string), tf.stack([batch, 1]))
    return {"classes": classes, "scores": tf.identity(scores)}


def example_function(parse: Callable[[tf.Tensor], dict[str, tf.Tensor]]) -> Any:
    """Wrap ``parse`` (serialized tf.Examples [batch] -> outputs) as a signature with the input ``inputs``."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def from_examples(inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        return parse(inputs)

    return from_examples


def save(servable: Servable, directory: Path) -> None:
    """Write the SavedModel of ``servable`` into ``directory`` and set and verify its method names."""
    # No gradient functions: nothing trains a served model, and tracing them costs more than the save.
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    tf.saved_model.save(servable.module, str(directory), signatures=servable.signatures, options=options)
    rewrite_method_names(directory, servable.method_names)
    verify_method_names(directory, servable.method_names)
    # fingerprint.pb hashes saved_model.pb: recompute it for the rewritten file.
    fingerprinting_utils.write_fingerprint(str(directory))


def read_saved_model(directory: Path) -> saved_model_pb2.SavedModel:
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((directory / "saved_model.pb").read_bytes())
    return proto


def _serving_graph(proto: saved_model_pb2.SavedModel) -> Any:
    for meta_graph in proto.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return meta_graph
    raise VerificationFailed("?", "saved_model.pb has no meta graph tagged 'serve'")


def rewrite_method_names(directory: Path, method_names: Mapping[str, str]) -> None:
    """Set ``method_name`` of each listed signature in ``saved_model.pb``; the file is replaced atomically."""
    path = directory / "saved_model.pb"
    proto = read_saved_model(directory)
    signature_defs = _serving_graph(proto).signature_def
    for key, method in method_names.items():
        if key not in signature_defs:
            raise VerificationFailed(
                directory.parent.name, f"signature {key!r} is missing from saved_model.pb"
            )
        signature_defs[key].method_name = method
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        handle.write(proto.SerializeToString(deterministic=True))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def verify_method_names(directory: Path, method_names: Mapping[str, str]) -> None:
    signature_defs = _serving_graph(read_saved_model(directory)).signature_def
    for key, method in method_names.items():
        actual = signature_defs[key].method_name if key in signature_defs else "(missing)"
        if actual != method:
            raise VerificationFailed(
                directory.parent.name, f"signature {key!r} has method {actual!r}, not {method!r}"
            )


def _tensor_info(info: Any) -> dict[str, Any]:
    dims = [-1 if dim.size < 0 else int(dim.size) for dim in info.tensor_shape.dim]
    return {"dtype": tf.dtypes.as_dtype(info.dtype).name, "shape": dims}


def describe(directory: Path) -> dict[str, Any]:
    """Every signature as written: key -> method name, inputs and outputs with dtype and shape."""
    signature_defs = _serving_graph(read_saved_model(directory)).signature_def
    return {
        key: {
            "method_name": sig.method_name,
            "inputs": {name: _tensor_info(info) for name, info in sorted(sig.inputs.items())},
            "outputs": {name: _tensor_info(info) for name, info in sorted(sig.outputs.items())},
        }
        for key, sig in sorted(signature_defs.items())
        if not key.startswith("__")
    }
