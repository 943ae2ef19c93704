"""A loaded model version: its SignatureDefs and a checked, synchronous ``run`` of one signature.

Thread safety: ``run`` may be called from many threads at once (TensorFlow functions are re-entrant). It is
only called through a ``ServableHandle`` so the version cannot be unloaded underneath it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_shape_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from modelserver.errors import InvalidArgument, ServingError
from modelserver.tensors import dtype_name

__all__ = ["DEFAULT_SIGNATURE", "Servable", "check_inputs", "numpy_dtype", "serving_error_from_tf"]

DEFAULT_SIGNATURE = "serving_default"


def numpy_dtype(dtype: int) -> np.dtype[Any]:
    """The numpy dtype a signature input of TF ``dtype`` is fed with (object for DT_STRING)."""
    if dtype == types_pb2.DT_STRING:
        return np.dtype(object)
    return np.dtype(tf.dtypes.as_dtype(dtype).as_numpy_dtype)


def _array_dtype_enum(array: np.ndarray) -> int:
    if array.dtype == object or array.dtype.kind in "SU":
        return types_pb2.DT_STRING
    try:
        return int(tf.dtypes.as_dtype(array.dtype).as_datatype_enum)
    except TypeError:
        return types_pb2.DT_INVALID


def _shape_text(shape: Sequence[int] | None) -> str:
    return "<unknown>" if shape is None else "[" + ",".join(str(d) for d in shape) + "]"


def _signature_shape(proto: tensor_shape_pb2.TensorShapeProto) -> tuple[int, ...] | None:
    return None if proto.unknown_rank else tuple(int(d.size) for d in proto.dim)


def serving_error_from_tf(exc: BaseException) -> ServingError:
    """A TensorFlow runtime failure as a ServingError with the same status code."""
    if isinstance(exc, ServingError):
        return exc
    if isinstance(exc, tf.errors.OpError):
        code = next((c for c in grpc.StatusCode if c.value[0] == exc.error_code), grpc.StatusCode.UNKNOWN)
        return ServingError(exc.message.strip(), code=code)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, (TypeError, ValueError)):
        return InvalidArgument(text)
    if isinstance(exc, FileNotFoundError):  # e.g. a SavedModel without its variables
        return ServingError(text, code=grpc.StatusCode.NOT_FOUND)
    return ServingError(f"{type(exc).__name__}: {text}", code=grpc.StatusCode.INTERNAL)


def check_inputs(
    signature_name: str, signature: meta_graph_pb2.SignatureDef, inputs: Mapping[str, np.ndarray]
) -> None:
    """TF Serving's predict-request checks: exactly the signature's inputs, with its dtypes and shapes."""
    wanted = set(signature.inputs)
    sent = set(inputs)
    if sent != wanted:
        raise InvalidArgument(
            f"input size does not match signature: {len(sent)}!={len(wanted)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(wanted))}}}). "
            f"Sent extra: {{{','.join(sorted(sent - wanted))}}}. "
            f"Missing but required: {{{','.join(sorted(wanted - sent))}}}."
        )
    for name, array in inputs.items():
        info = signature.inputs[name]
        got = _array_dtype_enum(array)
        if got != info.dtype:
            raise InvalidArgument(
                f"Expects arg[{name}] of signature {signature_name} to be {dtype_name(info.dtype)} "
                f"but {dtype_name(got)} is provided"
            )
        expected = _signature_shape(info.tensor_shape)
        if expected is None:
            continue
        if len(expected) != array.ndim or any(
            e >= 0 and e != a for e, a in zip(expected, array.shape, strict=False)
        ):
            raise InvalidArgument(
                f"input '{name}' of signature {signature_name} has shape {_shape_text(array.shape)} "
                f"but the signature expects {_shape_text(expected)} (-1 = any size)"
            )


@dataclass
class Servable:
    """One loaded version. ``signature_defs`` come from ``saved_model.pb`` (the exact protos TF Serving
    reports in GetModelMetadata, method names included); ``functions`` are the callable TF2 signatures."""

    name: str
    version: int
    path: Path
    signature_defs: dict[str, meta_graph_pb2.SignatureDef]
    functions: dict[str, Any]
    model: Any = field(default=None, repr=False)  # keeps the loaded object (and its variables) alive
    ram_bytes: int = 0

    def signature(self, signature_name: str) -> meta_graph_pb2.SignatureDef:
        key = signature_name or DEFAULT_SIGNATURE
        try:
            return self.signature_defs[key]
        except KeyError:
            raise InvalidArgument(f'Serving signature key "{key}" not found.') from None

    def run(
        self, signature_name: str, inputs: Mapping[str, np.ndarray], output_filter: Sequence[str] = ()
    ) -> dict[str, np.ndarray]:
        """Run one signature on already-checked inputs; return the filtered outputs as numpy arrays."""
        key = signature_name or DEFAULT_SIGNATURE
        function = self.functions.get(key)
        if function is None:
            raise InvalidArgument(f'Serving signature key "{key}" not found.')
        try:
            feeds = {name: tf.constant(value) for name, value in inputs.items()}
            result = function(**feeds)
        except Exception as exc:  # TF reports bad values (e.g. a malformed tf.Example) as exceptions
            raise serving_error_from_tf(exc) from None
        names = output_filter or tuple(result)
        return {name: result[name].numpy() for name in names}

    def check_output_filter(self, signature_name: str, output_filter: Sequence[str]) -> None:
        signature = self.signature(signature_name)
        seen: set[str] = set()
        for alias in output_filter:
            if alias not in signature.outputs:
                raise InvalidArgument(
                    f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                    f"{{{','.join(sorted(signature.outputs))}}}."
                )
            if alias in seen:
                raise InvalidArgument(f"duplicate output tensor alias: {alias}")
            seen.add(alias)
