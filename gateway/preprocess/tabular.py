"""Records with named features -> one float32 ``[n]`` tensor per feature, or tf.Examples for Regress.

The feature names, their order and whether a missing value is allowed come from the contract's ``numeric``
inputs. A feature left out or sent as ``null`` is NaN when the contract says ``"missing": "NaN"`` (the model
imputes it), and an error otherwise. Unknown feature names, non-numbers (including booleans) and non-finite
numbers are errors that name the record and the feature.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.errors import BadRequest, TooManyItems
from gateway.upstream.tensors import float_tensor, to_example
from tfs_protos.tensorflow.core.example import example_pb2
from tfs_protos.tensorflow.core.framework import tensor_pb2

__all__ = ["records_to_examples", "records_to_tensors", "validate_records"]

Record = dict[str, float | None]


def validate_records(
    records: Sequence[Mapping[str, Any]], features: Mapping[str, Mapping[str, Any]], *, max_items: int
) -> list[Record]:
    """Check every record against the contract's features; None marks a missing value."""
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
            value = record.get(name)
            if value is None:
                if spec.get("missing") is None:
                    raise BadRequest(f"records[{index}] is missing {name!r}, which this model requires")
                row[name] = None
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise BadRequest(
                    f"records[{index}].{name} must be a number or null, not {type(value).__name__}"
                )
            try:
                number = float(value)
            except OverflowError:  # an integer beyond float range
                number = math.inf
            if not math.isfinite(number):
                raise BadRequest(f"records[{index}].{name} must be a finite number (use null for unknown)")
            row[name] = number
        if all(v is None for v in row.values()):
            raise BadRequest(f"records[{index}] has no known feature; known: {known}")
        clean.append(row)
    return clean


def records_to_tensors(records: Sequence[Record], names: Sequence[str]) -> dict[str, tensor_pb2.TensorProto]:
    """Columnar Predict inputs: one ``[n]`` float tensor per feature, NaN for a missing value."""
    return {
        name: float_tensor([math.nan if r[name] is None else r[name] for r in records], [len(records)])  # type: ignore[misc]
        for name in names
    }


def records_to_examples(records: Sequence[Record]) -> list[example_pb2.Example]:
    """tf.Examples with one float per known feature (a missing feature is left out = unknown)."""
    return [to_example({k: [v] for k, v in r.items() if v is not None}) for r in records]
