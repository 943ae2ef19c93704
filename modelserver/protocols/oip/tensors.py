"""Open Inference Protocol tensors <-> numpy: datatypes, JSON ``data``, raw (binary) bytes and the gRPC typed
contents, with every check a client can fail spelled out (``InvalidArgument``, never a crash).

- Datatypes: OIP names (``BOOL``, ``INT8`` .. ``UINT64``, ``FP16``/``FP32``/``FP64``, ``BYTES``) for
  TensorFlow's DataType enums; DT_STRING is ``BYTES``. Arrays of BYTES are numpy object arrays of ``bytes``
  (what the data plane feeds TensorFlow).
- JSON ``data`` may be flat or nested (row-major); its element count must equal the product of ``shape``.
  Numbers are checked against the datatype (no silent truncation of 1.5 into INT64, no out-of-range ints,
  booleans only for BOOL). BYTES elements are UTF-8 strings, as tritonclient sends them; with the tensor
  parameter ``content_type: "base64"`` (Seldon MLServer's convention) they are standard base64 instead.
- Raw bytes (the binary data extension over HTTP, ``raw_input_contents`` over gRPC): little-endian
  elements, one byte per BOOL, and BYTES as elements each prefixed by its 4-byte little-endian length.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from typing import Any

import numpy as np

from modelserver.errors import InvalidArgument
from modelserver.runtime.dtypes import DTYPES
from modelserver.runtime.limits import STRING_ELEMENT_BYTES, RequestBudget

__all__ = [
    "BYTES",
    "DATATYPES",
    "array_datatype",
    "check_shape",
    "datatype_of",
    "from_json_data",
    "from_raw",
    "spend_declared",
    "to_json_data",
    "to_raw",
]

BYTES = "BYTES"
# TensorFlow DataType enum -> OIP datatype, and OIP datatype -> numpy dtype of the array fed to TensorFlow
# (little-endian on the wire), in OIP's order: both from the dtype table.
_FROM_TF: dict[int, str] = {row.enum: row.oip for row in DTYPES if row.oip is not None}
DATATYPES: dict[str, np.dtype[Any]] = {
    row.oip: row.numpy for row in DTYPES if row.oip is not None and row.numpy is not None
}
# What one element costs the request budget before it is decoded (a BYTES element: a string's).
_ELEMENT_COST = {name: dtype.itemsize for name, dtype in DATATYPES.items() if name != BYTES} | {
    BYTES: STRING_ELEMENT_BYTES
}
_OF_NUMPY = {dtype: name for name, dtype in DATATYPES.items() if name != BYTES}
_LENGTH = struct.Struct("<I")


def datatype_of(tf_dtype: int) -> str:
    """The OIP datatype of a SignatureDef dtype; types OIP cannot carry (complex, bfloat16...) read as
    ``TF_<NAME>`` so metadata still shows them (inference on them is refused)."""
    name = _FROM_TF.get(tf_dtype)
    if name is not None:
        return name
    from modelserver.runtime.tensors import dtype_name

    return f"TF_{dtype_name(tf_dtype).upper()}"


def array_datatype(array: np.ndarray) -> str:
    """The OIP datatype of an output array (object/str/bytes arrays are BYTES)."""
    if array.dtype == object or array.dtype.kind in "SU":
        return BYTES
    found = _OF_NUMPY.get(array.dtype.newbyteorder("=") if array.dtype.byteorder == ">" else array.dtype)
    if found is None:
        raise InvalidArgument(f"output of numpy type {array.dtype} has no Open Inference Protocol datatype")
    return found


def check_shape(name: str, shape: Any) -> tuple[int, ...]:
    """A request shape as a tuple of non-negative ints, or InvalidArgument."""
    if not isinstance(shape, (list, tuple)) or not all(
        isinstance(d, int) and not isinstance(d, bool) for d in shape
    ):
        raise InvalidArgument(f"input '{name}': shape must be a list of integers, got {shape!r}")
    if any(d < 0 for d in shape):
        raise InvalidArgument(f"input '{name}': shape {list(shape)} has a negative dimension")
    return tuple(int(d) for d in shape)


def spend_declared(budget: RequestBudget, name: str, datatype: str, shape: tuple[int, ...]) -> None:
    """Charge an input's declared shape to the request budget before its data is decoded (InvalidArgument
    past a limit): a BYTES tensor of 1.5 M tiny strings is refused before 1.5 M objects exist."""
    budget.spend(name, shape, _ELEMENT_COST.get(datatype, 1))


def _numpy_dtype(name: str, datatype: str) -> np.dtype[Any]:
    dtype = DATATYPES.get(datatype)
    if dtype is None:
        raise InvalidArgument(
            f"input '{name}': unsupported datatype {datatype!r}; expected one of {', '.join(DATATYPES)}"
        )
    return dtype


def _count_mismatch(name: str, shape: tuple[int, ...], count: int, what: str) -> InvalidArgument:
    return InvalidArgument(
        f"input '{name}': shape {list(shape)} needs {math.prod(shape)} elements but {what} holds {count}"
    )


def _decode_text(name: str, values: np.ndarray, base64_elements: bool) -> np.ndarray:
    out = np.empty(values.size, dtype=object)
    for i, value in enumerate(values.ravel().tolist()):
        if not isinstance(value, str):
            raise InvalidArgument(f"input '{name}': BYTES elements must be JSON strings, got {value!r:.40}")
        if base64_elements:
            try:
                out[i] = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidArgument(
                    f"input '{name}': element {i} is not valid base64 (content_type is base64)"
                ) from None
        else:
            out[i] = value.encode("utf-8", "surrogatepass")
    return out


def from_json_data(
    name: str, datatype: str, shape: tuple[int, ...], data: Any, *, base64_elements: bool = False
) -> np.ndarray:
    """The JSON ``data`` of one input as an array of ``shape``."""
    dtype = _numpy_dtype(name, datatype)
    if not isinstance(data, list):
        data = [data]
    try:
        values = np.asarray(data, dtype=object if datatype == BYTES else None)
    except (ValueError, TypeError, OverflowError):
        raise InvalidArgument(f"input '{name}': data is not a regular (non-ragged) array") from None
    if values.size != math.prod(shape):
        raise _count_mismatch(name, shape, values.size, "data")
    if datatype == BYTES:
        return _decode_text(name, values, base64_elements).reshape(shape)
    kind = values.dtype.kind
    if values.size and datatype == "BOOL" and kind != "b":
        raise InvalidArgument(f"input '{name}': BOOL data must be JSON true/false")
    if values.size and datatype != "BOOL":
        allowed = "iu" if dtype.kind in "iu" else "iuf"
        if kind not in allowed:
            what = "integers" if dtype.kind in "iu" else "numbers"
            raise InvalidArgument(f"input '{name}': {datatype} data must be JSON {what}")
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            if int(values.min()) < info.min or int(values.max()) > info.max:
                raise InvalidArgument(f"input '{name}': a value is out of range for {datatype}")
    return values.astype(dtype, copy=False).reshape(shape)


def _split_bytes(name: str, raw: memoryview, count: int) -> np.ndarray:
    offset, size = 0, len(raw)
    if count * 4 > size:  # checked before allocating: every element carries a 4-byte length
        raise InvalidArgument(
            f"input '{name}': shape declares {count} BYTES elements but {size} bytes hold at most {size // 4}"
        )
    out = np.empty(count, dtype=object)
    for i in range(count):
        if offset + 4 > size:
            raise InvalidArgument(
                f"input '{name}': BYTES data ends after {i} of {count} length-prefixed elements"
            )
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > size:
            raise InvalidArgument(
                f"input '{name}': BYTES element {i} claims {length} bytes but only {size - offset} remain"
            )
        out[i] = bytes(raw[offset : offset + length])
        offset += length
    if offset != size:
        raise InvalidArgument(
            f"input '{name}': {size - offset} bytes left after {count} length-prefixed BYTES elements"
        )
    return out


def from_raw(name: str, datatype: str, shape: tuple[int, ...], raw: bytes | memoryview) -> np.ndarray:
    """Raw little-endian bytes of one input as an array of ``shape`` (a copy: the body may be freed)."""
    dtype = _numpy_dtype(name, datatype)
    view = memoryview(raw).cast("B")
    count = math.prod(shape)
    if datatype == BYTES:
        return _split_bytes(name, view, count).reshape(shape)
    if len(view) != count * dtype.itemsize:
        raise InvalidArgument(
            f"input '{name}': shape {list(shape)} of {datatype} needs {count * dtype.itemsize} bytes "
            f"but {len(view)} were sent"
        )
    wire = dtype.newbyteorder("<")
    if datatype == "BOOL":
        array = np.frombuffer(view, dtype=np.uint8)
        if array.size and int(array.max()) > 1:
            raise InvalidArgument(f"input '{name}': BOOL bytes must be 0 or 1")
        return array.astype(np.bool_).reshape(shape)
    return np.frombuffer(view, dtype=wire).astype(dtype, copy=True).reshape(shape)


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def to_raw(array: np.ndarray, datatype: str) -> bytes:
    """One output as raw bytes (binary data extension / ``raw_output_contents``)."""
    if datatype == BYTES:
        parts: list[bytes] = []
        for value in array.ravel().tolist():
            data = _as_bytes(value)
            parts += (_LENGTH.pack(len(data)), data)
        return b"".join(parts)
    if datatype == "BOOL":
        return np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    return np.ascontiguousarray(array, dtype=DATATYPES[datatype].newbyteorder("<")).tobytes()


def to_json_data(array: np.ndarray, datatype: str) -> tuple[list[Any], dict[str, Any]]:
    """One output as flat JSON ``data`` plus the tensor parameters that say how to read it: BYTES that are
    all valid UTF-8 are strings; otherwise every element is base64 and ``content_type`` is ``base64``."""
    if datatype != BYTES:
        return array.ravel().tolist(), {}
    values = [_as_bytes(v) for v in array.ravel().tolist()]
    try:
        return [v.decode("utf-8") for v in values], {}
    except UnicodeDecodeError:
        return [base64.b64encode(v).decode("ascii") for v in values], {"content_type": "base64"}
