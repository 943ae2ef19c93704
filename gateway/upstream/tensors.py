"""TensorProto <-> Python values without NumPy or TensorFlow (the stdlib ``array`` module packs floats)."""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tfs_protos.tensorflow.core.example import example_pb2, feature_pb2
from tfs_protos.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

__all__ = [
    "DTYPES",
    "DType",
    "by_enum",
    "by_name",
    "by_oip",
    "dtype_name",
    "float_tensor",
    "number_tensor",
    "shape_of",
    "shape_proto",
    "string_tensor",
    "to_example",
    "to_list",
    "uint8_tensor",
    "value_field",
]

_LITTLE = sys.byteorder == "little"


def shape_proto(dims: Sequence[int]) -> tensor_shape_pb2.TensorShapeProto:
    return tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]
    )


def number_tensor(
    values: Sequence[float] | array[float], dims: Sequence[int], dtype: str = "float32"
) -> tensor_pb2.TensorProto:
    """A tensor of a numeric dtype of :data:`DTYPES` (by its contract name); ``values`` flat row-major with
    ``prod(dims)`` items (packed as tensor_content; integer dtypes take integral values)."""
    row = _BY_NAME[dtype]
    code, typecode = row.enum, row.typecode
    if typecode is None:
        raise ValueError(f"{dtype} is not a numeric dtype")
    packed = values if isinstance(values, array) and values.typecode == typecode else array(typecode, values)
    if math.prod(dims) != len(packed):
        raise ValueError(f"{len(packed)} values do not fill shape {list(dims)}")
    if not _LITTLE:  # tensor_content is little-endian on the wire
        packed = array(typecode, packed)
        packed.byteswap()
    return tensor_pb2.TensorProto(dtype=code, tensor_shape=shape_proto(dims), tensor_content=packed.tobytes())


def float_tensor(values: Sequence[float] | array[float], dims: Sequence[int]) -> tensor_pb2.TensorProto:
    """A DT_FLOAT tensor; ``values`` flat row-major with ``prod(dims)`` items (packed as tensor_content)."""
    return number_tensor(values, dims, "float32")


def uint8_tensor(data: bytes, dims: Sequence[int]) -> tensor_pb2.TensorProto:
    """A DT_UINT8 tensor from its bytes, row-major (packed as tensor_content)."""
    if math.prod(dims) != len(data):
        raise ValueError(f"{len(data)} bytes do not fill shape {list(dims)}")
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_UINT8, tensor_shape=shape_proto(dims), tensor_content=data
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


@dataclass(frozen=True)
class DType:
    """One row of the gateway's dtype table: a TensorFlow DataType and what each protocol calls it."""

    enum: int  # types.proto DataType
    name: str  # the input contract's dtype name
    value_field: str  # TensorProto's typed field
    typecode: str | None  # the ``array`` typecode of its little-endian bytes (None: length-prefixed strings)
    oip: str  # the Open Inference Protocol datatype
    oip_contents: str  # its gRPC InferTensorContents field


_T = types_pb2
# The gateway's one dtype table: every mapping below, in gateway.upstream.oip and gateway.upstream.contract
# comes from it. Adding a dtype is adding a row.
# fmt: off
DTYPES: tuple[DType, ...] = (
    DType(_T.DT_FLOAT,  "float32", "float_val",  "f",  "FP32",  "fp32_contents"),
    DType(_T.DT_DOUBLE, "float64", "double_val", "d",  "FP64",  "fp64_contents"),
    DType(_T.DT_INT32,  "int32",   "int_val",    "i",  "INT32", "int_contents"),
    DType(_T.DT_INT64,  "int64",   "int64_val",  "q",  "INT64", "int64_contents"),
    DType(_T.DT_INT16,  "int16",   "int_val",    "h",  "INT16", "int_contents"),
    DType(_T.DT_INT8,   "int8",    "int_val",    "b",  "INT8",  "int_contents"),
    DType(_T.DT_UINT8,  "uint8",   "int_val",    "B",  "UINT8", "uint_contents"),
    DType(_T.DT_BOOL,   "bool",    "bool_val",   "B",  "BOOL",  "bool_contents"),
    DType(_T.DT_STRING, "string",  "string_val", None, "BYTES", "bytes_contents"),
)
# fmt: on
_BY_ENUM: dict[int, DType] = {row.enum: row for row in DTYPES}
_BY_OIP: dict[str, DType] = {row.oip: row for row in DTYPES}
_BY_NAME: dict[str, DType] = {row.name: row for row in DTYPES}


def by_enum(dtype: int) -> DType | None:
    """The row of a TensorFlow DataType, or None for one the gateway does not read."""
    return _BY_ENUM.get(dtype)


def by_oip(datatype: str) -> DType | None:
    """The row of an Open Inference Protocol datatype, or None."""
    return _BY_OIP.get(datatype)


def by_name(name: str) -> DType | None:
    """The row of a contract dtype name (``float32``, ``uint8``, ...), or None."""
    return _BY_NAME.get(name)


def dtype_name(dtype: int) -> str:
    """The contract's name of a dtype: ``float32``, ``string``, ...; else TensorFlow's name in lower case."""
    row = _BY_ENUM.get(dtype)
    if row is not None:
        return row.name
    name = types_pb2.DataType.Name(dtype) if dtype in types_pb2.DataType.values() else "DT_INVALID"
    return name.removeprefix("DT_").lower()


def value_field(dtype: int) -> str | None:
    """The repeated field that holds a ``dtype`` tensor's values when they are not in ``tensor_content``
    (None for a dtype this module does not read)."""
    row = _BY_ENUM.get(dtype)
    return row.value_field if row is not None else None


def to_list(tensor: tensor_pb2.TensorProto) -> list[object]:
    """Flat values of a tensor (numbers as float/int, strings as str when UTF-8 else repr of the bytes)."""
    row = _BY_ENUM.get(tensor.dtype)
    if row is None:
        raise ValueError(f"unsupported output dtype {types_pb2.DataType.Name(tensor.dtype)}")
    field, code = row.value_field, row.typecode
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


def to_example(
    features: Mapping[str, Sequence[float] | Sequence[int] | Sequence[bytes]],
) -> example_pb2.Example:
    """A tf.Example with float_list / int64_list (Python ints) / bytes_list features."""
    mapped: dict[str, feature_pb2.Feature] = {}
    for name, values in features.items():
        if values and isinstance(values[0], bytes):
            mapped[name] = feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=values))
        elif values and all(type(v) is int for v in values):
            mapped[name] = feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=values))
        else:
            mapped[name] = feature_pb2.Feature(float_list=feature_pb2.FloatList(value=values))
    return example_pb2.Example(features=feature_pb2.Features(feature=mapped))
