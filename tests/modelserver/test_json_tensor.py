"""modelserver.protocols.tfs.json.text, json_tensor, json_floats and json_predict: JSON <-> tensors exactly as TF Serving's util/json_tensor.cc converts them."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from tensorflow.core.framework import types_pb2

from modelserver.errors import InvalidArgument, ServingError
from modelserver.protocols.tfs.json.floats import float32_values
from modelserver.protocols.tfs.json.predict import JsonFormat, PredictJson, predict_response_json
from modelserver.protocols.tfs.json.text import parse_json_object

F, D, I32, I64, U8, B, S = (
    types_pb2.DT_FLOAT,
    types_pb2.DT_DOUBLE,
    types_pb2.DT_INT32,
    types_pb2.DT_INT64,
    types_pb2.DT_UINT8,
    types_pb2.DT_BOOL,
    types_pb2.DT_STRING,
)
ONE_FLOAT = {"x": F}
TWO_INPUTS = {"a": I64, "b": F}


def convert(body: str, dtypes: dict[str, int]) -> tuple[JsonFormat, dict[str, np.ndarray]]:
    parsed = PredictJson.from_body(body.encode("utf-8"))
    return parsed.tensors(dtypes, parsed.signature_name)


def error_of(body: str, dtypes: dict[str, int]) -> str:
    with pytest.raises(ServingError) as caught:
        convert(body, dtypes)
    return caught.value.message


# ------------------------------------------------------------------------------------------ valid input

VALID = [
    # TF Serving's documented examples (half_plus_two)
    ('{"instances": [2.0, 3.0, 4.0]}', ONE_FLOAT, JsonFormat.ROW, {"x": ("float32", [2.0, 3.0, 4.0])}),
    ('{"inputs": [2.0, 3.0, 4.0]}', ONE_FLOAT, JsonFormat.COLUMNAR, {"x": ("float32", [2.0, 3.0, 4.0])}),
    # integers are fine for float inputs, rounded as TF Serving rounds them, and rows can be lists
    ('{"instances": [[1, 2], [3, 4]]}', ONE_FLOAT, JsonFormat.ROW, {"x": ("float32", [[1, 2], [3, 4]])}),
    ('{"instances": [16777215]}', ONE_FLOAT, JsonFormat.ROW, {"x": ("float32", [16777215.0])}),
    ('{"instances": [16777217.0]}', ONE_FLOAT, JsonFormat.ROW, {"x": ("float32", [16777216.0])}),
    ('{"instances": [16777217]}', ONE_FLOAT, JsonFormat.ROW, {"x": ("float32", [16777216.0])}),
    ('{"inputs": [1e39]}', ONE_FLOAT, JsonFormat.COLUMNAR, {"x": ("float32", [np.inf])}),
    # a scalar columnar input stays a scalar
    ('{"inputs": 2.5}', ONE_FLOAT, JsonFormat.COLUMNAR, {"x": ("float32", 2.5)}),
    # single named input may be written as objects in row format
    ('{"instances": [{"x": 1.0}, {"x": 2.0}]}', ONE_FLOAT, JsonFormat.ROW, {"x": ("float32", [1.0, 2.0])}),
    # several inputs: objects per row (sharing dim 0) or one object of tensors
    (
        '{"instances": [{"a": 1, "b": [1, 2]}, {"a": 2, "b": [3, 4]}]}',
        TWO_INPUTS,
        JsonFormat.ROW,
        {"a": ("int64", [1, 2]), "b": ("float32", [[1, 2], [3, 4]])},
    ),
    (
        '{"inputs": {"a": [1, 2, 3], "b": [[1, 2]], "ignored": 1}}',
        TWO_INPUTS,
        JsonFormat.COLUMNAR,
        {"a": ("int64", [1, 2, 3]), "b": ("float32", [[1, 2]])},
    ),
    # other dtypes
    ('{"instances": [1.5, 2.25]}', {"x": D}, JsonFormat.ROW, {"x": ("float64", [1.5, 2.25])}),
    ('{"instances": [[1, 2], [3, 4]]}', {"x": I32}, JsonFormat.ROW, {"x": ("int32", [[1, 2], [3, 4]])}),
    ('{"instances": [0, 255]}', {"x": U8}, JsonFormat.ROW, {"x": ("uint8", [0, 255])}),
    ('{"instances": [9007199254740993]}', {"x": I64}, JsonFormat.ROW, {"x": ("int64", [9007199254740993])}),
    ('{"instances": [true, false]}', {"x": B}, JsonFormat.ROW, {"x": ("bool", [True, False])}),
    (
        '{"instances": ["hi", "caf\u00e9"]}',
        {"x": S},
        JsonFormat.ROW,
        {"x": ("object", [b"hi", "café".encode()])},
    ),
    # b64 objects are decoded before the model sees them; unpadded standard base64 is accepted too
    (
        '{"instances": [{"b64": "aGVsbG8="}, {"b64": "/+8"}]}',
        {"x": S},
        JsonFormat.ROW,
        {"x": ("object", [b"hello", b"\xff\xef"])},
    ),
    ('{"inputs": {"b64": "AAE="}}', {"x": S}, JsonFormat.COLUMNAR, {"x": ("object", b"\x00\x01")}),
    (
        '{"instances": [{"img_bytes": {"b64": "AA=="}, "k": 3}]}',
        {"img_bytes": S, "k": I32},
        JsonFormat.ROW,
        {"img_bytes": ("object", [b"\x00"]), "k": ("int32", [3])},
    ),
    # empty inner lists keep their shape
    ('{"inputs": [[], []]}', ONE_FLOAT, JsonFormat.COLUMNAR, {"x": ("float32", [[], []])}),
]


@pytest.mark.parametrize(("body", "dtypes", "fmt", "expected"), VALID)
def test_valid_requests_convert_like_tf_serving(
    body: str, dtypes: dict[str, int], fmt: JsonFormat, expected: dict[str, tuple[str, Any]]
) -> None:
    got_fmt, tensors = convert(body, dtypes)
    assert got_fmt is fmt
    assert set(tensors) == set(expected)
    for name, (dtype, values) in expected.items():
        assert tensors[name].dtype == np.dtype(dtype), name
        assert tensors[name].tolist() == values, name


def test_nan_and_infinity_are_accepted_for_floats() -> None:
    _, tensors = convert('{"instances": [NaN, Infinity, -Infinity, 1e39]}', {"x": D})
    values = tensors["x"].tolist()
    assert math.isnan(values[0]) and values[1] == math.inf and values[2] == -math.inf and values[3] == 1e39
    _, tensors = convert('{"inputs": [[NaN, 1], [Infinity, -Infinity]]}', ONE_FLOAT)
    assert tensors["x"].dtype == np.float32 and np.isnan(tensors["x"][0, 0]) and tensors["x"][1, 1] == -np.inf


def test_signature_name_is_read() -> None:
    parsed = PredictJson.from_body(b'{"signature_name": "classify", "inputs": [1]}')
    assert parsed.signature_name == "classify"
    assert PredictJson.from_body(b'{"inputs": [1]}').signature_name == ""


def test_large_row_request_takes_the_bulk_path_and_keeps_values() -> None:
    rows = np.random.default_rng(0).random((64, 28, 28, 1)).astype(np.float32)
    body = json.dumps({"instances": rows.tolist()})
    _, tensors = convert(body, {"image": F})
    np.testing.assert_array_equal(tensors["image"], rows)


# ------------------------------------------------------------------------------------------ bad input

ERRORS = [
    ("", ONE_FLOAT, "JSON Parse error: The document is empty"),
    ('{"instances": [1,', ONE_FLOAT, "JSON Parse error: Invalid value. at offset: 17"),
    ("[1, 2]", ONE_FLOAT, "JSON Value: [\n    1,\n    2\n] Is not object"),
    (
        '{"signature_name": 3, "inputs": [1]}',
        ONE_FLOAT,
        'JSON Value: {\n    "signature_name": 3,\n    "inputs": [\n        1\n    ]\n} not formatted correctly. '
        "'signature_name' key must be a string value.",
    ),
    ("{}", ONE_FLOAT, "Missing 'inputs' or 'instances' key"),
    (
        '{"inputs": [1], "instances": [1]}',
        ONE_FLOAT,
        'JSON Value: {\n    "inputs": [\n        1\n    ],\n    "instances": [\n        1\n    ]\n} '
        "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist ",
    ),
    (
        '{"instances": []}',
        ONE_FLOAT,
        "JSON Value: {\n    \"instances\": []\n} No values in 'instances' array",
    ),
    (
        '{"instances": 1}',
        ONE_FLOAT,
        "JSON Value: {\n    \"instances\": 1\n} Expecting 'instances' to be an list/array",
    ),
    ('{"inputs": []}', {}, "Failed to get input map for signature: DEFAULT"),
    # dtype checks, with TF Serving's wording
    (
        '{"instances": [{"b64": "AA=="}]}',
        ONE_FLOAT,
        "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: JSON Value: "
        '{\n    "b64": "AA=="\n} Type: Object is not of expected type: float',
    ),
    ('{"inputs": [1.0, "2"]}', ONE_FLOAT, 'JSON Value: "2" Type: String is not of expected type: float'),
    ('{"inputs": [1.0, true]}', ONE_FLOAT, "JSON Value: true Type: True is not of expected type: float"),
    ('{"inputs": [1, null]}', ONE_FLOAT, "JSON Value: null Type: Null is not of expected type: float"),
    ('{"inputs": [1.5]}', {"x": I32}, "JSON Value: 1.5 Type: Number is not of expected type: int32"),
    ('{"inputs": [256]}', {"x": U8}, "JSON Value: 256 Type: Number is not of expected type: uint8"),
    (
        '{"inputs": [2147483648]}',
        {"x": I32},
        "JSON Value: 2147483648 Type: Number is not of expected type: int32",
    ),
    ('{"inputs": [1]}', {"x": B}, "JSON Value: 1 Type: Number is not of expected type: bool"),
    ('{"inputs": [1]}', {"x": S}, "JSON Value: 1 Type: Number is not of expected type: string"),
    # base64
    ('{"inputs": [{"b64": "aGVsbG8_"}]}', {"x": S}, "Unable to base64 decode"),
    ('{"inputs": [{"b64": "a b"}]}', {"x": S}, "Unable to base64 decode"),
    (
        '{"inputs": [{"b64": "AA==", "x": 1}]}',
        {"x": S},
        'JSON Value: {\n    "b64": "AA==",\n    "x": 1\n} not formatted correctly for base64 data',
    ),
    # ragged and mismatched shapes
    (
        '{"instances": [[1, 2], [3]]}',
        ONE_FLOAT,
        "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: Expecting tensor size: 2 "
        "but got: 1",
    ),
    (
        '{"instances": [[1, 2], [[3], [4]]]}',
        ONE_FLOAT,
        "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: Expecting shape [2] but "
        "got: [2,1]",
    ),
    (
        '{"inputs": [[1, 2], [3]]}',
        ONE_FLOAT,
        "Encountered list at unexpected size: 1 at level: 1 expected size: 2",
    ),
    ('{"inputs": [[1, [2]]]}', ONE_FLOAT, "Encountered list at unexpected level: 2 expected < 2"),
    (
        '{"inputs": [[[1], 2]]}',
        ONE_FLOAT,
        "JSON Value: 2 found at incorrect level: 3 in the JSON DOM. Expected at level: 3",
    ),
    # several inputs
    (
        '{"instances": [1, 2]}',
        TWO_INPUTS,
        "instances is a plain list, but expecting list of objects as multiple input tensors required as per "
        "tensorinfo_map",
    ),
    (
        '{"inputs": [1, 2]}',
        TWO_INPUTS,
        "inputs is a plain value/list, but expecting an object as multiple input tensors required as per "
        "tensorinfo_map",
    ),
    ('{"inputs": {"a": [1]}}', TWO_INPUTS, "Missing named input: b in 'inputs' object."),
    (
        '{"instances": [{"a": 1, "b": 1.0}, {"a": 2}]}',
        TWO_INPUTS,
        "Failed to process element: 1 of 'instances' list. JSON object: {\n    \"a\": 2\n} keys must be equal "
        "to: a,b",
    ),
    (
        '{"instances": [{"a": 1, "b": 1.0}, {"a": 2, "c": 1}]}',
        TWO_INPUTS,
        "Failed to process element: 1 key: c of 'instances' list. Error: INVALID_ARGUMENT: JSON object: does "
        "not have named input: c",
    ),
    (
        '{"instances": [{"a": 1, "b": 1.0}, [1]]}',
        TWO_INPUTS,
        "Expecting object but got list at item 1 of input list",
    ),
    (
        '{"instances": [[1.0], {"x": [2.0]}]}',
        ONE_FLOAT,
        "Expecting value/list but got object at item 1 of input list",
    ),
    (
        '{"instances": [{"a": 1, "b": [1.0]}, {"a": 2, "b": [1.0, 2.0]}]}',
        TWO_INPUTS,
        "Failed to process element: 1 key: b of 'instances' list. Error: INVALID_ARGUMENT: Expecting tensor "
        "size: 1 but got: 2",
    ),
]


@pytest.mark.parametrize(("body", "dtypes", "message"), ERRORS)
def test_bad_requests_get_tf_serving_messages(body: str, dtypes: dict[str, int], message: str) -> None:
    assert error_of(body, dtypes) == message


def test_bad_request_errors_are_invalid_argument() -> None:
    with pytest.raises(InvalidArgument) as caught:
        convert('{"inputs": ["x"]}', ONE_FLOAT)
    assert caught.value.http_status == 400


def test_unsupported_dtype_is_unimplemented() -> None:
    with pytest.raises(ServingError) as caught:
        convert('{"inputs": [1]}', {"x": types_pb2.DT_COMPLEX64})
    assert caught.value.message == "Conversion of JSON Value: [\n    1\n] to type: DT_COMPLEX64"
    assert caught.value.http_status == 501


def test_parse_rejects_non_utf8() -> None:
    with pytest.raises(InvalidArgument):
        parse_json_object(b'{"inputs": ["\xff"]}')


# ------------------------------------------------------------------------------------------ replies


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


REPLIES = [
    ({"y": f32(3.0, 3.5, 4.0)}, JsonFormat.ROW, '{"predictions":[3.0,3.5,4.0]}'),
    ({"y": f32(3.0, 3.5, 4.0)}, JsonFormat.COLUMNAR, '{"outputs":[3.0,3.5,4.0]}'),
    ({"y": np.array(2.5, dtype=np.float32)}, JsonFormat.COLUMNAR, '{"outputs":2.5}'),
    # several outputs: one object per row / one object of tensors (keys sorted)
    (
        {"b": np.array([1, 2]), "a": f32(0.5, 1.5)},
        JsonFormat.ROW,
        '{"predictions":[{"a":0.5,"b":1},{"a":1.5,"b":2}]}',
    ),
    ({"b": np.array([[1, 2]]), "a": f32(0.5)}, JsonFormat.COLUMNAR, '{"outputs":{"a":[0.5],"b":[[1,2]]}}'),
    # strings: UTF-8 text, or b64 when the name ends in _bytes
    ({"label": np.array([b"caf\xc3\xa9"], dtype=object)}, JsonFormat.ROW, '{"predictions":["café"]}'),
    (
        {"img_bytes": np.array([b"\xff\x00"], dtype=object)},
        JsonFormat.ROW,
        '{"predictions":[{"b64":"/wA="}]}',
    ),
    ({"ok": np.array([True, False])}, JsonFormat.ROW, '{"predictions":[true,false]}'),
    # non-finite floats are written as TF Serving writes them
    ({"y": f32(np.nan, np.inf, -np.inf)}, JsonFormat.ROW, '{"predictions":[NaN,Infinity,-Infinity]}'),
    # a double: %g when that reads back, else all 17 digits (%.17g), as WriteDecimal<double>
    ({"y": np.array([0.1, 1 / 3])}, JsonFormat.ROW, '{"predictions":[0.1,0.33333333333333331]}'),
]


@pytest.mark.parametrize(("outputs", "fmt", "expected"), REPLIES)
def test_replies_are_written_like_tf_serving(
    outputs: dict[str, np.ndarray], fmt: JsonFormat, expected: str
) -> None:
    assert predict_response_json(outputs, fmt).decode("utf-8") == expected


REPLY_ERRORS = [
    ({}, JsonFormat.ROW, "Cannot convert empty tensor map to JSON"),
    ({"y": np.array(1.0, dtype=np.float32)}, JsonFormat.ROW, "Tensor name: y has no shape information "),
    (
        {"a": f32(1, 2), "b": f32(1)},
        JsonFormat.ROW,
        "Tensor name: b has inconsistent batch size: 1 expecting: 2",
    ),
]


@pytest.mark.parametrize(("outputs", "fmt", "message"), REPLY_ERRORS)
def test_unwritable_replies_raise(outputs: dict[str, np.ndarray], fmt: JsonFormat, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        predict_response_json(outputs, fmt)
    assert caught.value.message == message


# float32 -> the text TF Serving's WriteDecimal prints (absl StrCat = %g, else %.9g, plus ".0").
FLOAT_TEXTS = [
    (3.5, "3.5"),
    (0.1, "0.1"),
    (0.2, "0.2"),
    (1 / 3, "0.333333343"),
    (0.1234567, "0.123456702"),
    (123456789.0, "123456792"),
    (1e-20, "1e-20"),
    (1.17549435e-38, "1.17549435e-38"),
    (3.4028235e38, "3.40282347e+38"),
    (-2.0, "-2"),
    (0.0, "0"),
]


@pytest.mark.parametrize(("value", "tf_text"), FLOAT_TEXTS)
def test_float32_values_match_tf_serving_text(value: float, tf_text: str) -> None:
    assert float32_values(f32(value)).tolist() == [float(tf_text)]


def _reference(value: np.float32) -> float:
    """TF Serving's WriteDecimal, one value at a time."""
    six = float(f"{float(value):.6g}")
    return six if np.float32(six) == value else float(f"{float(value):.9g}")


def test_float32_bulk_rounding_agrees_with_the_one_by_one_rule() -> None:
    rng = np.random.default_rng(42)
    values = (rng.standard_normal(20_000) * 10.0 ** rng.integers(-40, 38, 20_000)).astype(np.float32)
    values = np.concatenate([values, rng.random(5000, dtype=np.float32), f32(1, 10, 100, 1e6, 999999.9)])
    got = float32_values(values)
    expected = np.array([_reference(v) for v in values])
    finite = np.isfinite(values)
    np.testing.assert_array_equal(got[finite], expected[finite])
    # every printed value reads back as the same float32
    np.testing.assert_array_equal(got[finite].astype(np.float32), values[finite])


def test_small_arrays_one_by_one_agree_with_the_bulk_path() -> None:
    rng = np.random.default_rng(7)
    values = (rng.standard_normal(4000) * 10.0 ** rng.integers(-45, 39, 4000)).astype(np.float32)
    edge = f32(
        0.0, -0.0, np.inf, -np.inf, np.nan, 3.4028235e38, -3.4028235e38, 1e-45, 1.17549435e-38, 999999.9
    )
    values = np.concatenate([edge, values])
    bulk = float32_values(values)  # over 32 values: the numpy path
    small = np.concatenate([float32_values(values[i : i + 32]) for i in range(0, len(values), 32)])
    np.testing.assert_array_equal(small, bulk)  # NaN == NaN here; signs of zero and infinities kept
    assert np.signbit(small[:2]).tolist() == [False, True]


@pytest.mark.parametrize(
    ("body", "has_long"),
    [
        (b'{"x": 123456789012345678901}', True),  # 21 digits: the stdlib keeps it exact
        (b'{"x": 0.123456789012345678901}', False),  # digits after a point are a float's
        (b'{"x": 12345678901234567890.5}', False),
        (b'{"x": 99999999999999999999e3}', False),
        (b'{"x": 1234567890123456789}', False),  # 19 digits: orjson reads it exactly
        (b'{"instances": [[0.10685748606920242, 9.02017089e-12]]}', False),
    ],
)
def test_the_long_integer_precheck_agrees_with_the_regex(body: bytes, has_long: bool) -> None:
    from modelserver.protocols.tfs.json.text import _LONG_INTEGER, _has_long_integer

    assert _has_long_integer(body) is has_long
    assert (_LONG_INTEGER.search(body) is not None) is has_long


@pytest.mark.parametrize(
    ("value", "shape", "flat"),
    [
        ([[1, 2], [3, 4]], [2, 2], [1, 2, 3, 4]),
        ([[[1], [2]], [[3], [4]]], [2, 2, 1], [1, 2, 3, 4]),
        ([[1, 2], [3], [4, 5, 6]], [3, 2], None),  # ragged with the right total: not flattened
        ([[1, 2], 5], [2, 2], None),  # a number where a row belongs
        ([1, 2], [2], None),  # rank 1: np.asarray does it
    ],
)
def test_flatten_only_regular_nesting(value: Any, shape: list[int], flat: list[Any] | None) -> None:
    from modelserver.protocols.tfs.json.tensor import _flatten

    assert _flatten(value, shape) == flat


@pytest.mark.parametrize(
    "instances",
    [
        [[[1.0, 2.0], [3.0]], [[4.0, 5.0], [6.0, 7.0]]],  # ragged deep inside
        [[["a", "b"], ["c", "d"]], [[1.0, 2.0], [3.0, 4.0]]],  # strings where numbers belong
        [[[1.0, 2.0], None], [[4.0, 5.0], [6.0, 7.0]]],
    ],
)
def test_irregular_instances_still_get_tf_servings_error(instances: list[Any]) -> None:
    parsed = PredictJson.from_body(json.dumps({"instances": instances}).encode())
    with pytest.raises(InvalidArgument):
        parsed.tensors({"x": types_pb2.DT_FLOAT}, "")
