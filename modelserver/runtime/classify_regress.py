"""Classify and Regress over tf.Example input, protocol-neutral: build the signature feed from an ``Input``
proto and turn the signature's outputs into ``ClassificationResult`` / ``RegressionResult``, with TF Serving's
checks and messages (``servables/tensorflow/classifier.cc``, ``regressor.cc``, ``util.cc``).

Without ``--enable_signature_method_name_check`` (the default), any signature of the right shape is accepted:
one string input of serialized tf.Examples; ``classes`` and/or ``scores`` out for classify, ``outputs`` for
regress (TF2 models mark every signature as predict).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from modelserver.errors import InvalidArgument
from modelserver.runtime.limits import DEFAULT_LIMITS, RequestLimits
from modelserver.runtime.servable import DEFAULT_SIGNATURE, Servable
from tfs_protos.tensorflow.core.framework import types_pb2
from tfs_protos.tensorflow.core.protobuf import meta_graph_pb2
from tfs_protos.tensorflow_serving.apis import classification_pb2, input_pb2, regression_pb2

__all__ = [
    "CLASSIFY_METHOD",
    "PREDICT_METHOD",
    "REGRESS_METHOD",
    "ExampleSignature",
    "classification_result",
    "example_signature",
    "regression_result",
    "serialized_examples",
]

CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
PREDICT_METHOD = "tensorflow/serving/predict"


def serialized_examples(request_input: input_pb2.Input, limits: RequestLimits = DEFAULT_LIMITS) -> np.ndarray:
    """The request's examples as a DT_STRING vector; a context is merged into each example the way TF Serving
    does it (context bytes followed by example bytes: proto merge semantics). Checked against ``limits``
    before anything is serialized: the count and the bytes (a context counts once per example)."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        listed = request_input.example_list.examples
        limits.check_examples(len(listed), request_input.ByteSize())
        examples = [e.SerializeToString() for e in listed]
    elif kind == "example_list_with_context":
        with_context = request_input.example_list_with_context
        context_bytes = with_context.context.ByteSize()
        limits.check_examples(len(with_context.examples), request_input.ByteSize(), context_bytes)
        context = with_context.context.SerializeToString()
        examples = [context + e.SerializeToString() for e in with_context.examples]
    else:
        raise InvalidArgument("Input is empty.")
    if not examples:
        raise InvalidArgument("Input is empty.")
    array = np.empty(len(examples), dtype=object)
    array[:] = examples
    return array


@dataclass(frozen=True)
class ExampleSignature:
    """A signature usable for Classify/Regress: its key, its single input's name and the outputs to read."""

    key: str
    input_name: str
    outputs: tuple[str, ...]


def example_signature(
    servable: Servable, signature_name: str, method: str, *, method_name_check: bool
) -> ExampleSignature:
    key = signature_name or DEFAULT_SIGNATURE
    signature = servable.signature(key)
    kind = "classification" if method == CLASSIFY_METHOD else "regression"
    if method_name_check and signature.method_name != method:
        raise InvalidArgument(
            f"Expected {kind} signature method_name to be {method}. Was: {signature.method_name}"
        )
    if len(signature.inputs) != 1:
        raise InvalidArgument(f"Expected one input Tensor, got {len(signature.inputs)} in signature {key}.")
    input_name, input_info = next(iter(signature.inputs.items()))
    if input_info.dtype != types_pb2.DT_STRING:
        raise InvalidArgument(
            f"Expected input Tensor of signature {key} to be a string of serialized tf.Examples"
        )
    if method == CLASSIFY_METHOD:
        outputs = tuple(name for name in ("classes", "scores") if name in signature.outputs)
        if not outputs:
            raise InvalidArgument(
                f"Expected classification signature {key} to have an output named classes and/or scores"
            )
    else:
        if "outputs" not in signature.outputs:
            raise InvalidArgument(f"No regression outputs found in signature {key} (expected 'outputs').")
        outputs = ("outputs",)
    return ExampleSignature(key, input_name, outputs)


def _rows(name: str, array: np.ndarray, batch: int) -> np.ndarray:
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2 or array.shape[0] != batch:
        raise InvalidArgument(
            f"Expected {name} Tensor of shape [{batch} x num_classes] but got {list(array.shape)}"
        )
    return array


def classification_result(
    outputs: Mapping[str, np.ndarray], batch: int
) -> classification_pb2.ClassificationResult:
    classes = outputs.get("classes")
    scores = outputs.get("scores")
    if classes is not None:
        classes = _rows("classes", classes, batch)
        if classes.dtype != object:
            raise InvalidArgument("Expected classes Tensor of DT_STRING.")
    if scores is not None:
        scores = _rows("scores", scores, batch)
        if scores.dtype != np.float32:
            raise InvalidArgument("Expected scores Tensor of DT_FLOAT.")
    if classes is not None and scores is not None and classes.shape != scores.shape:
        raise InvalidArgument("Tensors class and score should match in shape.")
    result = classification_pb2.ClassificationResult()
    width = (classes if classes is not None else scores).shape[1]  # type: ignore[union-attr]
    for row in range(batch):
        classifications = result.classifications.add()
        for column in range(width):
            entry = classifications.classes.add()
            if classes is not None:
                label = classes[row, column]
                entry.label = label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)
            if scores is not None:
                entry.score = float(scores[row, column])
    return result


def regression_result(outputs: Mapping[str, np.ndarray], batch: int) -> regression_pb2.RegressionResult:
    values = outputs["outputs"]
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or values.shape[0] != batch:
        raise InvalidArgument(
            f"Expected output Tensor shape to be [{batch}] or [{batch}, 1] but got {list(values.shape)}"
        )
    if values.dtype != np.float32:
        raise InvalidArgument("Expected output Tensor of DT_FLOAT.")
    result = regression_pb2.RegressionResult()
    for value in values.tolist():
        result.regressions.add(value=value)
    return result


def method_of(signature: meta_graph_pb2.SignatureDef) -> str:
    return str(signature.method_name)
