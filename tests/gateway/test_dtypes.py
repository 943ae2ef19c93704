"""gateway.upstream.tensors' dtype table: the mappings derived from it equal the literal tables it replaced
(gateway.upstream.oip, gateway.upstream.contract, to_list / value_field), and a new row reaches all of them."""

from __future__ import annotations

import pytest

from gateway.upstream import oip, tensors
from gateway.upstream.tensors import DTYPES, DType, by_enum, by_oip, dtype_name
from oip_protos import grpc_predict_v2_pb2 as pb
from tfs_protos.tensorflow.core.framework import tensor_pb2
from tfs_protos.tensorflow.core.framework import types_pb2 as t

# The literal tables before the dtype table: gateway/upstream/oip.py (datatype, typecode, typed field,
# contents) and gateway/upstream/contract.py (the contract's names).
OIP_BEFORE = {
    t.DT_FLOAT: ("FP32", "f", "float_val", "fp32_contents"),
    t.DT_DOUBLE: ("FP64", "d", "double_val", "fp64_contents"),
    t.DT_INT32: ("INT32", "i", "int_val", "int_contents"),
    t.DT_INT64: ("INT64", "q", "int64_val", "int64_contents"),
    t.DT_INT16: ("INT16", "h", "int_val", "int_contents"),
    t.DT_INT8: ("INT8", "b", "int_val", "int_contents"),
    t.DT_UINT8: ("UINT8", "B", "int_val", "uint_contents"),
    t.DT_BOOL: ("BOOL", "B", "bool_val", "bool_contents"),
    t.DT_STRING: ("BYTES", None, "string_val", "bytes_contents"),
}
NAMES_BEFORE = {t.DT_FLOAT: "float32", t.DT_DOUBLE: "float64", t.DT_STRING: "string", t.DT_INT32: "int32"}


@pytest.mark.parametrize("enum", sorted(OIP_BEFORE))
def test_rows_match_the_tables_they_replaced(enum: int) -> None:
    row = by_enum(enum)
    assert row is not None and by_oip(row.oip) is row
    assert (row.oip, row.typecode, row.value_field, row.oip_contents) == OIP_BEFORE[enum]
    assert tensors.value_field(enum) == row.value_field


@pytest.mark.parametrize(
    ("enum", "name"),
    [
        *NAMES_BEFORE.items(),
        (t.DT_BOOL, "bool"),
        (t.DT_HALF, "half"),
        (t.DT_UINT16, "uint16"),
        (999, "invalid"),
    ],
)
def test_contract_dtype_names(enum: int, name: str) -> None:
    assert dtype_name(enum) == name


def test_every_row_round_trips_through_oip() -> None:
    for row in DTYPES:
        if row.typecode is None:
            tensor = tensor_pb2.TensorProto(dtype=row.enum, string_val=[b"a", b"bc"])
        else:
            tensor = tensor_pb2.TensorProto(dtype=row.enum)
            getattr(tensor, row.value_field).extend([1, 0])
        tensor.tensor_shape.dim.add(size=2)
        request = oip.infer_request(
            "m", {"x": tensor}, version=None, label=None, signature="", output_filter=[]
        )
        assert request.inputs[0].datatype == row.oip
        output = pb.ModelInferResponse.InferOutputTensor(name="x", datatype=row.oip, shape=[2])
        reply = pb.ModelInferResponse(outputs=[output], raw_output_contents=[request.raw_input_contents[0]])
        back = oip.predict_response(reply, "m", "serving_default").outputs["x"]
        assert back.dtype == row.enum and tensors.to_list(back) == tensors.to_list(tensor)


def test_a_new_row_reaches_every_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    new = DType(t.DT_UINT16, "uint16", "int_val", "H", "UINT16", "uint_contents")
    monkeypatch.setattr(tensors, "_BY_ENUM", {**tensors._BY_ENUM, new.enum: new})
    monkeypatch.setattr(tensors, "_BY_OIP", {**tensors._BY_OIP, new.oip: new})
    tensor = tensor_pb2.TensorProto(dtype=t.DT_UINT16, int_val=[7, 65535])
    tensor.tensor_shape.dim.add(size=2)
    assert tensors.value_field(t.DT_UINT16) == "int_val" and tensors.to_list(tensor) == [7, 65535]
    assert dtype_name(t.DT_UINT16) == "uint16"
    request = oip.infer_request("m", {"x": tensor}, version=None, label=None, signature="", output_filter=[])
    assert request.inputs[0].datatype == "UINT16"
    meta = pb.ModelMetadataResponse(
        inputs=[pb.ModelMetadataResponse.TensorMetadata(name="x", datatype="UINT16")]
    )
    assert oip._tensor_info(meta.inputs[0]).dtype == t.DT_UINT16
