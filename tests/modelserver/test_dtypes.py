"""modelserver.runtime.dtypes: the one dtype table. Every mapping derived from it equals the literal table it
replaced, and a new row reaches every one of them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np

from modelserver.protocols.oip import grpc_service as oip_grpc
from modelserver.protocols.oip import tensors as oip_tensors
from modelserver.protocols.tfs.json import tensor as json_tensor
from modelserver.runtime import session, tensors
from tfs_protos.tensorflow.core.framework import types_pb2 as t


def test_numpy_dtypes_of_the_session() -> None:
    assert {
        1: np.dtype(np.float32),
        2: np.dtype(np.float64),
        3: np.dtype(np.int32),
        4: np.dtype(np.uint8),
        5: np.dtype(np.int16),
        6: np.dtype(np.int8),
        8: np.dtype(np.complex64),
        9: np.dtype(np.int64),
        10: np.dtype(np.bool_),
        17: np.dtype(np.uint16),
        18: np.dtype(np.complex128),
        19: np.dtype(np.float16),
        22: np.dtype(np.uint32),
        23: np.dtype(np.uint64),
    } == session.NUMPY_DTYPES
    assert session.DT_STRING == 7


def test_tensor_proto_fields_and_request_dtypes() -> None:
    assert tensors._VAL_FIELD == {
        t.DT_FLOAT: "float_val",
        t.DT_DOUBLE: "double_val",
        t.DT_INT32: "int_val",
        t.DT_INT16: "int_val",
        t.DT_INT8: "int_val",
        t.DT_UINT8: "int_val",
        t.DT_UINT16: "int_val",
        t.DT_INT64: "int64_val",
        t.DT_UINT32: "uint32_val",
        t.DT_UINT64: "uint64_val",
        t.DT_BOOL: "bool_val",
        t.DT_STRING: "string_val",
        t.DT_HALF: "half_val",
        t.DT_COMPLEX64: "scomplex_val",
        t.DT_COMPLEX128: "dcomplex_val",
    }
    assert {
        t.DT_HALF: np.dtype(np.uint16),
        t.DT_COMPLEX64: np.dtype(np.float32),
        t.DT_COMPLEX128: np.dtype(np.float64),
    } == tensors._FIELD_DTYPE
    assert tensors._REQUEST_DTYPES == {
        t.DT_FLOAT: (4, "float_val", 1),
        t.DT_DOUBLE: (8, "double_val", 1),
        t.DT_HALF: (2, "half_val", 1),
        t.DT_BFLOAT16: (2, "half_val", 1),
        t.DT_INT8: (1, "int_val", 1),
        t.DT_INT16: (2, "int_val", 1),
        t.DT_INT32: (4, "int_val", 1),
        t.DT_UINT8: (1, "int_val", 1),
        t.DT_UINT16: (2, "int_val", 1),
        t.DT_INT64: (8, "int64_val", 1),
        t.DT_UINT32: (4, "uint32_val", 1),
        t.DT_UINT64: (8, "uint64_val", 1),
        t.DT_BOOL: (1, "bool_val", 1),
        t.DT_COMPLEX64: (8, "scomplex_val", 2),
        t.DT_COMPLEX128: (16, "dcomplex_val", 2),
        t.DT_STRING: (0, "string_val", 1),
    }


def test_open_inference_protocol_datatypes() -> None:
    assert oip_tensors._FROM_TF == {
        10: "BOOL",
        6: "INT8",
        5: "INT16",
        3: "INT32",
        9: "INT64",
        4: "UINT8",
        17: "UINT16",
        22: "UINT32",
        23: "UINT64",
        19: "FP16",
        1: "FP32",
        2: "FP64",
        7: "BYTES",
    }
    expected = {
        "BOOL": np.dtype(np.bool_),
        "INT8": np.dtype(np.int8),
        "INT16": np.dtype(np.int16),
        "INT32": np.dtype(np.int32),
        "INT64": np.dtype(np.int64),
        "UINT8": np.dtype(np.uint8),
        "UINT16": np.dtype(np.uint16),
        "UINT32": np.dtype(np.uint32),
        "UINT64": np.dtype(np.uint64),
        "FP16": np.dtype(np.float16),
        "FP32": np.dtype(np.float32),
        "FP64": np.dtype(np.float64),
        "BYTES": np.dtype(object),
    }
    assert list(oip_tensors.DATATYPES.items()) == list(expected.items())  # the order error messages use
    assert oip_grpc._CONTENTS == {
        "BOOL": "bool_contents",
        "INT8": "int_contents",
        "INT16": "int_contents",
        "INT32": "int_contents",
        "INT64": "int64_contents",
        "UINT8": "uint_contents",
        "UINT16": "uint_contents",
        "UINT32": "uint_contents",
        "UINT64": "uint64_contents",
        "FP32": "fp32_contents",
        "FP64": "fp64_contents",
        "BYTES": "bytes_contents",
    }


def _int(name: str, np_type: type[np.generic]) -> json_tensor.JsonDType:
    info = np.iinfo(np_type)  # type: ignore[type-var]
    return json_tensor.JsonDType(name, np.dtype(np_type), "int", int(info.min), int(info.max))


def test_json_dtypes_of_tf_serving_rest() -> None:
    J = json_tensor.JsonDType
    assert {
        t.DT_FLOAT: J("float", np.dtype(np.float32), "float"),  # any number converts (rapidjson's GetFloat)
        t.DT_DOUBLE: J("double", np.dtype(np.float64), "float"),
        t.DT_HALF: J("half", np.dtype(np.float16), "float"),
        t.DT_INT8: _int("int8", np.int8),
        t.DT_INT16: _int("int16", np.int16),
        t.DT_INT32: _int("int32", np.int32),
        t.DT_INT64: _int("int64", np.int64),
        t.DT_UINT8: _int("uint8", np.uint8),
        t.DT_UINT16: _int("uint16", np.uint16),
        t.DT_UINT32: _int("uint32", np.uint32),
        t.DT_UINT64: _int("uint64", np.uint64),
        t.DT_BOOL: J("bool", np.dtype(np.bool_), "bool"),
        t.DT_STRING: J("string", np.dtype(object), "string"),
    } == json_tensor._DTYPES


def test_a_new_row_reaches_every_mapping() -> None:
    """A row added to the table (before the modules that derive from it are imported) is in all of them."""
    script = textwrap.dedent(
        """
        import numpy as np
        from modelserver.runtime import dtypes
        from tfs_protos.tensorflow.core.framework import types_pb2 as t
        new = dtypes.DType(t.DT_QINT8, np.dtype("int8"), "int_val", "QINT8", "int_contents", "int")
        dtypes.DTYPES = (*dtypes.DTYPES, new)
        from modelserver.protocols.oip import grpc_service, tensors as oip
        from modelserver.protocols.tfs.json import tensor as json_tensor
        from modelserver.runtime import session, tensors
        assert session.NUMPY_DTYPES[t.DT_QINT8] == np.dtype("int8")
        assert tensors._VAL_FIELD[t.DT_QINT8] == "int_val"
        assert tensors._REQUEST_DTYPES[t.DT_QINT8] == (1, "int_val", 1)
        assert oip._FROM_TF[t.DT_QINT8] == "QINT8" and oip.DATATYPES["QINT8"] == np.dtype("int8")
        assert grpc_service._CONTENTS["QINT8"] == "int_contents"
        assert json_tensor._DTYPES[t.DT_QINT8].kind == "int"
        print("reached")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "reached", result.stderr
