"""The Open Inference Protocol's gRPC service, ``inference.GRPCInferenceService`` (KServe's
``grpc_predict_v2.proto``), registered on the same server and port as TF Serving's ``PredictionService``.
A thin adapter over ``OipDataPlane``: messages in, ``ServingError`` -> status code and message out.

Inputs come either all in ``raw_input_contents`` (little-endian, BYTES length-prefixed: what tritonclient
and the KServe SDK send) or each in its typed ``contents`` field; replies always carry
``raw_output_contents``, one entry per output, as Triton does. ``RepositoryModelLoad``/``Unload`` stay
UNIMPLEMENTED: models are loaded from the model config, as in TF Serving (docs/oip.md).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn, TypeVar

import grpc
import numpy as np

from modelserver.dataplane import PROTOCOL
from modelserver.errors import InvalidArgument, Unimplemented
from modelserver.observe import tracing
from modelserver.protocols.oip.service import (
    InferRequest,
    InferResponse,
    OipDataPlane,
    RequestedOutput,
    Tensor,
)
from modelserver.protocols.oip.tensors import (
    DATATYPES,
    check_shape,
    from_json_data,
    from_raw,
    spend_declared,
    to_raw,
)
from modelserver.protocols.tfs.grpc_service import Context, add_servicer, answer
from modelserver.runtime.dtypes import DTYPES
from modelserver.runtime.limits import DEFAULT_LIMITS, RequestBudget, RequestLimits
from oip_protos import grpc_predict_v2_pb2 as pb

__all__ = ["SERVICE_NAME", "GRPCInferenceServiceAdapter", "add_oip_service"]

SERVICE_NAME = "inference.GRPCInferenceService"
Reply = TypeVar("Reply")
# The typed contents field of each datatype, from the dtype table (FP16 travels raw only).
_CONTENTS: dict[str, str] = {
    row.oip: row.oip_contents for row in DTYPES if row.oip is not None and row.oip_contents is not None
}


def _parameters(parameters: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in parameters.items():
        choice = value.WhichOneof("parameter_choice")
        out[key] = getattr(value, choice) if choice else None
    return out


def _contents(
    name: str, datatype: str, shape: tuple[int, ...], contents: pb.InferTensorContents
) -> np.ndarray:
    if datatype not in DATATYPES:
        from_raw(name, datatype, shape, b"")  # raises the unsupported-datatype error
    field = _CONTENTS.get(datatype)
    if field is None:
        raise InvalidArgument(f"input '{name}': {datatype} must be sent in raw_input_contents")
    values = list(getattr(contents, field))
    if datatype == "BYTES":
        array = np.empty(len(values), dtype=object)
        array[:] = values
        if array.size != math.prod(shape):
            raise InvalidArgument(
                f"input '{name}': shape {list(shape)} needs {math.prod(shape)} elements but contents "
                f"holds {array.size}"
            )
        return array.reshape(shape)
    return from_json_data(name, datatype, shape, values)


def infer_request(message: pb.ModelInferRequest, limits: RequestLimits = DEFAULT_LIMITS) -> InferRequest:
    """A ModelInferRequest as an InferRequest (checks every tensor; declared shapes against ``limits``
    before any is decoded)."""
    raw = list(message.raw_input_contents)
    if raw and len(raw) != len(message.inputs):
        raise InvalidArgument(
            f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs; "
            "send every input raw or none"
        )
    tensors = []
    budget = RequestBudget(limits)
    for index, item in enumerate(message.inputs):
        shape = check_shape(item.name, list(item.shape))
        spend_declared(budget, item.name, item.datatype, shape)
        parameters = _parameters(item.parameters)
        if any(key.startswith("shared_memory") for key in parameters):
            raise InvalidArgument("the shared memory extensions are not supported (docs/oip.md)")
        if raw:
            array = from_raw(item.name, item.datatype, shape, raw[index])
        else:
            array = _contents(item.name, item.datatype, shape, item.contents)
        tensors.append(Tensor(item.name, item.datatype, shape, array, parameters))
    return InferRequest(
        model_name=message.model_name,
        model_version=message.model_version,
        id=message.id,
        parameters=_parameters(message.parameters),
        inputs=tensors,
        outputs=[RequestedOutput(o.name, _parameters(o.parameters)) for o in message.outputs],
    )


def infer_response(response: InferResponse) -> pb.ModelInferResponse:
    reply = pb.ModelInferResponse(
        model_name=response.model_name, model_version=response.model_version, id=response.id
    )
    for tensor in response.outputs:
        reply.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=list(tensor.shape))
        reply.raw_output_contents.append(to_raw(tensor.array, tensor.datatype))
    return reply


class GRPCInferenceServiceAdapter:
    """``inference.GRPCInferenceService`` (messages from ``oip_protos``; see grpc_service's
    docstring on their types)."""

    def __init__(self, oip: OipDataPlane) -> None:
        self._oip = oip

    async def _answer(self, context: Context, request: object, call: Callable[[], Awaitable[Reply]]) -> Reply:
        PROTOCOL.set("oip_grpc")  # the metrics label; errors and corrupt messages map as for TF Serving's
        return await answer(context, request, call)

    async def ServerLive(self, request: pb.ServerLiveRequest, context: Context) -> pb.ServerLiveResponse:
        async def call() -> pb.ServerLiveResponse:
            return pb.ServerLiveResponse(live=self._oip.server_live())

        return await self._answer(context, request, call)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Context) -> pb.ServerReadyResponse:
        async def call() -> pb.ServerReadyResponse:
            return pb.ServerReadyResponse(ready=self._oip.server_ready())

        return await self._answer(context, request, call)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        async def call() -> pb.ServerMetadataResponse:
            return pb.ServerMetadataResponse(**self._oip.server_metadata())

        return await self._answer(context, request, call)

    async def ModelReady(self, request: pb.ModelReadyRequest, context: Context) -> pb.ModelReadyResponse:
        async def call() -> pb.ModelReadyResponse:
            return pb.ModelReadyResponse(ready=self._oip.model_ready(request.name, request.version))

        return await self._answer(context, request, call)

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        async def call() -> pb.ModelMetadataResponse:
            metadata = await self._oip.model_metadata(request.name, request.version)
            tensor = pb.ModelMetadataResponse.TensorMetadata
            return pb.ModelMetadataResponse(
                name=metadata.name,
                versions=metadata.versions,
                platform=metadata.platform,
                inputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in metadata.inputs],
                outputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in metadata.outputs],
            )

        return await self._answer(context, request, call)

    async def ModelInfer(self, request: pb.ModelInferRequest, context: Context) -> pb.ModelInferResponse:
        async def call() -> pb.ModelInferResponse:
            return infer_response(await self._oip.infer(infer_request(request, self._oip.limits)))

        return await tracing.around(
            "modelserver.ModelInfer",
            context.invocation_metadata() or (),
            lambda: self._answer(context, request, call),
        )

    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Context
    ) -> pb.RepositoryModelLoadResponse:
        return await self._answer(context, request, _repository_unimplemented)

    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Context
    ) -> pb.RepositoryModelUnloadResponse:
        return await self._answer(context, request, _repository_unimplemented)


async def _repository_unimplemented() -> NoReturn:
    raise Unimplemented(
        "the model repository extension is not supported: models are loaded from the model config "
        "(--model_config_file, HandleReloadConfigRequest); see docs/oip.md"
    )


def add_oip_service(server: grpc.aio.Server, oip: OipDataPlane) -> None:
    """Register ``inference.GRPCInferenceService`` beside TF Serving's services."""
    add_servicer(server, pb.DESCRIPTOR, "GRPCInferenceService", GRPCInferenceServiceAdapter(oip))
