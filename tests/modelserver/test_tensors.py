"""modelserver.runtime.tensors: TensorProto <-> numpy without TensorFlow gives what TensorFlow's own conversion gives
(tf.make_ndarray for requests, every encoding a client may send; typed *_val fields for replies)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from modelserver.errors import InvalidArgument
from modelserver.runtime.tensors import make_ndarray, to_ndarray, to_tensor_proto
from tfs_protos.tensorflow.core.framework import tensor_pb2, types_pb2

ARRAYS: list[Any] = [
    np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    np.array([1e-30, -2.5, np.inf, np.nan], np.float64),
    np.array([[1, -2], [3, 4]], np.int32),
    np.array([0, 255], np.uint8),
    np.array([-128, 127], np.int8),
    np.array([-3, 4], np.int16),
    np.array([65535], np.uint16),
    np.array([2**40, -(2**40)], np.int64),
    np.array([2**32 - 1], np.uint32),
    np.array([2**64 - 1], np.uint64),
    np.array([True, False]),
    np.array([0.5, -1.25], np.float16),
    np.array([1 + 2j, -3.5j], np.complex64),
    np.array([[1 + 2j]], np.complex128),
    np.array([b"ab", b"", b"\xff\x00"], object),
    np.zeros((0, 3), np.float32),
    np.float32(3.5),
]


def _same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    if got.dtype == object:
        assert got.tolist() == want.tolist()
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{np.asarray(a).dtype}{np.asarray(a).shape}")
def test_requests_read_as_tensorflow_reads_them(array: Any) -> None:
    # tf.make_tensor_proto picks tensor_content for most numeric arrays and typed fields for the rest.
    for proto in (tf.make_tensor_proto(array), to_tensor_proto(np.asarray(array))):
        _same(make_ndarray(proto), tf.make_ndarray(proto))


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{np.asarray(a).dtype}{np.asarray(a).shape}")
def test_replies_use_the_typed_field_and_round_trip(array: Any) -> None:
    proto = to_tensor_proto(np.asarray(array))
    assert not proto.tensor_content  # TF Serving's AsProtoField: clients read float_val and friends
    _same(tf.make_ndarray(proto), np.asarray(array))


@pytest.mark.parametrize(
    ("fill", "shape", "want"),
    [
        ({"float_val": [1.5]}, [2, 2], [[1.5, 1.5], [1.5, 1.5]]),  # a short field repeats its last value
        ({"float_val": [1.0, 2.0]}, [3], [1.0, 2.0, 2.0]),
        ({}, [2], [0.0, 0.0]),  # an empty field is zeros
    ],
)
def test_short_typed_fields_follow_tensorflow(
    fill: dict[str, list[float]], shape: list[int], want: Any
) -> None:
    proto = tf.make_tensor_proto([0.0], dtype=tf.float32)
    proto.ClearField("tensor_content")
    proto.ClearField("float_val")
    proto.tensor_shape.ClearField("dim")
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    for name, values in fill.items():
        getattr(proto, name).extend(values)
    _same(make_ndarray(proto), tf.make_ndarray(proto))
    np.testing.assert_array_equal(make_ndarray(proto), np.asarray(want, np.float32))


@pytest.mark.parametrize(
    ("proto", "message"),
    [
        # refused by the request check before anything is allocated (modelserver.runtime.limits budget)
        (
            tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=b"\x00" * 7),
            "input x: tensor_content holds 7 bytes but shape [] of float needs 4",
        ),
        (
            tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1, 2, 3]),
            "input x: shape [] has 1 elements but float_val holds 3 values",
        ),
        (tensor_pb2.TensorProto(dtype=types_pb2.DT_RESOURCE), "input x: dtype resource cannot be sent"),
        # well-formed, but the value does not fit the dtype: the conversion's own error
        (tensor_pb2.TensorProto(dtype=types_pb2.DT_UINT8, int_val=[300]), "tensor parsing error: x: "),
    ],
    ids=["partial-content", "too-many-values", "resource", "overflow"],
)
def test_malformed_request_tensors_are_invalid_argument(proto: tensor_pb2.TensorProto, message: str) -> None:
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        to_ndarray(proto, "x")
