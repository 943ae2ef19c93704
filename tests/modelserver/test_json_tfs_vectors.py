"""TF Serving's JSON rules of today, end to end through the REST API of a real ``python -m modelserver``.

Each case quotes the test vector it comes from: ``tensorflow_serving/util/json_tensor_test.cc`` (test name) or,
for messages no test there spells out, the line of ``util/json_tensor.cc`` that writes them. The model is
``identity`` (half_plus_two with a=1, b=0: ``y = x``, float32), so what comes back is what the request put in
the float tensor, written as TF Serving writes it. Replies are compared as text where the C++ test compares
text (``CompareJsonAllValuesAsStrings``); TF Serving pretty-prints, this server writes compact JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from devtools import tiny_models
from devtools.servers import ModelServerHandle, start_modelserver

pytestmark = pytest.mark.e2e

PREDICT = "/v1/models/identity:predict"
DEEP = 500_000  # DeeplyNestedWellFormed / DeeplyNestedMalformed


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    root = tmp_path_factory.mktemp("vectors")
    tiny_models.half_plus_two(root / "identity" / "1", a=1.0, b=0.0)
    server: ModelServerHandle
    with (
        start_modelserver(
            model_name="identity", model_base_path=root / "identity", log_path=root / "modelserver.log"
        ) as server,
        httpx.Client(base_url=server.url, timeout=60.0) as client,
    ):
        yield client


def _post(http: httpx.Client, body: str | bytes, path: str = PREDICT) -> httpx.Response:
    return http.post(path, content=body.encode() if isinstance(body, str) else body)


REPLIES = [
    # FloatTensorWithPrecisionLoss: an integer and the same number as a double both convert, with the loss.
    ('{"instances": [1435774380]}', '{"predictions":[1.43577434e+09]}'),
    ('{"instances": [1435774380.0]}', '{"predictions":[1.43577434e+09]}'),
    # the same rule above 2^24 (the pre-2021 rule refused 16777217 for a float input)
    ('{"instances": [16777217]}', '{"predictions":[16777216.0]}'),
    # FloatTensorThatExceedsMaxReturnsInf: std::numeric_limits<double>::max() as absl writes it
    ('{"instances": [1.79769e+308]}', '{"predictions":[Infinity]}'),
    ('{"instances": [-1.79769e+308]}', '{"predictions":[-Infinity]}'),
    # FloatTensorThatExceedsMinReturnsZero: std::numeric_limits<double>::min()
    ('{"instances": [2.22507e-308]}', '{"predictions":[0.0]}'),
    ('{"instances": [-2.22507e-308]}', '{"predictions":[0.0]}'),  # -0.0, then the model's "+ 0.0" makes it +0
    # MixedInputForFloatTensor
    ('{"instances": [1, 2.0, 3, 4, 5.003, 0.007, 0.0]}', '{"predictions":[1.0,2.0,3.0,4.0,5.003,0.007,0.0]}'),
    # FromJsonSingleFloatTensorSixDigitPrecision: StrCat's six digits, %g notation
    (
        '{"instances": [[9000000, 999999, 0.50000], [0.0003, 0.00003, 555557.5]]}',
        '{"predictions":[[9e+06,999999.0,0.5],[0.0003,3e-05,555557.5]]}',
    ),
    # FromJsonSingleFloatTensorNonFinite
    ('{"inputs": [[NaN, Infinity], [3, -Infinity]]}', '{"outputs":[[NaN,Infinity],[3.0,-Infinity]]}'),
]


@pytest.mark.parametrize(("body", "reply"), REPLIES)
def test_float_input_and_output_text_as_tf_serving(http: httpx.Client, body: str, reply: str) -> None:
    answer = _post(http, body)
    assert answer.status_code == 200, answer.text
    assert answer.text == reply


def test_deep_nesting_under_an_ignored_key_is_accepted(http: httpx.Client) -> None:
    """DeeplyNestedWellFormed: 500,000 levels under "nested", which TF Serving never reads."""
    body = b'{"instances":[1], "nested":' + b"[" * DEEP + b"]" * DEEP + b"}"
    answer = _post(http, body)
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json() == {"predictions": [1.0]}


def test_deep_signature_name_is_not_a_string(http: httpx.Client) -> None:
    """DeeplyNestedMalformed: the same nesting under "signature_name" fails on its type."""
    answer = _post(http, b'{"signature_name":' + b"[" * DEEP + b"]" * DEEP + b"}")
    assert answer.status_code == 400
    assert "key must be a string value" in answer.json()["error"]


def test_deep_value_that_is_read_keeps_the_nesting_bound(http: httpx.Client) -> None:
    """Not a TF Serving vector: a tensor has at most 32 axes, so 5,000 levels under "instances" are refused
    without building them (docs/rest-json.md, deep nesting)."""
    answer = _post(http, b'{"instances":' + b"[" * 5000 + b"]" * 5000 + b"}")
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "JSON Parse error: The document is nested too deeply (under 'instances')"
    }


def test_malformed_ignored_value_is_still_a_parse_error(http: httpx.Client) -> None:
    """rapidjson checks the whole document: a broken value under an ignored key fails the request."""
    answer = _post(http, b'{"instances":[1], "nested":' + b"[" * DEEP + b"]" * (DEEP - 1) + b",]}")
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("JSON Parse error: Invalid value. at offset: ")


ERRORS = [
    # json_tensor.cc FillPredictRequestFromJson (the "Excepting" typo was fixed in TF Serving in 2020)
    (
        PREDICT,
        '{"instances": 1}',
        "JSON Value: {\n    \"instances\": 1\n} Expecting 'instances' to be an list/array",
    ),
    # json_tensor.cc ParseJson: rapidjson's GetParseError_En text and the byte offset
    (PREDICT, "nope", "JSON Parse error: Invalid value. at offset: 0"),
    (
        PREDICT,
        '{"instances": [1 2]}',
        "JSON Parse error: Missing a comma or ']' after an array element. at offset: 17",
    ),
    (
        PREDICT,
        '{"instances": [1] "x"}',
        "JSON Parse error: Missing a comma or '}' after an object member. at offset: 18",
    ),
    # SingleUnnamedTensorErrors: "document is empty"
    (PREDICT, "", "JSON Parse error: The document is empty"),
    # ClassifyRegressRequestTest.JsonErrors: "Only int64_t is supported"
    (
        "/v1/models/identity:regress",
        '{"examples": [{"names": [20, 18446744073709551603]}]}',
        "Feature: names has uint64_t element. Only int64_t is supported.",
    ),
    (
        "/v1/models/identity:classify",
        '{"examples": [{"names": [20, 18446744073709551603]}]}',
        "Feature: names has uint64_t element. Only int64_t is supported.",
    ),
    # ClassifyRegressRequestTest.JsonErrors: "list/array"
    (
        "/v1/models/identity:regress",
        '{"examples": {"names": ["foo", "bar"]}}',
        'JSON Value: {\n    "examples": {\n        "names": [\n            "foo",\n            "bar"\n        ]\n'
        "    }\n} Expecting 'examples' value to be an list/array",
    ),
]


@pytest.mark.parametrize(("path", "body", "message"), ERRORS)
def test_errors_as_tf_serving_words_them(http: httpx.Client, path: str, body: str, message: str) -> None:
    answer = _post(http, body, path)
    assert answer.status_code == 400
    assert answer.json() == {"error": message}


def test_regression_results_text(http: httpx.Client) -> None:
    """JsonFromRegressionResult (WriteDecimal): regress_x_to_y is x/1 + 0 on feature "x"."""
    body = {"signature_name": "regress_x_to_y", "examples": [{"x": 0.2}, {"x": 9000000.0}, {"x": 1.0}]}
    answer = _post(http, json.dumps(body), "/v1/models/identity:regress")
    assert answer.status_code == 200, answer.text
    assert answer.text == '{"results":[0.2,9e+06,1.0]}'


def test_text_after_the_document_is_ignored(http: httpx.Client) -> None:
    """json_tensor.cc ParseJson parses with kParseStopWhenDoneFlag: whatever follows the root is not read."""
    answer = _post(http, '{"instances": [2.5]} and more')
    assert answer.status_code == 200, answer.text
    assert answer.text == '{"predictions":[2.5]}'
