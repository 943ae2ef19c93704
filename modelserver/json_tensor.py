"""JSON <-> tensors for the REST predict API, as TensorFlow Serving's ``util/json_tensor.cc`` does it.

Contract (what a client written for TensorFlow Serving relies on):

* Request: ``{"signature_name"?: str, "instances": [...]}`` (row format) or ``{"inputs": ...}`` (columnar).
  Row format with one signature input: each element is that input's value for one row. With several inputs:
  each element is an object ``{input_name: value}`` and all inputs share dim 0. Columnar: a bare value/list
  (one input) or an object ``{input_name: tensor}``.
* Values are checked against the signature's dtypes with TensorFlow Serving's error messages. ``{"b64": s}``
  (exactly one key, standard base64) is decoded to raw bytes before the model sees it. ``NaN``, ``Infinity``
  and ``-Infinity`` are accepted for floats and emitted in replies.
* Reply: ``{"predictions": ...}`` for a row request (one output: the bare list; several: one object per row),
  ``{"outputs": ...}`` for a columnar one (one output: the bare tensor; several: ``{name: tensor}``).
  DT_STRING outputs whose name ends in ``_bytes`` are written as ``{"b64": ...}``, other strings as UTF-8.
  float32 values are printed the way TensorFlow Serving prints them (6 significant digits when that
  round-trips, else 9), so the same model gives the same JSON numbers here and there.

Speed matters (REST is benchmarked against gRPC): valid numeric input is converted with one ``np.asarray`` per
tensor; the element-by-element walk below only runs for strings and to explain invalid input exactly.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import enum
import gc
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from modelserver.errors import InvalidArgument, Unimplemented
from modelserver.limits import MAX_RANK
from tfs_protos.tensorflow.core.framework import types_pb2

__all__ = [
    "JsonFormat",
    "PredictJson",
    "decode_b64",
    "dumps",
    "error_json",
    "float32_values",
    "jsonable_scalar_list",
    "no_gc",
    "parse_json_object",
    "predict_response_json",
    "value_to_string",
]

BASE64_KEY = "b64"
BYTES_SUFFIX = "_bytes"
_MAX_MESSAGE_VALUE_CHARS = 512  # TF Serving prints whole values in errors; we cap them (its own TODO)


class JsonFormat(enum.Enum):
    """Which request layout a predict call used; it decides the reply layout."""

    ROW = "instances"
    COLUMNAR = "inputs"


@dataclass(frozen=True)
class _DType:
    name: str  # TensorFlow's DataTypeString, used in error messages
    numpy: np.dtype[Any]
    kind: str  # "float", "int", "bool", "string"
    low: int = 0
    high: int = 0


def _int(name: str, np_type: type[np.generic]) -> _DType:
    info = np.iinfo(np_type)  # type: ignore[type-var]
    return _DType(name, np.dtype(np_type), "int", int(info.min), int(info.max))


# TF Serving converts exactly these JSON types; DT_HALF and DT_UINT16 are accepted here as well.
_DTYPES: dict[int, _DType] = {
    types_pb2.DT_FLOAT: _DType("float", np.dtype(np.float32), "float", high=2**24 - 1),
    types_pb2.DT_DOUBLE: _DType("double", np.dtype(np.float64), "float", high=2**53 - 1),
    types_pb2.DT_HALF: _DType("half", np.dtype(np.float16), "float", high=2**11 - 1),
    types_pb2.DT_INT8: _int("int8", np.int8),
    types_pb2.DT_INT16: _int("int16", np.int16),
    types_pb2.DT_INT32: _int("int32", np.int32),
    types_pb2.DT_INT64: _int("int64", np.int64),
    types_pb2.DT_UINT8: _int("uint8", np.uint8),
    types_pb2.DT_UINT16: _int("uint16", np.uint16),
    types_pb2.DT_UINT32: _int("uint32", np.uint32),
    types_pb2.DT_UINT64: _int("uint64", np.uint64),
    types_pb2.DT_BOOL: _DType("bool", np.dtype(np.bool_), "bool"),
    types_pb2.DT_STRING: _DType("string", np.dtype(object), "string"),
}
_FLOAT_MAX = {"float": float(np.finfo(np.float32).max), "half": float(np.finfo(np.float16).max)}


# --------------------------------------------------------------------------------------------- messages


def value_to_string(value: Any) -> str:
    """A JSON value as TF Serving prints it in error messages (rapidjson's pretty writer, 4-space indent)."""
    if isinstance(value, float):
        text = _decimal_text(value)
    else:
        try:
            text = json.dumps(value, indent=4, ensure_ascii=False)
        except (RecursionError, ValueError):
            text = f"<{_json_type(value)} nested too deeply to print>"
    if len(text) > _MAX_MESSAGE_VALUE_CHARS:
        text = text[:_MAX_MESSAGE_VALUE_CHARS] + "...(truncated)"
    return text


def _json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _type_error(value: Any, dtype: _DType) -> InvalidArgument:
    return InvalidArgument(
        f"JSON Value: {value_to_string(value)} Type: {_json_type(value)}"
        f" is not of expected type: {dtype.name}"
    )


def lossy_error(value: Any, target: str) -> InvalidArgument:
    return InvalidArgument(
        f"Cannot convert JSON value: {value_to_string(value)} to {target} without loss of precision."
    )


def _format_error(doc: Any, text: str) -> InvalidArgument:
    return InvalidArgument(f"JSON Value: {value_to_string(doc)} {text}")


# ------------------------------------------------------------------------------------------------ parsing


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic GC while building large acyclic structures (parsed JSON, reply lists).

    With TensorFlow imported the heap holds millions of tracked objects, and the collections that the
    allocation of a big JSON document triggers made ``json.loads`` ~6x slower. JSON values cannot form
    cycles, so nothing is lost; the GC runs again right after (and stays off if someone else turned it off).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# An integer literal of 20+ digits: orjson would read one above 2^64 as a float; the stdlib keeps it exact.
_LONG_INTEGER = re.compile(rb"(?<![.\d])\d{20,}(?![.\deE])")


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Parse a request body; the top level must be an object (TF Serving's ParseJson)."""
    if not body.strip():
        raise InvalidArgument("JSON Parse error: The document is empty")
    try:
        if _LONG_INTEGER.search(body):
            raise orjson.JSONDecodeError("long integer", "", 0)
        with no_gc():
            doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "recursion" in str(exc):
            raise InvalidArgument("JSON Parse error: The document is nested too deeply") from None
        doc = _stdlib_loads(body)  # NaN/Infinity tokens, or an error to explain
    if not isinstance(doc, dict):
        raise _format_error(doc, "Is not object")
    return doc


def _stdlib_loads(body: bytes) -> Any:
    try:
        # The stdlib parser takes NaN, Infinity and -Infinity, as rapidjson's kParseNanAndInfFlag does.
        with no_gc():
            return json.loads(body, parse_float=_finite_float)
    except UnicodeDecodeError as exc:
        raise InvalidArgument(
            f"JSON Parse error: Invalid encoding in string. at offset: {exc.start}"
        ) from None
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"JSON Parse error: {exc.msg} at offset: {exc.pos}") from None
    except RecursionError:
        raise InvalidArgument("JSON Parse error: The document is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal longer than Python's digit limit
        raise InvalidArgument(f"JSON Parse error: {exc}") from None


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400; the NaN/Infinity tokens do not come through here
        raise ValueError(f"Number too big to be stored in double: {text[:40]}")
    return value


def signature_name_of(doc: dict[str, Any]) -> str:
    """The optional ``signature_name`` ("" when absent: the server then uses serving_default)."""
    name = doc.get("signature_name", "")
    if not isinstance(name, str):
        raise _format_error(doc, "not formatted correctly. 'signature_name' key must be a string value.")
    return name


def decode_b64(value: Any) -> bytes:
    """``{"b64": "<standard base64>"}`` -> raw bytes (TF Serving's JsonDecodeBase64Object)."""
    if not is_b64_object(value):
        raise InvalidArgument(f"JSON Value: {value_to_string(value)} not formatted correctly for base64 data")
    text = value[BASE64_KEY]
    try:
        # absl::Base64Unescape accepts standard base64 with or without padding, never the URL-safe alphabet.
        padded = text + "=" * (-len(text) % 4)
        return base64.b64decode(padded.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise InvalidArgument("Unable to base64 decode") from None


def is_b64_object(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(BASE64_KEY), str)


def _dtype_of(dtype_enum: int, value: Any) -> _DType:
    dtype = _DTYPES.get(dtype_enum)
    if dtype is None:
        known = dtype_enum in types_pb2.DataType.values()
        name = types_pb2.DataType.Name(dtype_enum) if known else str(dtype_enum)
        raise Unimplemented(f"Conversion of JSON Value: {value_to_string(value)} to type: {name}")
    return dtype


# ------------------------------------------------------------------------------------- the careful walk


def _dense_shape(value: Any, outer: int = 0) -> list[int]:
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


def _convert_scalar(value: Any, dtype: _DType) -> Any:
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
        if isinstance(value, int):
            if abs(value) > dtype.high:
                raise lossy_error(value, dtype.name)
        elif math.isfinite(value) and abs(value) > _FLOAT_MAX.get(dtype.name, math.inf):
            raise lossy_error(value, dtype.name)
        return value
    # Integer types take JSON integers only (a JSON 1.0 is a double, as in rapidjson).
    if not isinstance(value, int) or not dtype.low <= value <= dtype.high:
        raise _type_error(value, dtype)
    return value


def _walk(value: Any, level: int, shape: Sequence[int], dtype: _DType, out: list[Any]) -> None:
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


def _careful_tensor(value: Any, dtype: _DType) -> np.ndarray:
    shape = _dense_shape(value)
    flat: list[Any] = []
    _walk(value, 0, shape, dtype, flat)
    if dtype.kind == "string":
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return array.reshape(shape)
    return np.array(flat, dtype=dtype.numpy).reshape(shape)


def _fast_tensor(value: Any, dtype: _DType, may_hold_bools: bool) -> np.ndarray | None:
    """One np.asarray for well-formed numeric input; None means "take the careful walk" (which also
    produces the exact error for bad input)."""
    if dtype.kind == "string":
        return None
    _dense_shape(value)  # refuses a nesting numpy cannot hold before np.asarray tries
    try:
        array = np.asarray(value)
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
        finite = array if kind != "f" else array[np.isfinite(array)]
        if finite.size and float(np.max(np.abs(finite))) > dtype.high:
            return None  # possibly lossy; the walk decides per JSON token (int vs double) like TF
        return array.astype(dtype.numpy)
    if kind == "f":
        return None  # a JSON double for an integer input is a type error
    if int(array.min()) < dtype.low or int(array.max()) > dtype.high:
        return None
    return array.astype(dtype.numpy)


def json_to_tensor(value: Any, dtype_enum: int, *, may_hold_bools: bool = True) -> np.ndarray:
    """A JSON value (scalar, nested list, b64 object) -> ndarray of the signature input's dtype."""
    dtype = _dtype_of(dtype_enum, value)
    array = _fast_tensor(value, dtype, may_hold_bools)
    return array if array is not None else _careful_tensor(value, dtype)


# ------------------------------------------------------------------------------------ predict requests


def _status_text(exc: InvalidArgument) -> str:
    return f"INVALID_ARGUMENT: {exc.message}"  # absl::Status::ToString(), nested in TF Serving's messages


@dataclass(frozen=True)
class PredictJson:
    """A parsed predict body. ``from_body`` checks the envelope; ``tensors`` converts the inputs once the
    caller has looked up the signature's input dtypes (TF Serving's FillPredictRequestFromJson in two steps,
    because the lookup needs the model, which needs the signature name from the body)."""

    doc: dict[str, Any]
    signature_name: str
    may_hold_bools: bool

    @classmethod
    def from_body(cls, body: bytes) -> PredictJson:
        doc = parse_json_object(body)
        # A bool literal anywhere means numeric fast paths cannot tell true from 1: walk carefully then.
        may_hold_bools = b"true" in body or b"false" in body
        return cls(doc, signature_name_of(doc), may_hold_bools)

    def tensors(
        self, input_dtypes: Mapping[str, int], signature_name: str
    ) -> tuple[JsonFormat, dict[str, np.ndarray]]:
        """Convert to ``{input_name: ndarray}``; ``input_dtypes`` maps each signature input to its DataType
        (``signature_name`` only names it in errors)."""
        if not input_dtypes:
            raise InvalidArgument(f"Failed to get input map for signature: {signature_name or 'DEFAULT'}")
        doc = self.doc
        has_instances, has_inputs = "instances" in doc, "inputs" in doc
        if has_instances and has_inputs:
            raise _format_error(
                doc, "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist "
            )
        if has_instances:
            instances = doc["instances"]
            if not isinstance(instances, list):
                raise _format_error(doc, "Excepting 'instances' to be an list/array")
            if not instances:
                raise _format_error(doc, "No values in 'instances' array")
            return JsonFormat.ROW, self._from_instances(instances, input_dtypes)
        if has_inputs:
            return JsonFormat.COLUMNAR, self._from_inputs(doc["inputs"], input_dtypes)
        raise InvalidArgument("Missing 'inputs' or 'instances' key")

    def _from_inputs(self, value: Any, input_dtypes: Mapping[str, int]) -> dict[str, np.ndarray]:
        if not isinstance(value, dict) or is_b64_object(value):
            if len(input_dtypes) > 1:
                raise InvalidArgument(
                    "inputs is a plain value/list, but expecting an object as multiple input tensors "
                    "required as per tensorinfo_map"
                )
            ((name, dtype_enum),) = input_dtypes.items()
            return {name: json_to_tensor(value, dtype_enum, may_hold_bools=self.may_hold_bools)}
        tensors: dict[str, np.ndarray] = {}
        for name, dtype_enum in input_dtypes.items():
            if name not in value:
                raise InvalidArgument(f"Missing named input: {name} in 'inputs' object.")
            tensors[name] = json_to_tensor(value[name], dtype_enum, may_hold_bools=self.may_hold_bools)
        return tensors

    def _from_instances(self, instances: list[Any], input_dtypes: Mapping[str, int]) -> dict[str, np.ndarray]:
        named = _is_named_row(instances[0])
        if not isinstance(instances[0], dict) and len(input_dtypes) > 1:
            raise InvalidArgument(
                "instances is a plain list, but expecting list of objects as multiple input tensors "
                "required as per tensorinfo_map"
            )
        names = set(input_dtypes)
        if named and all(_is_named_row(row) and row.keys() == names for row in instances):
            columns = {name: [row[name] for row in instances] for name in input_dtypes}
        elif not named and not any(_is_named_row(row) for row in instances):
            columns = {next(iter(input_dtypes)): instances}
        else:
            columns = None
        if columns is not None:
            fast: dict[str, np.ndarray] = {}
            for name, column in columns.items():
                dtype = _dtype_of(input_dtypes[name], column)
                array = _fast_tensor(column, dtype, self.may_hold_bools)
                if array is None or array.ndim == 0:
                    break
                fast[name] = array
            else:
                return fast
        return _careful_instances(instances, input_dtypes, named)


def _is_named_row(value: Any) -> bool:
    return isinstance(value, dict) and not is_b64_object(value)


def _careful_instances(
    instances: list[Any], input_dtypes: Mapping[str, int], named: bool
) -> dict[str, np.ndarray]:
    """TF Serving's FillTensorMapFromInstancesList, element by element, with its messages."""
    rows: dict[str, list[np.ndarray]] = {}
    first_shape: dict[str, tuple[int, ...]] = {}
    names = sorted(input_dtypes)

    def add(item: Any, name: str) -> None:
        if name not in input_dtypes:
            raise InvalidArgument(f"JSON object: does not have named input: {name}")
        tensor = _careful_tensor(item, _dtype_of(input_dtypes[name], item))
        if name not in first_shape:
            first_shape[name] = tensor.shape
        elif first_shape[name] != tensor.shape:
            expected = first_shape[name]
            if math.prod(expected) != tensor.size:
                raise InvalidArgument(f"Expecting tensor size: {math.prod(expected)} but got: {tensor.size}")
            raise InvalidArgument(
                f"Expecting shape {_shape_text(expected)} but got: {_shape_text(tensor.shape)}"
            )
        rows.setdefault(name, []).append(tensor)

    for index, row in enumerate(instances):
        if named:
            if not _is_named_row(row):
                raise InvalidArgument(f"Expecting object but got list at item {index} of input list")
            for key, item in row.items():
                try:
                    add(item, key)
                except InvalidArgument as exc:
                    raise InvalidArgument(
                        f"Failed to process element: {index} key: {key} of 'instances' list."
                        f" Error: {_status_text(exc)}"
                    ) from None
            if set(row) != set(names):
                raise InvalidArgument(
                    f"Failed to process element: {index} of 'instances' list. JSON object:"
                    f" {value_to_string(row)} keys must be equal to: {','.join(names)}"
                )
        else:
            if _is_named_row(row):
                raise InvalidArgument(f"Expecting value/list but got object at item {index} of input list")
            try:
                add(row, next(iter(input_dtypes)))
            except InvalidArgument as exc:
                raise InvalidArgument(
                    f"Failed to process element: {index} of 'instances' list. Error: {_status_text(exc)}"
                ) from None
    return {name: np.stack(tensors) for name, tensors in rows.items()}


def _shape_text(shape: Iterable[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


# ------------------------------------------------------------------------------------------- replies


def _decimal_text(value: float) -> str:
    """TF Serving's WriteDecimal for one double (used in messages only)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    return repr(value)


def float32_values(array: np.ndarray) -> np.ndarray:
    """float32 values -> the float64 values TF Serving's WriteDecimal prints for them.

    WriteDecimal prints ``%g`` (6 significant digits) when that reads back as the same float32, else
    ``%.9g``. Python prints a float64 with the shortest text that reads back as that float64, so returning
    the float64 nearest to TF Serving's decimal text makes ``json.dumps`` print the same number.
    """
    x = np.asarray(array, dtype=np.float32).astype(np.float64)
    out = x.copy()
    magnitude = np.abs(x)
    # Scaling by 10**k is exact for 0 <= k <= 22, so this range is rounded in bulk; the rest one by one.
    bulk = np.isfinite(x) & (magnitude >= 1e-13) & (magnitude < 1e15)
    if bulk.any():
        values = x[bulk]
        exponent = np.floor(np.log10(np.abs(values)))
        six = _round_significant(values, exponent, 6)
        nine = _round_significant(values, exponent, 9)
        out[bulk] = np.where(six.astype(np.float32) == values.astype(np.float32), six, nine)
    rest = np.isfinite(x) & ~bulk & (x != 0)
    if rest.any():
        out[rest] = [_round_one(float(v)) for v in x[rest]]
    return out


def _round_significant(values: np.ndarray, exponent: np.ndarray, digits: int) -> np.ndarray:
    power = (digits - 1) - exponent
    up = power >= 0
    scale = np.power(10.0, np.abs(power))
    return np.where(up, np.round(values * scale) / scale, np.round(values / scale) * scale)


def _round_one(value: float) -> float:
    six = float(f"{value:.6g}")
    return six if np.float32(six) == np.float32(value) else float(f"{value:.9g}")


def _string_value(item: bytes | str, as_bytes: bool) -> Any:
    raw = item.encode("utf-8", "surrogatepass") if isinstance(item, str) else bytes(item)
    if as_bytes:
        return {BASE64_KEY: base64.b64encode(raw).decode("ascii")}
    return raw.decode("utf-8", errors="replace")  # TF writes raw bytes; JSON text must be valid UTF-8


def tensor_to_json(name: str, array: np.ndarray) -> Any:
    """An output tensor -> nested Python lists ready for ``json.dumps`` (scalars stay scalars)."""
    kind = array.dtype.kind
    if kind == "f":
        if array.dtype == np.float64:
            return array.tolist()
        return float32_values(array).reshape(array.shape).tolist()
    if kind in "iub":
        return array.tolist()
    if kind in "OSU":
        as_bytes = name.endswith(BYTES_SUFFIX)
        flat = [_string_value(item, as_bytes) for item in array.reshape(-1).tolist()]
        converted = np.empty(len(flat), dtype=object)
        converted[:] = flat
        return converted.reshape(array.shape).tolist()
    raise InvalidArgument(f"Failed to write JSON value for tensor type: {array.dtype}")


def jsonable_scalar_list(values: Sequence[float]) -> list[float]:
    """float32 scores/values (classify, regress) printed as TF Serving prints them."""
    return float32_values(np.asarray(values, dtype=np.float32)).tolist()


def dumps(payload: Any) -> bytes:
    # allow_nan: NaN/Infinity are emitted as bare tokens, as TF Serving does (not strict JSON, on purpose).
    with no_gc():
        return json.dumps(payload, ensure_ascii=False, allow_nan=True, separators=(",", ":")).encode(
            "utf-8",
            "backslashreplace",  # a lone surrogate from the request becomes a \\uXXXX escape again
        )


def predict_response_json(outputs: Mapping[str, np.ndarray], fmt: JsonFormat) -> bytes:
    """TF Serving's MakeJsonFromTensors: ``predictions`` for row requests, ``outputs`` for columnar ones."""
    with no_gc():
        return _predict_response_json(outputs, fmt)


def _predict_response_json(outputs: Mapping[str, np.ndarray], fmt: JsonFormat) -> bytes:
    if not outputs:
        raise InvalidArgument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if fmt is JsonFormat.COLUMNAR:
        if len(names) == 1:
            return dumps({"outputs": tensor_to_json(names[0], outputs[names[0]])})
        return dumps({"outputs": {name: tensor_to_json(name, outputs[name]) for name in names}})
    batch = -1
    for name in names:
        tensor = outputs[name]
        if tensor.ndim == 0:
            raise InvalidArgument(f"Tensor name: {name} has no shape information ")
        if batch >= 0 and tensor.shape[0] != batch:
            raise InvalidArgument(
                f"Tensor name: {name} has inconsistent batch size: {tensor.shape[0]} expecting: {batch}"
            )
        batch = tensor.shape[0]
    if len(names) == 1:
        return dumps({"predictions": tensor_to_json(names[0], outputs[names[0]])})
    columns = [tensor_to_json(name, outputs[name]) for name in names]
    return dumps({"predictions": [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]})


def error_json(message: str) -> bytes:
    """The error body: only the status message, never the code name (TF Serving's MakeJsonFromStatus)."""
    return dumps({"error": message})
