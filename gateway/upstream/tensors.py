"""TensorProto <-> Python values without NumPy or TensorFlow (the stdlib ``array`` module packs floats)."""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Sequence

from tfs_protos.tensorflow.core.example import example_pb2, feature_pb2
from tfs_protos.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

__all__ = ["float_tensor", "shape_of", "shape_proto", "string_tensor", "to_example", "to_list", "value_field"]

_LITTLE = sys.byteorder == "little"


def shape_proto(dims: Sequence[int]) -> tensor_shape_pb2.TensorShapeProto:
    return tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]
    )


def float_tensor(values: Sequence[float] | array[float], dims: Sequence[int]) -> tensor_pb2.TensorProto:
    """A DT_FLOAT tensor; ``values`` flat row-major with ``prod(dims)`` items (packed as tensor_content)."""
    packed = values if isinstance(values, array) and values.typecode == "f" else array("f", values)
    if math.prod(dims) != len(packed):
        raise ValueError(f"{len(packed)} values do not fill shape {list(dims)}")
    if not _LITTLE:  # tensor_content is little-endian on the wire
        packed = array("f", packed)
        packed.byteswap()
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT, tensor_shape=shape_proto(dims), tensor_content=packed.tobytes()
    )


def string_tensor(values: Sequence[bytes], dims: Sequence[int] | None = None) -> tensor_pb2.TensorProto:
    """A DT_STRING tensor (shape ``[len(values)]`` unless given)."""
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        tensor_shape=shape_proto(dims if dims is not None else [len(values)]),
        string_val=list(values),
    )


def shape_of(tensor: tensor_pb2.TensorProto) -> list[int]:
    return [d.size for d in tensor.tensor_shape.dim]


_FIELDS: dict[int, tuple[str, str | None]] = {
    types_pb2.DT_FLOAT: ("float_val", "f"),
    types_pb2.DT_DOUBLE: ("double_val", "d"),
    types_pb2.DT_INT32: ("int_val", "i"),
    types_pb2.DT_INT64: ("int64_val", "q"),
    types_pb2.DT_BOOL: ("bool_val", "b"),
    types_pb2.DT_STRING: ("string_val", None),
}


def value_field(dtype: int) -> str | None:
    """The repeated field that holds a ``dtype`` tensor's values when they are not in ``tensor_content``
    (None for a dtype this module does not read)."""
    return _FIELDS[dtype][0] if dtype in _FIELDS else None


def to_list(tensor: tensor_pb2.TensorProto) -> list[object]:
    """Flat values of a tensor (numbers as float/int, strings as str when UTF-8 else repr of the bytes)."""
    field, code = _FIELDS.get(tensor.dtype, ("", None))
    if not field:
        raise ValueError(f"unsupported output dtype {types_pb2.DataType.Name(tensor.dtype)}")
    values: list[object]
    if code is not None and tensor.tensor_content:
        packed = array(code)
        packed.frombytes(tensor.tensor_content)
        if not _LITTLE:
            packed.byteswap()
        values = list(packed)
    else:
        values = list(getattr(tensor, field))
    size = math.prod(shape_of(tensor))
    if len(values) == 1 and size > 1:  # TF's compact form: one value repeated
        values = values * size
    if tensor.dtype == types_pb2.DT_STRING:
        return [_text(v) for v in values]  # type: ignore[arg-type]
    if tensor.dtype == types_pb2.DT_BOOL:
        return [bool(v) for v in values]
    return values


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def to_example(features: dict[str, list[float] | list[bytes]]) -> example_pb2.Example:
    """A tf.Example with float_list / bytes_list features."""
    mapped: dict[str, feature_pb2.Feature] = {}
    for name, values in features.items():
        if values and isinstance(values[0], bytes):
            mapped[name] = feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=values))
        else:
            mapped[name] = feature_pb2.Feature(float_list=feature_pb2.FloatList(value=values))
    return example_pb2.Example(features=feature_pb2.Features(feature=mapped))
