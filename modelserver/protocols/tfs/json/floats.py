"""Floats in REST replies printed the way TensorFlow Serving prints them (``WriteDecimal`` in
``util/json_tensor.cc``): a float32 gets 6 significant digits when that reads back as the same float32, else
9, so the same model gives the same JSON numbers here and there.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

import numpy as np

__all__ = ["float32_values", "jsonable_scalar_list"]

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


def jsonable_scalar_list(values: Sequence[float]) -> list[float]:
    """float32 scores/values (classify, regress) printed as TF Serving prints them."""
    printed: list[float] = float32_values(np.asarray(values, dtype=np.float32)).tolist()
    return printed
