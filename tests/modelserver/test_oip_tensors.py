"""modelserver.protocols.oip.tensors: OIP datatypes and the JSON / raw (binary) tensor encodings, checked strictly."""

from __future__ import annotations

import base64
import struct
from typing import Any

import numpy as np
import pytest

from modelserver.errors import InvalidArgument
from modelserver.protocols.oip.tensors import (
    array_datatype,
    check_shape,
    datatype_of,
    from_json_data,
    from_raw,
    to_json_data,
    to_raw,
)


@pytest.mark.parametrize(
    ("tf_dtype", "datatype"),
    [
        (1, "FP32"),
        (2, "FP64"),
        (3, "INT32"),
        (9, "INT64"),
        (4, "UINT8"),
        (10, "BOOL"),
        (7, "BYTES"),
        (19, "FP16"),
        (8, "TF_COMPLEX64"),
    ],
)
def test_datatype_of_signature_dtypes(tf_dtype: int, datatype: str) -> None:
    assert datatype_of(tf_dtype) == datatype


@pytest.mark.parametrize(
    "array",
    [
        np.arange(6, dtype=np.float32).reshape(2, 3),
        np.array([-1, 2**40], np.int64),
        np.array([True, False]),
        np.array([1, 255], np.uint8),
        np.array([0.5, -2], np.float16),
        np.array([b"", b"\x00\xff", b"abc"], object),
    ],
)
def test_raw_round_trip(array: np.ndarray) -> None:
    datatype = array_datatype(array)
    back = from_raw("t", datatype, array.shape, to_raw(array, datatype))
    assert back.dtype == array.dtype and back.shape == array.shape
    assert back.tolist() == array.tolist()


def test_bytes_are_length_prefixed_little_endian() -> None:
    assert to_raw(np.array([b"ab", b""], object), "BYTES") == struct.pack("<I", 2) + b"ab" + struct.pack(
        "<I", 0
    )


@pytest.mark.parametrize(
    ("datatype", "shape", "data", "expected"),
    [
        ("FP32", (2, 2), [[1, 2], [3, 4.5]], [[1, 2], [3, 4.5]]),
        ("FP32", (2, 2), [1, 2, 3, 4], [[1, 2], [3, 4]]),
        ("INT64", (2,), [-(2**62), 7], [-(2**62), 7]),
        ("BOOL", (2,), [True, False], [True, False]),
        ("BYTES", (2,), ["héllo", ""], ["héllo".encode(), b""]),
        ("FP32", (0,), [], []),
    ],
)
def test_json_data_flat_or_nested(datatype: str, shape: tuple[int, ...], data: Any, expected: Any) -> None:
    assert from_json_data("t", datatype, shape, data).tolist() == expected


@pytest.mark.parametrize(
    ("datatype", "shape", "data", "message"),
    [
        ("FP32", (3,), [1, 2], "needs 3 elements"),
        ("INT32", (1,), [1.5], "must be JSON integers"),
        ("INT8", (1,), [300], "out of range"),
        ("UINT8", (1,), [-1], "out of range"),
        ("FP32", (1,), [True], "must be JSON numbers"),
        ("BOOL", (1,), [1], "true/false"),
        ("FP32", (1,), ["1"], "must be JSON numbers"),
        ("BYTES", (1,), [1], "must be JSON strings"),
        ("FP32", (2, 2), [[1, 2], [3]], "regular"),
        ("FP8", (1,), [1], "unsupported datatype"),
        ("FP32", (1,), [None], "must be JSON numbers"),
    ],
)
def test_json_data_errors(datatype: str, shape: tuple[int, ...], data: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        from_json_data("t", datatype, shape, data)


def test_base64_bytes() -> None:
    encoded = [base64.b64encode(b"\xff\x00").decode()]
    assert from_json_data("t", "BYTES", (1,), encoded, base64_elements=True).tolist() == [b"\xff\x00"]
    with pytest.raises(InvalidArgument, match="not valid base64"):
        from_json_data("t", "BYTES", (1,), ["not base64!"], base64_elements=True)


@pytest.mark.parametrize(
    ("datatype", "shape", "raw", "message"),
    [
        ("FP32", (2,), b"\x00" * 7, "needs 8 bytes"),
        ("BOOL", (1,), b"\x02", "0 or 1"),
        ("BYTES", (1,), struct.pack("<I", 9) + b"ab", "claims 9 bytes"),
        ("BYTES", (2,), struct.pack("<I", 4) + b"abcd", "ends after 1"),
        ("BYTES", (1,), struct.pack("<I", 0) + b"z", "1 bytes left"),
        # a declared count the data cannot hold is refused before anything is allocated
        ("BYTES", (1 << 40,), struct.pack("<I", 0), "declares 1099511627776 BYTES elements"),
    ],
)
def test_raw_errors(datatype: str, shape: tuple[int, ...], raw: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        from_raw("t", datatype, shape, raw)


@pytest.mark.parametrize("shape", [[-1], [1.5], "3", [True], None])
def test_bad_shapes(shape: Any) -> None:
    with pytest.raises(InvalidArgument):
        check_shape("t", shape)


def test_json_output_bytes_utf8_or_base64() -> None:
    assert to_json_data(np.array([b"ok"], object), "BYTES") == (["ok"], {})
    assert to_json_data(np.array([b"\xff"], object), "BYTES") == (["/w=="], {"content_type": "base64"})
    assert to_json_data(np.array([[1.5, 2]], np.float32), "FP32") == ([1.5, 2.0], {})


# ------------------------------------------- issue 25: BYTES counted before they are decoded

TINY = 1_500_000


def _no_decoding(monkeypatch: pytest.MonkeyPatch, module: Any) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded a refused input")

    monkeypatch.setattr(module, "from_raw", refuse)
    monkeypatch.setattr(module, "from_json_data", refuse)


def test_rest_bytes_inputs_are_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """1.5 M tiny BYTES elements, as JSON data or as length-prefixed binary: INVALID_ARGUMENT before any
    element object is made (the JSON from its estimated cost, the binary from its declared shape)."""
    import orjson

    from modelserver.protocols.oip import rest

    _no_decoding(monkeypatch, rest)
    data = orjson.dumps(
        {"inputs": [{"name": "t", "shape": [1, TINY], "datatype": "BYTES", "data": ["a"] * TINY}]}
    )
    with pytest.raises(InvalidArgument, match="--max_request_bytes"):
        rest.parse_infer_request(data, None, "m", "")
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "t",
                    "shape": [1, TINY],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": 5 * TINY},
                }
            ]
        }
    )
    binary = header + (struct.pack("<I", 1) + b"a") * TINY
    with pytest.raises(InvalidArgument, match=r"input t: .*a string element counts"):
        rest.parse_infer_request(binary, str(len(header)), "m", "")


def test_grpc_bytes_inputs_are_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelserver.protocols.oip import grpc_service
    from oip_protos import grpc_predict_v2_pb2 as pb

    _no_decoding(monkeypatch, grpc_service)
    message = pb.ModelInferRequest(model_name="m")
    tensor = message.inputs.add(name="t", datatype="BYTES", shape=[1, TINY])
    tensor.contents.bytes_contents.extend([b"a"] * TINY)
    with pytest.raises(InvalidArgument, match=r"input t: .*a string element counts"):
        grpc_service.infer_request(message)
