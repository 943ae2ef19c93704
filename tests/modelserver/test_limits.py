"""modelserver.runtime.limits and tensors.check_request_tensor: a request tensor is refused from what it declares,
before anything is allocated (issue 17: a 44-byte Predict declaring [20000,28,28,1] cost gigabytes)."""

from __future__ import annotations

import pytest
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from modelserver.errors import InvalidArgument
from modelserver.runtime.limits import RequestBudget, RequestLimits
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
