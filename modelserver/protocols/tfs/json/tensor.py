"""One tensor as JSON, both ways, as TensorFlow Serving's ``util/json_tensor.cc`` converts it.

* In: a JSON value (scalar, nested lists, ``{"b64": s}`` for strings) -> an ndarray of the signature input's
  dtype, checked with TensorFlow Serving's error messages; ``NaN``, ``Infinity`` and ``-Infinity`` are
  accepted for floats.
* Out: an output ndarray -> nested lists for the reply; DT_STRING outputs whose name ends in ``_bytes`` are
  written as ``{"b64": ...}``, other strings as UTF-8; float32 values as TF Serving prints them
  (``json_floats``).

Speed matters (REST is benchmarked against gRPC): valid numeric input is converted with one ``np.asarray`` per
tensor (``fast_tensor``); the element-by-element walk (``careful_tensor``) only runs for strings and to
explain invalid input exactly.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelserver.errors import InvalidArgument, Unimplemented
from modelserver.protocols.tfs.json.floats import float_tensor_json
from modelserver.protocols.tfs.json.text import (
    BASE64_KEY,
    decode_b64,
    json_type,
    value_to_string,
)
from modelserver.runtime.dtypes import DTYPES, DType
from modelserver.runtime.limits import MAX_RANK
from modelserver.runtime.tensors import dtype_name
from tfs_protos.tensorflow.core.framework import types_pb2

__all__ = [
    "JsonDType",
    "careful_tensor",
    "dense_shape",
    "fast_tensor",
    "json_dtype",
    "json_to_tensor",
    "tensor_to_json",
]

BYTES_SUFFIX = "_bytes"


@dataclass(frozen=True)
class JsonDType:
    name: str  # TensorFlow's DataTypeString, used in error messages
    numpy: np.dtype[Any]
    kind: str  # "float", "int", "bool", "string"
    low: int = 0
    high: int = 0


def _json_dtype(row: DType) -> JsonDType:
    """A dtype table row as JSON converts it: ints with their range."""
    assert row.numpy is not None and row.json is not None
    name = dtype_name(row.enum)
    if row.json == "int":
        info = np.iinfo(row.numpy)
        return JsonDType(name, row.numpy, "int", int(info.min), int(info.max))
    return JsonDType(name, row.numpy, row.json)


# TF Serving converts exactly these JSON types; DT_HALF and DT_UINT16 are accepted here as well.
_DTYPES: dict[int, JsonDType] = {row.enum: _json_dtype(row) for row in DTYPES if row.json is not None}


def _type_error(value: Any, dtype: JsonDType) -> InvalidArgument:
    return InvalidArgument(
        f"JSON Value: {value_to_string(value)} Type: {json_type(value)} is not of expected type: {dtype.name}"
    )


def json_dtype(dtype_enum: int, value: Any) -> JsonDType:
    dtype = _DTYPES.get(dtype_enum)
    if dtype is None:
        known = dtype_enum in types_pb2.DataType.values()
        name = types_pb2.DataType.Name(dtype_enum) if known else str(dtype_enum)
        raise Unimplemented(f"Conversion of JSON Value: {value_to_string(value)} to type: {name}")
    return dtype


# ------------------------------------------------------------------------------------- the careful walk


def dense_shape(value: Any, outer: int = 0) -> list[int]:
    """Shape implied by the first element at each level (TF Serving's GetDenseTensorShape); more than
    ``MAX_RANK`` levels (``outer`` of them already around ``value``) is InvalidArgument."""
    shape: list[int] = []
    while isinstance(value, list):
        shape.append(len(value))
        if len(shape) + outer > MAX_RANK:
            raise InvalidArgument(
                f"JSON list nested more than {MAX_RANK} levels deep; a tensor has at most {MAX_RANK} axes"
            )
        if not value:
            break
        value = value[0]
    return shape


def _convert_scalar(value: Any, dtype: JsonDType) -> Any:
    """One JSON leaf -> a Python value of the tensor's type, or TF Serving's error."""
    kind = dtype.kind
    if kind == "string":
        if isinstance(value, str):
            return value.encode("utf-8", "surrogatepass")  # JSON may escape lone surrogates
        if isinstance(value, dict):
            return decode_b64(value)
        raise _type_error(value, dtype)
    if isinstance(value, bool):
        if kind == "bool":
            return value
        raise _type_error(value, dtype)
    if kind == "bool" or isinstance(value, (dict, list, str)) or value is None:
        raise _type_error(value, dtype)
    if kind == "float":
        # Any JSON number, rounded as rapidjson's GetFloat/GetDouble round it: an integer to the nearest double
        # first, beyond float32's range to +-inf (TF Serving dropped its precision check in 2021, b/181409782).
        try:
            return float(value)
        except OverflowError:  # an integer literal beyond any double: rapidjson refuses it while parsing
            raise InvalidArgument("JSON Parse error: Number too big to be stored in double.") from None
    # Integer types take JSON integers only (a JSON 1.0 is a double, as in rapidjson).
    if not isinstance(value, int) or not dtype.low <= value <= dtype.high:
        raise _type_error(value, dtype)
    return value


def _walk(value: Any, level: int, shape: Sequence[int], dtype: JsonDType, out: list[Any]) -> None:
    """TF Serving's FillTensorProto: every leaf at depth len(shape), every list the expected size."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise InvalidArgument(
                f"JSON Value: {value_to_string(value)} found at incorrect level: {level + 1} in the JSON DOM."
                f" Expected at level: {rank}"
            )
        out.append(_convert_scalar(value, dtype))
        return
    if level >= rank:
        raise InvalidArgument(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise InvalidArgument(
            f"Encountered list at unexpected size: {len(value)} at level: {level}"
            f" expected size: {shape[level]}"
        )
    for item in value:
        _walk(item, level + 1, shape, dtype, out)


def careful_tensor(value: Any, dtype: JsonDType) -> np.ndarray:
    shape = dense_shape(value)
    flat: list[Any] = []
    _walk(value, 0, shape, dtype, flat)
    if dtype.kind == "string":
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return array.reshape(shape)
    if dtype.kind == "float":
        return _to_float(np.array(flat, dtype=np.float64), dtype).reshape(shape)
    return np.array(flat, dtype=dtype.numpy).reshape(shape)


def _to_float(array: np.ndarray, dtype: JsonDType) -> np.ndarray:
    """Numbers -> the float type through a double, as rapidjson's GetFloat; beyond its range +-inf."""
    with np.errstate(over="ignore"):
        return array.astype(np.float64, copy=False).astype(dtype.numpy, copy=False)


def fast_tensor(value: Any, dtype: JsonDType, may_hold_bools: bool) -> np.ndarray | None:
    """One np.asarray for well-formed numeric input; None means "take the careful walk" (which also
    produces the exact error for bad input)."""
    if dtype.kind == "string":
        return None
    shape = dense_shape(value)  # refuses a nesting numpy cannot hold before np.asarray tries
    flat = _flatten(value, shape)
    try:
        array = np.asarray(value) if flat is None else np.asarray(flat).reshape(shape)
    except (ValueError, OverflowError, TypeError, RecursionError, IndexError):
        return None
    kind = array.dtype.kind
    if dtype.kind == "bool":
        return array if kind == "b" else None
    if may_hold_bools or kind not in "iuf":
        return None  # np.asarray would turn true/false or strings into numbers silently
    if array.size == 0:
        return array.astype(dtype.numpy)
    if dtype.kind == "float":
        return _to_float(array, dtype)
    if kind == "f":
        return None  # a JSON double for an integer input is a type error
    if int(array.min()) < dtype.low or int(array.max()) > dtype.high:
        return None
    return array.astype(dtype.numpy)


def _flatten(value: Any, shape: list[int]) -> list[Any] | None:
    """The leaves of a regular nested list of ``shape`` in one flat list, checked level by level with
    C-speed builtins; None when it is not regular (or a scalar): then np.asarray or the careful walk decides.
    np.asarray on an image as nested lists discovers the shape per element (~60 us for [1,28,28,1]); this
    is about half. A string or object where a list belongs is flattened into its characters or keys, which
    np.asarray then types as text: the careful walk gives the error."""
    if len(shape) < 2:
        return None
    level: list[Any] = value
    try:
        for size in shape[1:]:
            if list(map(len, level)).count(size) != len(level):
                return None
            level = list(itertools.chain.from_iterable(level))
    except TypeError:  # a number, bool or null where a list belongs
        return None
    return level


def json_to_tensor(value: Any, dtype_enum: int, *, may_hold_bools: bool = True) -> np.ndarray:
    """A JSON value (scalar, nested list, b64 object) -> ndarray of the signature input's dtype."""
    dtype = json_dtype(dtype_enum, value)
    array = fast_tensor(value, dtype, may_hold_bools)
    return array if array is not None else careful_tensor(value, dtype)


# ------------------------------------------------------------------------------------------- replies


def _string_value(item: bytes | str, as_bytes: bool) -> Any:
    raw = item.encode("utf-8", "surrogatepass") if isinstance(item, str) else bytes(item)
    if as_bytes:
        return {BASE64_KEY: base64.b64encode(raw).decode("ascii")}
    return raw.decode("utf-8", errors="replace")  # TF writes raw bytes; JSON text must be valid UTF-8


def tensor_to_json(name: str, array: np.ndarray) -> Any:
    """An output tensor -> nested Python lists ready for ``json.dumps`` (scalars stay scalars)."""
    kind = array.dtype.kind
    if kind == "f":
        return float_tensor_json(array)
    if kind in "iub":
        return array.tolist()
    if kind in "OSU":
        as_bytes = name.endswith(BYTES_SUFFIX)
        flat = [_string_value(item, as_bytes) for item in array.reshape(-1).tolist()]
        converted = np.empty(len(flat), dtype=object)
        converted[:] = flat
        return converted.reshape(array.shape).tolist()
    raise InvalidArgument(f"Failed to write JSON value for tensor type: {array.dtype}")
