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


def dtype_name(dtype: int) -> str:
    """``DT_FLOAT`` -> ``float`` (TF's DataTypeString, used in error messages)."""
    if dtype in types_pb2.DataType.values():
        return types_pb2.DataType.Name(dtype).removeprefix("DT_").lower()
    return str(dtype)


def to_ndarray(proto: tensor_pb2.TensorProto, name: str = "") -> np.ndarray:
    """A request tensor as numpy; a malformed proto is InvalidArgument naming the input."""
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError) as exc:
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
