"""JSON <-> tf.Example for the REST classify and regress APIs (TF Serving's ``util/json_tensor.cc``; JSON text from ``json_text``).

Request: ``{"signature_name"?: str, "context"?: {feature: value | [values]}, "examples": [{...}, ...]}``.
Each feature value is a number, a string, a bool or ``{"b64": ...}``; a JSON double becomes a float_list, a
JSON integer or bool an int64_list, a string or b64 object a bytes_list, and one feature may not mix kinds
(TF Serving's rule, so ``[0, 0.5]`` is an error: ``0`` is an integer). With a ``context`` the examples go
into an ``ExampleListWithContext``, otherwise into an ``ExampleList``.

Reply: ``{"results": [[[label, score], ...], ...]}`` for classify (one inner list per example; the label is
``""`` when the model has no ``classes`` output) and ``{"results": [value, ...]}`` for regress. TF Serving's
REST document writes ``"result"``; its code, and so this module, write ``"results"``.
"""

from __future__ import annotations

from typing import Any

from modelserver.errors import InvalidArgument
from modelserver.protocols.tfs.json.floats import jsonable_scalar_list
from modelserver.protocols.tfs.json.text import (
    decode_b64,
    dumps,
    is_b64_object,
    json_type,
    parse_json_object,
    signature_name_of,
    value_to_string,
)
from modelserver.runtime.limits import DEFAULT_LIMITS, RequestLimits
from tfs_protos.tensorflow.core.example import example_pb2, feature_pb2
from tfs_protos.tensorflow_serving.apis import classification_pb2, input_pb2, regression_pb2

__all__ = ["ExamplesJson", "classification_json", "regression_json"]

_INT64_MAX = 2**63 - 1
_EXAMPLES_KEYS = frozenset({"signature_name", "context", "examples"})  # all TF Serving reads from the body
_UINT64_MAX = 2**64 - 1
_KIND_NAMES = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64", None: "UNKNOWN"}


def _kind_of(name: str, value: Any) -> tuple[str, Any]:
    """One JSON feature element -> (feature kind, value), or TF Serving's error for it."""
    if isinstance(value, bool):
        return "int64_list", int(value)
    if isinstance(value, str):
        return "bytes_list", value.encode("utf-8", "surrogatepass")
    if isinstance(value, float):
        return "float_list", value  # rounded to float32 by the proto (beyond its range: +-inf), as GetFloat
    if isinstance(value, int):
        if -_INT64_MAX - 1 <= value <= _INT64_MAX:
            return "int64_list", value
        if _INT64_MAX < value <= _UINT64_MAX:
            raise InvalidArgument(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
        # Beyond both integer ranges rapidjson holds a double: a float feature.
        try:
            return "float_list", float(value)
        except OverflowError:
            raise InvalidArgument("JSON Parse error: Number too big to be stored in double.") from None
    if is_b64_object(value):
        return "bytes_list", decode_b64(value)
    raise InvalidArgument(f"Feature: {name} has element with unexpected JSON type: {json_type(value)}")


def _feature(name: str, content: Any) -> feature_pb2.Feature:
    values = content if isinstance(content, list) else [content]
    feature = feature_pb2.Feature()
    if values and all(type(v) is float for v in values):  # the common dense case, without a per-value walk
        feature.float_list.value.extend(values)
        return feature
    kind: str | None = None
    converted: list[Any] = []
    for value in values:
        value_kind, item = _kind_of(name, value)
        if kind is not None and value_kind != kind:
            raise InvalidArgument(
                f"Unexpected element type in feature: {name} expecting type: {_KIND_NAMES[kind]}"
            )
        kind = value_kind
        converted.append(item)
    if kind is not None:
        getattr(feature, kind).value.extend(converted)
    return feature


def _example(value: Any) -> example_pb2.Example:
    if not isinstance(value, dict):
        raise InvalidArgument(f"Example must be JSON object but got JSON {json_type(value)}")
    example = example_pb2.Example()
    features = example.features.feature
    for name, content in value.items():
        features[name].CopyFrom(_feature(name, content))
    return example


class ExamplesJson:
    """A parsed classify/regress body: the signature name and the ``Input`` proto it describes."""

    def __init__(self, signature_name: str, input: input_pb2.Input) -> None:
        self.signature_name = signature_name
        self.input = input

    @classmethod
    def from_body(cls, body: bytes, limits: RequestLimits = DEFAULT_LIMITS) -> ExamplesJson:
        """``limits``: the number of examples is checked before any Example proto is built."""
        doc = parse_json_object(body, _EXAMPLES_KEYS)
        signature_name = signature_name_of(doc)
        request_input = input_pb2.Input()
        has_context = "context" in doc
        if has_context:
            request_input.example_list_with_context.context.CopyFrom(_example(doc["context"]))
        if "examples" not in doc:
            raise InvalidArgument(
                f"JSON Value: {value_to_string(doc)} When method is classify, key 'examples' is expected and "
                "was not found"
            )
        examples = doc["examples"]
        if not isinstance(examples, list):
            raise InvalidArgument(
                f"JSON Value: {value_to_string(doc)} Expecting 'examples' value to be an list/array"
            )
        if not examples:
            raise InvalidArgument(f"JSON Value: {value_to_string(doc)} 'examples' value is an empty array")
        limits.check_examples(len(examples), 0)  # the bytes are checked once serialized (serialized_examples)
        target = (
            request_input.example_list_with_context.examples
            if has_context
            else request_input.example_list.examples
        )
        target.extend(_example(value) for value in examples)
        return cls(signature_name, request_input)


def classification_json(result: classification_pb2.ClassificationResult) -> bytes:
    """``{"results": [[[label, score], ...], ...]}`` (TF Serving's MakeJsonFromClassificationResult)."""
    if not result.classifications:
        raise InvalidArgument("Cannot convert empty ClassificationResults to JSON")
    scores = jsonable_scalar_list([c.score for cls in result.classifications for c in cls.classes])
    position = iter(scores)
    rows = [[[c.label, next(position)] for c in cls.classes] for cls in result.classifications]
    return dumps({"results": rows})


def regression_json(result: regression_pb2.RegressionResult) -> bytes:
    """``{"results": [value, ...]}`` (TF Serving's MakeJsonFromRegressionResult)."""
    if not result.regressions:
        raise InvalidArgument("Cannot convert empty RegressionResults to JSON")
    return dumps({"results": jsonable_scalar_list([r.value for r in result.regressions])})
