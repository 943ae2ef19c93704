"""Reference profiles and the statistics drift is measured with, shared by the export (which writes a
version's profile of its training data into ``assets.extra/reference_profile.json``) and the model server
(which compares served traffic with it, ``modelserver.observe.drift``). NumPy only.

A profile is a JSON object ``{"schema": 1, "model", "task", "labels", "rows", "features": {name: stats}}``.
Features are derived from a signature's input and output arrays by ``row_features`` - the same code on both
sides, so a feature means the same thing in the export and in the server:

- a rank-1 numeric input ``x``: ``x`` itself (housing's eight columns);
- an image input ``x`` (rank 4, ``[N, H, W, C]``): ``x.mean_c<i>`` (per-channel mean intensity), ``x.std``
  (contrast) and ``x.near_constant`` (std below 1 % of the range: blank or saturated images, categorical);
- a rank-1 string input ``x``: ``x.length`` (whitespace tokens) and ``x.upper_fraction`` (capital letters);
- outputs of a classifier (rank-2 float): ``predicted_class`` (categorical, argmax) and ``confidence`` (max);
- a rank-1 float output ``y`` of a regressor: ``output.y``.

A numeric feature's stats: ``edges`` (the reference deciles), ``counts`` per bin, ``quantiles``, ``mean``,
``std`` and a ``sample`` of reference values (for the two-sample KS test); a categorical one's:
``categories`` and ``counts``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "PROFILE_FILE",
    "build_profile",
    "categorical_stats",
    "ks_test",
    "numeric_stats",
    "psi",
    "row_features",
]

PROFILE_FILE = "assets.extra/reference_profile.json"
SCHEMA = 1
BINS = 10
SAMPLE = 1000
NEAR_CONSTANT = ("no", "yes")
_EPSILON = 1e-4  # PSI smoothing: an empty bin counts as 0.01 %


MAX_COLUMNS = 64  # columns of a [batch, k] numeric input profiled one by one


def row_features(
    inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray], task: str
) -> dict[str, np.ndarray]:
    """One value per row and feature (see the module docstring); categorical features are int codes."""
    features: dict[str, np.ndarray] = {}
    for name, array in inputs.items():
        if array.dtype == object or array.dtype.kind in "SU":
            texts = [
                item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
                for item in array.reshape(-1)
            ]
            features[f"{name}.length"] = np.array([len(text.split()) for text in texts], np.float64)
            features[f"{name}.upper_fraction"] = np.array(
                [_upper_fraction(text) for text in texts], np.float64
            )
        elif array.ndim == 4:
            flat = array.reshape(array.shape[0], -1, array.shape[-1])  # float64 sums, no float64 copy
            means = flat.mean(axis=1, dtype=np.float64)
            for channel in range(array.shape[-1]):
                features[f"{name}.mean_c{channel}"] = means[:, channel]
            std = flat.std(axis=(1, 2), dtype=np.float64)
            features[f"{name}.std"] = std
            span = float(np.ptp(flat)) or 1.0
            features[f"{name}.near_constant"] = (std < 0.01 * span).astype(np.int64)
        elif array.ndim == 1 and array.dtype.kind in "fiu":
            features[name] = array.astype(np.float64)
        elif array.ndim == 2 and array.dtype.kind in "fiu" and array.shape[1] <= MAX_COLUMNS:
            # a user's model taking a [batch, k] numeric tensor: one feature per column ("name" when k is 1)
            for column in range(array.shape[1]):
                key = name if array.shape[1] == 1 else f"{name}.{column}"
                features[key] = array[:, column].astype(np.float64)
    for name, array in outputs.items():
        if task.endswith("classification") and array.ndim == 2 and array.dtype.kind == "f":
            features["predicted_class"] = array.argmax(axis=1).astype(np.int64)
            features["confidence"] = array.max(axis=1).astype(np.float64)
        elif task == "regression" and array.dtype.kind == "f" and array.size == len(array):
            features[f"output.{name}"] = array.reshape(-1).astype(np.float64)  # [batch] or [batch, 1]
    return features


def _upper_fraction(text: str) -> float:
    letters = [char for char in text if char.isalpha()]
    return sum(char.isupper() for char in letters) / len(letters) if letters else 0.0


def numeric_stats(values: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    values = values[np.isfinite(values)]
    edges = np.unique(np.quantile(values, np.linspace(0, 1, BINS + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    sample = rng.choice(values, size=min(SAMPLE, len(values)), replace=False)
    quantiles = {f"p{q}": float(np.quantile(values, q / 100)) for q in (1, 5, 25, 50, 75, 95, 99)}
    return {
        "kind": "numeric",
        "edges": edges.tolist(),
        "counts": counts.tolist(),
        "quantiles": quantiles,
        "mean": float(values.mean()),
        "std": float(values.std()),
        "sample": np.sort(sample).tolist(),
    }


def categorical_stats(codes: np.ndarray, categories: Sequence[str]) -> dict[str, Any]:
    counts = np.bincount(codes, minlength=len(categories))[: len(categories)]
    return {"kind": "categorical", "categories": list(categories), "counts": counts.tolist()}


def build_profile(
    model: str,
    task: str,
    labels: Sequence[str],
    inputs: Mapping[str, np.ndarray],
    outputs: Mapping[str, np.ndarray],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The profile of reference rows (``inputs``) and the model's ``outputs`` on them."""
    rng = np.random.default_rng(0)
    features: dict[str, Any] = {}
    rows = 0
    for name, values in row_features(inputs, outputs, task).items():
        rows = max(rows, len(values))
        if name == "predicted_class":
            features[name] = categorical_stats(values, labels)
        elif name.endswith(".near_constant"):
            features[name] = categorical_stats(values, NEAR_CONSTANT)
        else:
            features[name] = numeric_stats(values, rng)
    profile = {"schema": SCHEMA, "model": model, "task": task, "labels": list(labels), "rows": rows}
    return {**profile, **(extra or {}), "features": features}


def binned(stats: Mapping[str, Any], values: np.ndarray) -> np.ndarray:
    """Counts of ``values`` in the reference feature's bins (categories)."""
    if stats["kind"] == "categorical":
        size = len(stats["categories"])
        return np.bincount(np.clip(values.astype(np.int64), 0, size - 1), minlength=size)
    edges = np.asarray(stats["edges"], np.float64)
    finite = values[np.isfinite(values)]
    return np.bincount(np.searchsorted(edges, finite, side="right"), minlength=len(edges) + 1)


def psi(reference_counts: Sequence[float] | np.ndarray, live_counts: Sequence[float] | np.ndarray) -> float:
    """Population stability index of two histograms over the same bins (0: same; > 0.25: a large shift)."""
    ref = np.asarray(reference_counts, np.float64)
    live = np.asarray(live_counts, np.float64)
    if ref.sum() == 0 or live.sum() == 0:
        return 0.0
    p = np.maximum(ref / ref.sum(), _EPSILON)
    q = np.maximum(live / live.sum(), _EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def ks_test(reference_sample: np.ndarray, live: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov: (statistic D, asymptotic p-value)."""
    a = np.sort(reference_sample)
    b = np.sort(live[np.isfinite(live)])
    if len(a) == 0 or len(b) == 0:
        return 0.0, 1.0
    grid = np.concatenate([a, b])
    d = float(
        np.max(
            np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b))
        )
    )
    en = math.sqrt(len(a) * len(b) / (len(a) + len(b)))
    lam = (en + 0.12 + 0.11 / en) * d
    if lam < 1e-3:
        return d, 1.0
    p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return d, float(min(1.0, max(0.0, p)))
