"""Records with named features -> one tensor per feature (``[n]``, ``[n, 1]`` or ``[n, K]``; float32,
float64, int32, int64 or string as the model's input), or tf.Examples for Regress.

The feature names, their order, dtypes and whether a missing value is allowed come from the contract's
``numeric`` inputs (and ``text`` inputs: a string feature, e.g. a category a ``StringLookup`` reads). A float
feature left out or sent as ``null`` is NaN when the contract says ``"missing": "NaN"`` (the model imputes
it), and an error otherwise. Unknown feature names, values of the wrong type (booleans are not numbers),
non-finite numbers and fractions for integer features are errors that name the record and the feature.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.errors import BadRequest, TooManyItems
from gateway.upstream.tensors import number_tensor, string_tensor, to_example
from tfs_protos.tensorflow.core.example import example_pb2
from tfs_protos.tensorflow.core.framework import tensor_pb2

__all__ = ["records_to_examples", "records_to_tensors", "validate_records"]

# One record's values by feature: a number, a string, a list of K of them (a [-1, K] input; NaN where a float
# element is unknown), or None (missing: NaN for a float feature).
Record = dict[str, Any]
# int32 and int64 bounds: a JSON integer outside them is an error, not a wrapped value
_INT_RANGE = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def validate_records(
    records: Sequence[Mapping[str, Any]], features: Mapping[str, Any], *, max_items: int
) -> list[Record]:
    """Check every record against the contract's features (each with ``.get("missing")``, ``.get("width")``
    and ``.get("dtype")``: a contract entry or a ``gateway.upstream.spec`` input); None marks a missing value.
    A feature of width K > 1 (a ``[-1, K]`` input) takes a list of K values; a string feature takes text, an
    integer feature whole numbers."""
    if not features:
        raise BadRequest("this model takes no named features; check GET /v1/models/{name} for its inputs")
    if not records:
        raise BadRequest('"records" is empty; send {"records": [{"feature": value, ...}]}')
    if len(records) > max_items:
        raise TooManyItems("records", len(records), max_items)
    known = ", ".join(features)
    clean: list[Record] = []
    for index, record in enumerate(records):
        unknown = sorted(set(record) - set(features))
        if unknown:
            raise BadRequest(f"records[{index}] has unknown feature(s) {', '.join(unknown)}; known: {known}")
        row: Record = {}
        for name, spec in features.items():
            value, where = record.get(name), f"records[{index}].{name}"
            dtype, width = str(spec.get("dtype") or "float32"), int(spec.get("width") or 1)
            missing = spec.get("missing") if dtype.startswith("float") else None  # only floats hold NaN
            if value is None:
                if missing is None:
                    raise BadRequest(f"records[{index}] is missing {name!r}, which this model requires")
                row[name] = None
                continue
            if width > 1:
                if not isinstance(value, list) or len(value) != width:
                    raise BadRequest(f"{where} must be a list of {width} values")
                row[name] = [_value(v, f"{where}[{k}]", dtype, missing) for k, v in enumerate(value)]
                continue
            row[name] = _value(value, where, dtype, missing)
        if all(v is None for v in row.values()):
            raise BadRequest(f"records[{index}] has no known feature; known: {known}")
        clean.append(row)
    return clean


def _value(value: Any, where: str, dtype: str, missing: Any) -> float | int | str:
    """One value of a ``dtype`` feature (NaN for a null float element where missing values are allowed)."""
    if dtype == "string":
        if not isinstance(value, str):
            raise BadRequest(f"{where} must be a string, not {type(value).__name__}")
        return value
    if value is None and missing is not None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(
            f"{where} must be a number{' or null' if missing else ''}, not {type(value).__name__}"
        )
    if dtype in _INT_RANGE:
        low, high = _INT_RANGE[dtype]
        if isinstance(value, float) and not value.is_integer():
            raise BadRequest(f"{where} must be a whole number (the model takes {dtype})")
        if not low <= value <= high:
            raise BadRequest(f"{where} is outside the {dtype} range")
        return int(value)
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range
        number = math.inf
    if not math.isfinite(number):
        raise BadRequest(f"{where} must be a finite number (use null for unknown)")
    return number


def records_to_tensors(
    records: Sequence[Record],
    names: Sequence[str],
    trailing: Mapping[str, Sequence[int]] | None = None,
    dtypes: Mapping[str, str] | None = None,
) -> dict[str, tensor_pb2.TensorProto]:
    """Columnar Predict inputs: one ``[n]`` tensor per feature, or ``[n, *trailing[name]]`` (``[n, 1]`` for
    Keras' ``Input((1,))``, ``[n, K]`` for a vector feature), of the feature's dtype (default float32); NaN
    for a missing value."""
    tensors = {}
    for name in names:
        dims = [len(records), *(trailing or {}).get(name, ())]
        dtype = (dtypes or {}).get(name, "float32")
        values: list[Any] = []
        for record in records:
            value = record[name]
            if value is None:
                values.extend([math.nan] * math.prod(dims[1:]))
            elif isinstance(value, list):
                values.extend(value)
            else:
                values.append(value)
        if dtype == "string":
            tensors[name] = string_tensor([v.encode("utf-8", errors="replace") for v in values], dims)
        else:
            tensors[name] = number_tensor(values, dims, dtype)
    return tensors


def _example_values(value: Any) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    return [v.encode("utf-8", errors="replace") if isinstance(v, str) else v for v in values]


def records_to_examples(records: Sequence[Record]) -> list[example_pb2.Example]:
    """tf.Examples with the known features (floats, int64s or bytes; a missing feature is left out =
    unknown)."""
    return [to_example({k: _example_values(v) for k, v in r.items() if v is not None}) for r in records]
