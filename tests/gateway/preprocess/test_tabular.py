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


def test_column_and_vector_features_keep_their_shapes() -> None:
    from gateway.upstream.spec import parse_input
    from gateway.upstream.tensors import shape_of

    features = {
        "age": parse_input(
            "age", {"kind": "numeric", "dtype": "float32", "shape": [-1, 1], "missing": "NaN"}
        ),
        "pixels": parse_input(
            "pixels", {"kind": "numeric", "dtype": "float32", "shape": [-1, 3], "missing": "NaN"}
        ),
    }
    rows = validate_records(
        [{"age": 30, "pixels": [1, None, 3]}, {"age": 4, "pixels": None}], features, max_items=5
    )
    tensors = records_to_tensors(rows, list(features), {k: f.trailing for k, f in features.items()})
    assert shape_of(tensors["age"]) == [2, 1] and shape_of(tensors["pixels"]) == [2, 3]
    values = to_list(tensors["pixels"])
    assert values[0] == 1.0 and math.isnan(values[1]) and values[2] == 3.0  # type: ignore[arg-type]
    assert all(math.isnan(v) for v in values[3:])  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match="list of 3 values"):
        validate_records([{"pixels": [1, 2]}], features, max_items=5)
    with pytest.raises(BadRequest, match=r"pixels\[1\] must be a number"):
        validate_records([{"pixels": [1, "x", 2]}], features, max_items=5)


@pytest.mark.parametrize(
    ("dtype", "value", "error"),
    [
        ("int64", 3.5, "whole number"),
        ("int32", 2**31, "outside the int32 range"),
        ("int64", None, "missing 'f'"),  # integers hold no NaN: a value is needed
        ("string", 3, "must be a string"),
        ("float64", "3", "must be a number"),
    ],
)
def test_typed_features_refuse_values_of_another_type(dtype: str, value: object, error: str) -> None:
    features = {"f": {"kind": "numeric", "dtype": dtype, "missing": "NaN"}, "g": {"kind": "numeric"}}
    with pytest.raises(BadRequest, match=error):
        validate_records([{"f": value, "g": 1.0}], features, max_items=5)


def test_typed_features_become_tensors_and_examples_of_their_dtype() -> None:
    from tfs_protos.tensorflow.core.framework import types_pb2

    features = {
        "rooms": {"kind": "numeric", "dtype": "int64"},
        "city": {"kind": "text", "dtype": "string"},
        "area": {"kind": "numeric", "dtype": "float64"},
    }
    rows = validate_records([{"rooms": 3, "city": "Zürich", "area": 71.5}], features, max_items=5)
    tensors = records_to_tensors(
        rows, list(features), {"city": (1,)}, {k: v["dtype"] for k, v in features.items()}
    )
    assert [tensors[k].dtype for k in features] == [
        types_pb2.DT_INT64,
        types_pb2.DT_STRING,
        types_pb2.DT_DOUBLE,
    ]
    assert to_list(tensors["rooms"]) == [3] and to_list(tensors["city"]) == ["Zürich"]
    assert to_list(tensors["area"]) == [71.5]
    (example,) = records_to_examples(rows)
    feature = example.features.feature
    assert feature["rooms"].int64_list.value == [3] and feature["city"].bytes_list.value == [
        "Zürich".encode()
    ]
