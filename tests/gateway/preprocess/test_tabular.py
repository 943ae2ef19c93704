"""gateway.preprocess.tabular."""

from __future__ import annotations

import math

import pytest

from gateway.errors import BadRequest, TooManyItems
from gateway.preprocess.tabular import records_to_examples, records_to_tensors, validate_records
from gateway.upstream.tensors import to_list

FEATURES = {"rooms": {"kind": "numeric", "missing": "NaN"}, "income": {"kind": "numeric", "missing": "NaN"}}


def test_missing_values_become_nan_and_examples_leave_them_out() -> None:
    rows = validate_records([{"rooms": 3, "income": None}, {"income": 2.5}], FEATURES, max_items=5)
    tensors = records_to_tensors(rows, list(FEATURES))
    assert to_list(tensors["rooms"])[0] == 3.0 and math.isnan(to_list(tensors["rooms"])[1])  # type: ignore[arg-type]
    examples = records_to_examples(rows)
    assert set(examples[0].features.feature) == {"rooms"}
    assert examples[1].features.feature["income"].float_list.value == [2.5]


@pytest.mark.parametrize(
    ("records", "error"),
    [
        ([], BadRequest),
        ([{"nope": 1}], BadRequest),
        ([{"rooms": "3"}], BadRequest),
        ([{"rooms": True}], BadRequest),
        ([{"rooms": float("inf")}], BadRequest),
        ([{}], BadRequest),
        ([{"rooms": 1}] * 6, TooManyItems),
    ],
    ids=["empty", "unknown", "string", "bool", "inf", "no-feature", "too-many"],
)
def test_bad_records(records: list[dict], error: type[Exception]) -> None:
    with pytest.raises(error):
        validate_records(records, FEATURES, max_items=5)


def test_required_feature_without_missing_policy() -> None:
    with pytest.raises(BadRequest, match="requires"):
        validate_records([{"a": 1.0}], {"a": {}, "b": {}}, max_items=5)
