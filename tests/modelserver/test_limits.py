"""modelserver.runtime.limits and tensors.check_request_tensor: a request tensor is refused from what it declares,
before anything is allocated (issue 17: a 44-byte Predict declaring [20000,28,28,1] cost gigabytes); strings by
their count, JSON bodies from their quotes and commas, tf.Example inputs by count and bytes with the context
once per example (issue 25)."""

from __future__ import annotations

import pytest
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from modelserver.errors import InvalidArgument
from modelserver.runtime.limits import STRING_ELEMENT_BYTES, RequestBudget, RequestLimits
from modelserver.runtime.tensors import to_ndarray

IMAGE = [1, 28, 28, 1]


def _tensor(
    dims: list[int], dtype: int = types_pb2.DT_FLOAT, unknown: bool = False, **fields: object
) -> tensor_pb2.TensorProto:
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims], unknown_rank=unknown
    )
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, **fields)  # type: ignore[arg-type]


REFUSED = [
    ("declared shape, no values", _tensor([20000, 28, 28, 1]), "holds 0 values"),
    ("declared shape, one value", _tensor([20000, 28, 28, 1], float_val=[0.5]), "holds 1 values"),
    ("too few values", _tensor(IMAGE, float_val=[0.1] * 10), "exactly one value per element"),
    ("too many values", _tensor([2], float_val=[0.1] * 3), "exactly one value per element"),
    ("2^40 rows", _tensor([2**40, 28, 28, 1]), "--max_request_batch_size"),
    ("huge element count", _tensor([60000, 60000]), "--max_request_elements"),
    ("-1 with tensor_content", _tensor([-1, 28, 28, 1], tensor_content=b"\0" * 3136), "dimension -1"),
    ("content one byte short", _tensor(IMAGE, tensor_content=b"\0" * 3135), "needs 3136"),
    ("unknown rank", _tensor([], unknown=True), "unknown_rank"),
    ("DT_RESOURCE", _tensor(IMAGE, types_pb2.DT_RESOURCE), "resource cannot be sent"),
    ("DT_VARIANT", _tensor(IMAGE, types_pb2.DT_VARIANT), "variant cannot be sent"),
    ("DT_INVALID", _tensor(IMAGE, types_pb2.DT_INVALID), "cannot be sent"),
    ("rank 40", _tensor([1] * 40, float_val=[0.5]), "rank 40"),
    ("string tensor_content", _tensor([1], types_pb2.DT_STRING, tensor_content=b"abcd"), "string_val"),
    ("strings short", _tensor([3], types_pb2.DT_STRING, string_val=[b"a"]), "exactly one value"),
]


@pytest.mark.parametrize(("name", "proto", "message"), REFUSED, ids=[r[0] for r in REFUSED])
def test_bad_request_tensors_are_invalid_argument(
    name: str, proto: tensor_pb2.TensorProto, message: str
) -> None:
    with pytest.raises(InvalidArgument, match="input image") as caught:
        to_ndarray(proto, "image")
    assert message in caught.value.message


ACCEPTED = [
    ("typed values", _tensor([2, 2], float_val=[1, 2, 3, 4]), (2, 2)),
    ("tensor_content", _tensor([2], tensor_content=b"\0" * 8), (2,)),
    ("empty batch", _tensor([0, 28, 28, 1]), (0, 28, 28, 1)),
    ("scalar", _tensor([], float_val=[1.5]), ()),
    ("strings", _tensor([2], types_pb2.DT_STRING, string_val=[b"a", b"b"]), (2,)),
    ("int64", _tensor([1], types_pb2.DT_INT64, int64_val=[7]), (1,)),
]


@pytest.mark.parametrize(("name", "proto", "shape"), ACCEPTED, ids=[r[0] for r in ACCEPTED])
def test_well_formed_tensors_decode(name: str, proto: tensor_pb2.TensorProto, shape: tuple[int, ...]) -> None:
    assert to_ndarray(proto, "x").shape == shape


def test_the_budget_is_per_request_not_per_tensor() -> None:
    budget = RequestBudget(RequestLimits(max_elements=10, max_bytes=0, max_batch_size=0))
    to_ndarray(_tensor([6], float_val=[0.0] * 6), "a", budget)
    with pytest.raises(InvalidArgument, match="input b: 12 elements is over this server's limit of 10"):
        to_ndarray(_tensor([6], float_val=[0.0] * 6), "b", budget)


def test_byte_and_batch_bounds_name_their_flags() -> None:
    limits = RequestLimits(max_elements=0, max_bytes=100, max_batch_size=3)
    with pytest.raises(InvalidArgument, match="--max_request_bytes"):
        limits.check_tensor("x", [1, 30], 4)
    with pytest.raises(InvalidArgument, match="--max_request_batch_size"):
        limits.check_tensor("x", [4, 1], 1)
    assert RequestLimits(0, 0, 0).check_tensor("x", [10**9, 10**9], 8) == 10**18  # 0 = no bound


# ------------------------------------------ issue 25: strings and examples counted before allocation

TINY_STRINGS = 1_500_000


def test_tiny_strings_are_refused_by_their_count_before_they_are_decoded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1.5 M one-byte strings in [1, N]: under the batch and element bounds, but each costs the server
    STRING_ELEMENT_BYTES, so the request is over --max_request_bytes before any string object exists."""
    import modelserver.runtime.tensors as tensors

    def no_decoding(proto: object) -> None:
        raise AssertionError("decoded a refused tensor")

    monkeypatch.setattr(tensors, "make_ndarray", no_decoding)
    proto = _tensor([1, TINY_STRINGS], types_pb2.DT_STRING, string_val=[b"a"] * TINY_STRINGS)
    with pytest.raises(InvalidArgument, match=r"--max_request_bytes; a string element counts 256"):
        to_ndarray(proto, "text")
    assert RequestLimits().max_bytes < TINY_STRINGS * STRING_ELEMENT_BYTES


def test_a_json_body_is_costed_from_its_strings_and_values_before_parsing() -> None:
    limits = RequestLimits()
    strings = b'{"instances": [' + b",".join([b'"a"'] * TINY_STRINGS) + b"]}"
    with pytest.raises(InvalidArgument, match=r"about 1500001 strings .* send fewer strings"):
        limits.check_json_body(strings)
    b64 = b'{"instances": [' + b",".join([b'{"b64": "YQ=="}'] * 600_000) + b"]}"
    with pytest.raises(InvalidArgument, match="--max_request_bytes"):
        limits.check_json_body(b64)
    floats = b'{"instances": [' + b",".join([b"0.123456"] * 1_000_000) + b"]}"
    limits.check_json_body(floats)  # a million numbers: 32 MB of Python floats, within the bound
    limits.check_json_body(strings, end=20)  # only the JSON part of an OIP binary body counts
    RequestLimits(max_bytes=0).check_json_body(strings)  # 0 = no bound


@pytest.mark.parametrize(
    ("count", "example_bytes", "context_bytes", "match"),
    [
        (250_000, 500_000, 0, r"250000 examples is over .*\(--max_request_batch_size\)"),
        (200, 200, 1 << 20, r"1048576-byte context .*\(--max_request_bytes\)"),
        (60_000, 8 << 20, 4096, "--max_request_bytes"),
    ],
)
def test_example_inputs_are_bounded_by_count_and_bytes_with_the_context_per_example(
    count: int, example_bytes: int, context_bytes: int, match: str
) -> None:
    with pytest.raises(InvalidArgument, match=match):
        RequestLimits().check_examples(count, example_bytes, context_bytes)


def test_example_inputs_within_bounds_pass() -> None:
    RequestLimits().check_examples(1000, 200_000, 1000)


def test_serialized_examples_refuses_before_serializing_a_context_per_example(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tensorflow_serving.apis import input_pb2

    from modelserver.runtime.classify_regress import serialized_examples

    request_input = input_pb2.Input()
    with_context = request_input.example_list_with_context
    with_context.context.features.feature["c"].bytes_list.value.append(b"x" * (1 << 20))
    for _ in range(300):
        with_context.examples.add()
    with pytest.raises(InvalidArgument, match="merged into every example"):
        serialized_examples(request_input)
    empty = input_pb2.Input()
    for _ in range(70_000):
        empty.example_list.examples.add()
    with pytest.raises(InvalidArgument, match="70000 examples"):
        serialized_examples(empty)
