"""Floats in REST replies printed the way TensorFlow Serving prints them (``WriteDecimal`` in
``util/json_tensor.cc``): ``%g`` (6 significant digits) when that reads back as the same value, else ``%.9g``
for a float32 and ``%.17g`` for a double, ``.0`` added to a whole number without exponent, so the same model
gives the same JSON text here and there (``9e+06``, ``1.43577434e+09``, ``0.5``, ``3.0``).

Fast path: the value is rounded to the double nearest TF Serving's text (``float32_values``), and Python's
float repr writes that text - except for the notation of numbers in [1e6, 1e16), where ``%g`` writes an
exponent and repr does not, and for doubles needing more than 6 digits (repr writes the shortest text,
``%.17g`` all 17 digits). Replies holding such numbers (``differs_from_repr``) are written from
``decimal_text`` per value as ``RawJson``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from modelserver.protocols.tfs.json.text import RawJson

__all__ = ["decimal_text", "differs_from_repr", "float32_values", "float_tensor_json", "jsonable_scalar_list"]

# Arrays up to this size are rounded one value at a time (the crossover with the bulk path is about 40).
_SCALAR_MAX = 32
_FLOAT32 = struct.Struct("<f")


def float32_values(array: np.ndarray) -> np.ndarray:
    """float32 values -> the float64 values TF Serving's WriteDecimal prints for them.

    WriteDecimal prints ``%g`` (6 significant digits) when that reads back as the same float32, else
    ``%.9g``. Python prints a float64 with the shortest text that reads back as that float64, so returning
    the float64 nearest to TF Serving's decimal text makes ``json.dumps`` print the same number.
    """
    if np.size(array) <= _SCALAR_MAX:  # numpy's per-call overhead outweighs the loop (10 scores: 40 -> 15 us)
        flat = np.asarray(array, dtype=np.float32).reshape(-1).tolist()
        return np.array([_round_one(v) if math.isfinite(v) and v else v for v in flat], dtype=np.float64)
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
    rounded: np.ndarray = np.where(up, np.round(values * scale) / scale, np.round(values / scale) * scale)
    return rounded


def _round_one(value: float) -> float:
    """One finite, non-zero float32 value (as a float) -> the float64 of TF Serving's decimal text."""
    six = float(f"{value:.6g}")
    return six if _as_float32(six) == _as_float32(value) else float(f"{value:.9g}")


def _as_float32(value: float) -> float:
    try:
        rounded: float = _FLOAT32.unpack(_FLOAT32.pack(value))[0]  # round to nearest even, as np.float32
    except OverflowError:  # beyond float32's range: np.float32 gives inf
        return math.copysign(math.inf, value)
    return rounded


def decimal_text(value: float, float32: bool) -> str:
    """TF Serving's WriteDecimal for one float32 (``float32``) or double value."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{value:g}"
    back = float(text)
    if (_as_float32(back) if float32 else back) != value:
        text = f"{value:.9g}" if float32 else f"{value:.17g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def differs_from_repr(printed: np.ndarray, float32: bool) -> bool:
    """Whether Python's repr of ``printed`` (``float32_values`` for a float32, the values for a double) would
    not be TF Serving's text for some value."""
    if float32 and printed.size <= _SCALAR_MAX:  # numpy's per-call overhead outweighs the loop
        return any(1e6 <= abs(v) < 1e16 for v in printed.reshape(-1).tolist())
    magnitude = np.abs(printed)
    if bool(np.any((magnitude >= 1e6) & (magnitude < 1e16))):  # %g's exponent notation
        return True
    if float32:
        return False
    finite = printed[np.isfinite(printed) & (printed != 0)]
    bulk = finite[(np.abs(finite) >= 1e-13) & (np.abs(finite) < 1e15)]
    if bulk.size != finite.size:
        return True  # rare magnitudes: let decimal_text decide
    if not bulk.size:
        return False
    six = _round_significant(bulk, np.floor(np.log10(np.abs(bulk))), 6)
    return not bool(np.all(six == bulk))  # repr writes the shortest digits, %.17g all 17


def float_tensor_json(array: np.ndarray) -> Any:
    """A float tensor -> nested lists for the reply (rows as ``RawJson`` when repr would differ)."""
    float32 = array.dtype != np.float64
    printed = float32_values(array) if float32 else array
    if not differs_from_repr(printed, float32):
        return printed.reshape(array.shape).tolist()
    texts = [decimal_text(v, float32) for v in array.reshape(-1).tolist()]
    if array.ndim == 0:
        return RawJson(texts[0])
    for size in reversed(array.shape[1:]):
        texts = ["[" + ",".join(texts[i : i + size]) + "]" for i in range(0, len(texts), size)]
    return [RawJson(text) for text in texts]


def jsonable_scalar_list(values: Sequence[float]) -> list[Any]:
    """float32 scores/values (classify, regress) printed as TF Serving prints them."""
    array = np.asarray(values, dtype=np.float32)
    printed = float32_values(array)
    if differs_from_repr(printed, True):
        return [RawJson(decimal_text(v, True)) for v in array.tolist()]
    scalars: list[Any] = printed.tolist()
    return scalars
