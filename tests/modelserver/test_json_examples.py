"""modelserver.protocols.tfs.json.examples: classify/regress JSON <-> tf.Example and results, as TF Serving does it."""

from __future__ import annotations

from typing import Any

import pytest
from tensorflow_serving.apis import classification_pb2, regression_pb2

from modelserver.errors import InvalidArgument
from modelserver.protocols.tfs.json.examples import ExamplesJson, classification_json, regression_json


def features(example: Any) -> dict[str, tuple[str | None, list[Any]]]:
    out: dict[str, tuple[str | None, list[Any]]] = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        out[name] = (kind, list(getattr(feature, kind).value) if kind else [])
    return out


EXAMPLES = [
    # TF Serving's documented examples
    (
        '{"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}',
        "classify_x_to_y",
        [{"x": ("float_list", [2.0])}],
    ),
    (
        '{"examples": [{"x": 1.0}, {"x": 2.0}]}',
        "",
        [{"x": ("float_list", [1.0])}, {"x": ("float_list", [2.0])}],
    ),
    # kinds: JSON doubles -> float_list, integers and bools -> int64_list, strings and b64 -> bytes_list
    (
        '{"examples": [{"f": [0.5, 1.5], "i": [1, 2], "b": true, "s": "café", '
        '"raw": {"b64": "/wA="}, "e": []}]}',
        "",
        [
            {
                "f": ("float_list", [0.5, 1.5]),
                "i": ("int64_list", [1, 2]),
                "b": ("int64_list", [1]),
                "s": ("bytes_list", ["café".encode()]),
                "raw": ("bytes_list", [b"\xff\x00"]),
                "e": (None, []),
            }
        ],
    ),
    ('{"examples": [{"x": [NaN, Infinity]}]}', "", [{"x": ("float_list", [float("nan"), float("inf")])}]),
]


@pytest.mark.parametrize(("body", "signature", "expected"), EXAMPLES)
def test_examples_become_tf_examples(body: str, signature: str, expected: list[dict[str, Any]]) -> None:
    parsed = ExamplesJson.from_body(body.encode("utf-8"))
    assert parsed.signature_name == signature
    assert parsed.input.WhichOneof("kind") == "example_list"
    got = [sorted(features(example).items()) for example in parsed.input.example_list.examples]
    assert repr(got) == repr([sorted(e.items()) for e in expected])  # repr: NaN equals itself this way


def test_context_makes_an_example_list_with_context() -> None:
    parsed = ExamplesJson.from_body(b'{"context": {"c": [1, 2]}, "examples": [{"x": 1.0}, {"x": 2.0}]}')
    assert parsed.input.WhichOneof("kind") == "example_list_with_context"
    with_context = parsed.input.example_list_with_context
    assert features(with_context.context) == {"c": ("int64_list", [1, 2])}
    assert [features(e) for e in with_context.examples] == [
        {"x": ("float_list", [1.0])},
        {"x": ("float_list", [2.0])},
    ]


ERRORS = [
    (
        '{"signature_name": "s"}',
        'JSON Value: {\n    "signature_name": "s"\n} When method is classify, key '
        "'examples' is expected and was not found",
    ),
    (
        '{"examples": {}}',
        "JSON Value: {\n    \"examples\": {}\n} Expecting 'examples' value to be an list/array",
    ),
    ('{"examples": []}', "JSON Value: {\n    \"examples\": []\n} 'examples' value is an empty array"),
    ('{"examples": [1]}', "Example must be JSON object but got JSON Number"),
    ('{"examples": [{"x": null}]}', "Feature: x has element with unexpected JSON type: Null"),
    ('{"examples": [{"x": [[1.0]]}]}', "Feature: x has element with unexpected JSON type: Array"),
    ('{"examples": [{"x": {"a": 1}}]}', "Feature: x has element with unexpected JSON type: Object"),
    # one feature cannot mix kinds; note a JSON 0 is an integer (TF Serving's rule)
    ('{"examples": [{"x": [0, 0.5]}]}', "Unexpected element type in feature: x expecting type: int64"),
    ('{"examples": [{"x": [0.5, "a"]}]}', "Unexpected element type in feature: x expecting type: float"),
    (
        '{"examples": [{"x": 18446744073709551615}]}',
        "Feature: x has uint64_t element. Only int64_t is supported.",
    ),
    ('{"examples": [{"x": {"b64": "_-"}}]}', "Unable to base64 decode"),
    ('{"context": 1, "examples": [{"x": 1}]}', "Example must be JSON object but got JSON Number"),
    (
        '{"signature_name": 1, "examples": [{"x": 1}]}',
        'JSON Value: {\n    "signature_name": 1,\n    "examples": [\n        {\n'
        '            "x": 1\n        }\n    ]\n} not formatted correctly. '
        "'signature_name' key must be a string value.",
    ),
    ("nope", "JSON Parse error: Invalid value. at offset: 0"),
]


@pytest.mark.parametrize(("body", "message"), ERRORS)
def test_bad_examples_get_tf_serving_messages(body: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ExamplesJson.from_body(body.encode("utf-8"))
    assert caught.value.message == message


def _classification(*rows: list[tuple[str, float]]) -> classification_pb2.ClassificationResult:
    result = classification_pb2.ClassificationResult()
    for row in rows:
        classes = result.classifications.add()
        for label, score in row:
            classes.classes.add(label=label, score=score)
    return result


def test_classification_results() -> None:
    assert classification_json(_classification([("", 3.0)])) == b'{"results":[[["",3.0]]]}'
    result = _classification([("cat", 0.1), ("dog", 0.9)], [("cat", 1 / 3), ("dog", 2 / 3)])
    body = classification_json(result)
    assert body == b'{"results":[[["cat",0.1],["dog",0.9]],[["cat",0.333333343],["dog",0.666666687]]]}'


def test_regression_results() -> None:
    result = regression_pb2.RegressionResult()
    for value in (3.0, 3.5, float("nan")):
        result.regressions.add(value=value)
    assert regression_json(result) == b'{"results":[3.0,3.5,NaN]}'


def test_empty_results_raise() -> None:
    with pytest.raises(InvalidArgument, match="Cannot convert empty ClassificationResults to JSON"):
        classification_json(classification_pb2.ClassificationResult())
    with pytest.raises(InvalidArgument, match="Cannot convert empty RegressionResults to JSON"):
        regression_json(regression_pb2.RegressionResult())


def test_too_many_examples_are_refused_before_any_example_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 25: 250,000 empty examples in 0.5 MiB built +164 MiB; the count is checked first."""
    from modelserver.protocols.tfs.json import examples

    def no_building(value: object) -> None:
        raise AssertionError("built an example of a refused request")

    monkeypatch.setattr(examples, "_example", no_building)
    body = b'{"examples": [' + b",".join([b"{}"] * 250_000) + b"]}"
    with pytest.raises(InvalidArgument, match=r"250000 examples .*--max_request_batch_size"):
        examples.ExamplesJson.from_body(body)
