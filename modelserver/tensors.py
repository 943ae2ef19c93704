"""TensorProto <-> numpy, as TF Serving writes them.

Replies fill the typed ``*_val`` fields (TF Serving's ``Tensor::AsProtoField``) because clients written for
TF Serving read ``outputs["y"].float_val`` directly; requests may use either ``tensor_content`` or the typed
fields. Strings are numpy object arrays of ``bytes``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from modelserver.errors import InvalidArgument
from modelserver.limits import DEFAULT_LIMITS, RequestBudget

__all__ = ["dtype_name", "to_ndarray", "to_tensor_proto"]

# The typed field TF Serving fills for each dtype (tensor.cc AsProtoField).
_VAL_FIELD: dict[int, str] = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_STRING: "string_val",
}


# Request dtypes: (bytes per element, the typed field a request may use instead of tensor_content, values per
# element in it). DT_RESOURCE, DT_VARIANT, quantized and reference types cannot come from a client.
_REQUEST_DTYPES: dict[int, tuple[int, str, int]] = {
    types_pb2.DT_FLOAT: (4, "float_val", 1),
    types_pb2.DT_DOUBLE: (8, "double_val", 1),
    types_pb2.DT_HALF: (2, "half_val", 1),
    types_pb2.DT_BFLOAT16: (2, "half_val", 1),
    types_pb2.DT_INT8: (1, "int_val", 1),
    types_pb2.DT_INT16: (2, "int_val", 1),
    types_pb2.DT_INT32: (4, "int_val", 1),
    types_pb2.DT_UINT8: (1, "int_val", 1),
    types_pb2.DT_UINT16: (2, "int_val", 1),
    types_pb2.DT_INT64: (8, "int64_val", 1),
    types_pb2.DT_UINT32: (4, "uint32_val", 1),
    types_pb2.DT_UINT64: (8, "uint64_val", 1),
    types_pb2.DT_BOOL: (1, "bool_val", 1),
    types_pb2.DT_COMPLEX64: (8, "scomplex_val", 2),
    types_pb2.DT_COMPLEX128: (16, "dcomplex_val", 2),
    types_pb2.DT_STRING: (0, "string_val", 1),
}


def dtype_name(dtype: int) -> str:
    """``DT_FLOAT`` -> ``float`` (TF's DataTypeString, used in error messages)."""
    if dtype in types_pb2.DataType.values():
        return types_pb2.DataType.Name(dtype).removeprefix("DT_").lower()
    return str(dtype)


def check_request_tensor(proto: tensor_pb2.TensorProto, name: str, budget: RequestBudget) -> None:
    """Refuse, before anything is allocated, a request tensor whose dtype no client may send, whose shape is
    unknown, negative or over the request's budget, or whose values do not fill its shape exactly (TF
    Serving requires it of ``tensor_content``; with the typed fields it would repeat the last value, which
    lets a few bytes declare gigabytes, so this server asks for exactly one value per element)."""
    spec = _REQUEST_DTYPES.get(proto.dtype)
    if spec is None:
        raise InvalidArgument(
            f"input {name}: dtype {dtype_name(proto.dtype)} cannot be sent in a request; send one of "
            + ", ".join(sorted(dtype_name(d) for d in _REQUEST_DTYPES))
        )
    itemsize, field, per_element = spec
    if proto.tensor_shape.unknown_rank:
        raise InvalidArgument(f"input {name}: tensor_shape.unknown_rank is set; send the tensor's shape")
    dims = [d.size for d in proto.tensor_shape.dim]
    elements = budget.spend(name, dims, itemsize)
    content = len(proto.tensor_content)  # one temporary copy (protobuf returns a new bytes object)
    if content:
        if proto.dtype == types_pb2.DT_STRING:
            raise InvalidArgument(f"input {name}: a string tensor cannot use tensor_content; use string_val")
        if content != elements * itemsize:
            raise InvalidArgument(
                f"input {name}: tensor_content holds {content} bytes but shape {dims} of "
                f"{dtype_name(proto.dtype)} needs {elements * itemsize}"
            )
        return
    values = len(getattr(proto, field))
    if values != elements * per_element:
        raise InvalidArgument(
            f"input {name}: shape {dims} has {elements} elements but {field} holds {values // per_element}"
            f" values; send exactly one value per element (or tensor_content)"
        )


def to_ndarray(
    proto: tensor_pb2.TensorProto, name: str = "", budget: RequestBudget | None = None
) -> np.ndarray:
    """A request tensor as numpy; a malformed or over-budget proto is InvalidArgument naming the input."""
    check_request_tensor(proto, name, budget or RequestBudget(DEFAULT_LIMITS))
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError, KeyError, MemoryError) as exc:
        raise InvalidArgument(f"tensor parsing error: {name}: {exc}") from None


def _shape_proto(shape: tuple[int, ...]) -> tensor_shape_pb2.TensorShapeProto:
    return tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape]
    )


def to_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """A reply tensor with the typed value field filled (never ``tensor_content``), like TF Serving."""
    array = np.asarray(array)
    if array.dtype == object or array.dtype.kind in "SU":
        dtype = types_pb2.DT_STRING
        values = [v if isinstance(v, bytes) else str(v).encode() for v in array.ravel().tolist()]
    else:
        dtype = tf.dtypes.as_dtype(array.dtype).as_datatype_enum
        values = array.ravel().tolist()
    field = _VAL_FIELD.get(dtype)
    if field is None:  # half, complex...: let TensorFlow pick the encoding
        return tf.make_tensor_proto(array)
    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=_shape_proto(array.shape))
    getattr(proto, field).extend(values)
    return proto
