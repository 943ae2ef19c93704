"""The modelserver's one dtype table: every TensorFlow data type it can carry, and what each protocol calls it.

One row per dtype. Every dtype mapping of the modelserver is derived from ``DTYPES``: the numpy dtype a
TF_Tensor is copied to and from (``runtime.session``), the typed ``TensorProto`` field and the request bounds
(``runtime.tensors``), the JSON conversions of TF Serving's REST API (``protocols.tfs.json.tensor``) and the
Open Inference Protocol's datatypes and gRPC contents (``protocols.oip``). Adding a dtype is adding a row.

The ``enum`` is TensorFlow's ``DataType`` (``types.proto``), which is also the C API's ``TF_DataType`` code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tfs_protos.tensorflow.core.framework import types_pb2

__all__ = ["DTYPES", "DType", "by_enum", "by_oip"]


@dataclass(frozen=True)
class DType:
    enum: int  # types.proto DataType = TF_DataType
    numpy: np.dtype[Any] | None  # fed to / read from TensorFlow (object: strings); None: numpy has none
    value_field: str  # TensorProto's typed field (tensor.cc AsProtoField / FromProtoField)
    oip: str | None  # the Open Inference Protocol datatype
    oip_contents: str | None  # its gRPC InferTensorContents field (None: raw_input_contents only)
    json: str | None  # the kind TF Serving's REST API converts from JSON: "float", "int", "bool", "string"
    field_numpy: np.dtype[Any] | None = None  # how the typed field's values read before the view as ``numpy``
    per_element: int = 1  # values per element in the typed field (2 for complex: real, imaginary)
    itemsize: int | None = None  # bytes per element in a request's tensor_content (default: numpy's)

    @property
    def request_itemsize(self) -> int:
        """Bytes per element of a request's ``tensor_content`` (0 for strings, which cannot use it)."""
        if self.itemsize is not None:
            return self.itemsize
        assert self.numpy is not None
        return 0 if self.enum == types_pb2.DT_STRING else self.numpy.itemsize


_T = types_pb2
_N = np.dtype

# Ordered as the Open Inference Protocol lists its datatypes (the order error messages name them in).
# fmt: off
DTYPES: tuple[DType, ...] = (
    #     TF enum            numpy            TensorProto field  OIP       OIP contents       JSON
    DType(_T.DT_BOOL,       _N("bool"),       "bool_val",        "BOOL",   "bool_contents",   "bool"),
    DType(_T.DT_INT8,       _N("int8"),       "int_val",         "INT8",   "int_contents",    "int"),
    DType(_T.DT_INT16,      _N("int16"),      "int_val",         "INT16",  "int_contents",    "int"),
    DType(_T.DT_INT32,      _N("int32"),      "int_val",         "INT32",  "int_contents",    "int"),
    DType(_T.DT_INT64,      _N("int64"),      "int64_val",       "INT64",  "int64_contents",  "int"),
    DType(_T.DT_UINT8,      _N("uint8"),      "int_val",         "UINT8",  "uint_contents",   "int"),
    DType(_T.DT_UINT16,     _N("uint16"),     "int_val",         "UINT16", "uint_contents",   "int"),
    DType(_T.DT_UINT32,     _N("uint32"),     "uint32_val",      "UINT32", "uint_contents",   "int"),
    DType(_T.DT_UINT64,     _N("uint64"),     "uint64_val",      "UINT64", "uint64_contents", "int"),
    # half_val holds the float16 bit patterns as ints; OIP's FP16 travels raw only
    DType(_T.DT_HALF,       _N("float16"),    "half_val",        "FP16",   None,              "float",
          field_numpy=_N("uint16")),
    DType(_T.DT_FLOAT,      _N("float32"),    "float_val",       "FP32",   "fp32_contents",   "float"),
    DType(_T.DT_DOUBLE,     _N("float64"),    "double_val",      "FP64",   "fp64_contents",   "float"),
    DType(_T.DT_STRING,     _N(object),       "string_val",      "BYTES",  "bytes_contents",  "string"),
    DType(_T.DT_COMPLEX64,  _N("complex64"),  "scomplex_val",    None,     None,              None,
          field_numpy=_N("float32"), per_element=2),
    DType(_T.DT_COMPLEX128, _N("complex128"), "dcomplex_val",    None,     None,              None,
          field_numpy=_N("float64"), per_element=2),
    # numpy has no bfloat16: a request may declare it (refused when parsed), nothing converts it
    DType(_T.DT_BFLOAT16,   None,             "half_val",        None,     None,              None, itemsize=2),
)
# fmt: on

_BY_ENUM: dict[int, DType] = {row.enum: row for row in DTYPES}
_BY_OIP: dict[str, DType] = {row.oip: row for row in DTYPES if row.oip is not None}


def by_enum(enum: int) -> DType | None:
    """The row of a TensorFlow DataType, or None for one the modelserver cannot carry."""
    return _BY_ENUM.get(enum)


def by_oip(datatype: str) -> DType | None:
    """The row of an Open Inference Protocol datatype, or None."""
    return _BY_OIP.get(datatype)
