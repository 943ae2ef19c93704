"""TF Serving's messages <-> the Open Inference Protocol's (KServe v2 gRPC), so that ``ModelClient`` can call
a model server over ``inference.GRPCInferenceService`` - Triton, KServe runtimes, or our own modelserver -
while every route keeps working on TF Serving's ``PredictResponse`` / ``GetModelMetadataResponse`` /
``GetModelStatusResponse``. No NumPy, no TensorFlow: the stdlib ``struct``/``array`` pack the bytes.

Mapping (docs/oip.md):
- Predict -> ModelInfer. The version is the OIP version string (a number, or a TF Serving label, which our
  modelserver understands); a signature other than ``serving_default`` travels as the request parameter
  ``signature_name``. Inputs go in ``raw_input_contents`` (little-endian; strings length-prefixed), as
  tritonclient sends them; outputs are read from ``raw_output_contents`` or the typed ``contents``.
- GetModelMetadata -> ModelMetadata, as one ``serving_default`` signature (OIP models have one signature), so
  the gateway derives the model's contract from its inputs (``gateway.upstream.contract.derive_contract``).
- GetModelStatus -> ModelMetadata's versions, each AVAILABLE when ModelReady says so.

The calls (``infer``, ``metadata``, ``status``) make one attempt on one server; ``ModelClient`` chooses the
server, retries and fails over, as for TF Serving's API. A request the gateway cannot express over OIP is
``UpstreamError(INVALID_ARGUMENT)`` before any call, a reply it cannot read ``UpstreamError(UNIMPLEMENTED)``.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Mapping, Sequence
from typing import Any

import grpc

from gateway.errors import UpstreamError
from gateway.upstream import DEFAULT_SIGNATURE
from gateway.upstream.channels import Server
from gateway.upstream.tensors import by_enum, by_oip, shape_of, shape_proto
from oip_protos import grpc_predict_v2_pb2 as pb
from tfs_protos.tensorflow.core.framework import tensor_pb2, types_pb2
from tfs_protos.tensorflow.core.protobuf import meta_graph_pb2
from tfs_protos.tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
)

__all__ = [
    "infer",
    "infer_request",
    "metadata",
    "metadata_response",
    "predict_response",
    "status",
    "version_string",
]

PREDICT_METHOD = "tensorflow/serving/predict"
_LENGTH = struct.Struct("<I")
_LITTLE = sys.byteorder == "little"


def _packed(values: Sequence[Any], code: str) -> bytes:
    packed: array[Any] = array(code, values)
    if not _LITTLE:
        packed.byteswap()
    return packed.tobytes()


def _raw(tensor: tensor_pb2.TensorProto) -> tuple[str, bytes]:
    """A TensorProto as (OIP datatype, raw little-endian bytes)."""
    row = by_enum(tensor.dtype)
    if row is None:
        message = f"{types_pb2.DataType.Name(tensor.dtype)} tensors cannot be sent over OIP"
        raise UpstreamError(grpc.StatusCode.INVALID_ARGUMENT, message)
    datatype, code = row.oip, row.typecode
    if code is None:
        return datatype, b"".join(_LENGTH.pack(len(v)) + v for v in tensor.string_val)
    if tensor.tensor_content:
        return datatype, tensor.tensor_content
    values = list(getattr(tensor, row.value_field))
    count = 1
    for d in shape_of(tensor):
        count *= d
    if len(values) == 1 and count > 1:  # TF's compact form: one value repeated
        values *= count
    return datatype, _packed(values, code)


def version_string(version: int | None, label: str | None) -> str:
    """The OIP version of a version number, a TF Serving label (our modelserver's extension), or latest."""
    return str(version) if version is not None else label or ""


def infer_request(
    model: str,
    inputs: Mapping[str, tensor_pb2.TensorProto],
    *,
    version: int | None,
    label: str | None,
    signature: str,
    output_filter: Sequence[str],
) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model, model_version=version_string(version, label))
    if signature and signature != DEFAULT_SIGNATURE:
        request.parameters["signature_name"].string_param = signature
    for name, tensor in inputs.items():
        datatype, raw = _raw(tensor)
        request.inputs.add(name=name, datatype=datatype, shape=shape_of(tensor))
        request.raw_input_contents.append(raw)
    for name in output_filter:
        request.outputs.add(name=name)
    return request


def _native(raw: bytes, code: str) -> bytes:
    values = array(code)
    values.frombytes(raw)
    values.byteswap()
    return values.tobytes()


def _split(raw: bytes) -> list[bytes]:
    items, offset = [], 0
    while offset + 4 <= len(raw):
        (length,) = _LENGTH.unpack_from(raw, offset)
        items.append(raw[offset + 4 : offset + 4 + length])
        offset += 4 + length
    return items


def _output(output: pb.ModelInferResponse.InferOutputTensor, raw: bytes | None) -> tensor_pb2.TensorProto:
    row = by_oip(output.datatype)
    if row is None:
        raise ValueError(
            f"model output {output.name!r} has datatype {output.datatype}, which the gateway cannot read"
        )
    tensor = tensor_pb2.TensorProto(dtype=row.enum, tensor_shape=shape_proto(list(output.shape)))
    if row.enum == types_pb2.DT_STRING:
        tensor.string_val.extend(_split(raw) if raw is not None else list(output.contents.bytes_contents))
    elif raw is not None:
        tensor.tensor_content = raw if _LITTLE else _native(raw, row.typecode or "B")
    else:
        getattr(tensor, row.value_field).extend(getattr(output.contents, row.oip_contents))
    return tensor


def predict_response(reply: pb.ModelInferResponse, model: str, signature: str) -> predict_pb2.PredictResponse:
    response = predict_pb2.PredictResponse(
        model_spec=model_pb2.ModelSpec(name=model, signature_name=signature)
    )
    if reply.model_version.isdigit():
        response.model_spec.version.value = int(reply.model_version)
    raw = list(reply.raw_output_contents)
    for index, output in enumerate(reply.outputs):
        response.outputs[output.name].CopyFrom(_output(output, raw[index] if raw else None))
    return response


def _tensor_info(metadata: pb.ModelMetadataResponse.TensorMetadata) -> meta_graph_pb2.TensorInfo:
    return meta_graph_pb2.TensorInfo(
        name=metadata.name,
        dtype=row.enum if (row := by_oip(metadata.datatype)) is not None else types_pb2.DT_INVALID,
        tensor_shape=shape_proto(list(metadata.shape)),
    )


def metadata_response(
    reply: pb.ModelMetadataResponse, model: str, version: int | None
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """OIP model metadata as TF Serving's, with the model's one signature as ``serving_default``."""
    signature = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
    for item in reply.inputs:
        signature.inputs[item.name].CopyFrom(_tensor_info(item))
    for item in reply.outputs:
        signature.outputs[item.name].CopyFrom(_tensor_info(item))
    signatures = get_model_metadata_pb2.SignatureDefMap()
    signatures.signature_def[DEFAULT_SIGNATURE].CopyFrom(signature)
    response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=model_pb2.ModelSpec(name=model))
    numbers = [int(v) for v in reply.versions if v.isdigit()]
    if version is not None or numbers:
        response.model_spec.version.value = version if version is not None else max(numbers)
    response.metadata["signature_def"].Pack(signatures)
    return response


# ---- calls: one attempt on one server (ModelClient retries and fails over) ------------------------------


async def infer(
    server: Server,
    request: pb.ModelInferRequest,
    signature: str,
    timeout: float,  # noqa: ASYNC109 - the attempt's gRPC deadline
) -> predict_pb2.PredictResponse:
    """Predict as ModelInfer, answered as TF Serving's PredictResponse."""
    reply = await server.oip.ModelInfer(request, timeout=timeout)
    try:
        return predict_response(reply, request.model_name, signature)
    except ValueError as exc:
        raise UpstreamError(grpc.StatusCode.UNIMPLEMENTED, str(exc)) from None


async def metadata(
    server: Server,
    model: str,
    version: int | None,
    label: str | None,
    timeout: float,  # noqa: ASYNC109 - the attempt's gRPC deadline
) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """GetModelMetadata as ModelMetadata (``metadata_response``)."""
    request = pb.ModelMetadataRequest(name=model, version=version_string(version, label))
    return metadata_response(await server.oip.ModelMetadata(request, timeout=timeout), model, version)


async def status(
    server: Server,
    model: str,
    version: int | None,
    timeout: float,  # noqa: ASYNC109 - each call's gRPC deadline
) -> get_model_status_pb2.GetModelStatusResponse:
    """Status over OIP: the versions ModelMetadata lists (or the one asked for), AVAILABLE when ready."""
    if version is None:
        listed = await server.oip.ModelMetadata(pb.ModelMetadataRequest(name=model), timeout=timeout)
        versions = [v for v in listed.versions if v.isdigit()]
    else:
        versions = [str(version)]
    response = get_model_status_pb2.GetModelStatusResponse()
    for text in versions:
        ready = await server.oip.ModelReady(pb.ModelReadyRequest(name=model, version=text), timeout=timeout)
        state = 30 if ready.ready else 0  # AVAILABLE / UNKNOWN
        response.model_version_status.add(version=int(text), state=state)
    return response
