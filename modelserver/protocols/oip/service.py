"""The Open Inference Protocol (KServe v2) over the data plane: protocol-neutral requests and replies that the
REST (``oip.rest``) and gRPC (``oip.grpc_service``) adapters convert to and from, and ``OipDataPlane``, which maps
them onto ``DataPlane`` calls. Inference goes through ``DataPlane.prediction`` - the same handles,
input checks, batching and metrics as TF Serving's Predict - so there is one data plane and two thin
protocol layers on top of it.

How OIP names map onto TF Serving's models (docs/oip.md):

- OIP model ``fashion`` is model ``fashion``'s ``serving_default`` signature; ``fashion:classify`` is its
  ``classify`` signature (``:`` never occurs in a TF Serving model name reachable over REST). An infer
  request may also name the signature with the request parameter ``signature_name``.
- OIP versions are strings: digits name a version number, anything else is one of TF Serving's version
  labels (``/v2/models/fashion/versions/stable/infer``): our extension ``version_labels``.
- Unknown model, signature, version or label: ``NotFound`` (HTTP 404, gRPC NOT_FOUND); anything wrong in a
  request: ``InvalidArgument`` (400, INVALID_ARGUMENT).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelserver import __version__
from modelserver.dataplane import DataPlane
from modelserver.errors import InvalidArgument, NotFound, ServableNotFound, ServingError, UnknownVersionLabel
from modelserver.protocols.oip.tensors import array_datatype, datatype_of
from modelserver.runtime.limits import RequestLimits
from modelserver.runtime.servable import DEFAULT_SIGNATURE
from tfs_protos.tensorflow_serving.apis import get_model_metadata_pb2, model_pb2

__all__ = [
    "EXTENSIONS",
    "InferRequest",
    "InferResponse",
    "ModelMetadata",
    "OipDataPlane",
    "RequestedOutput",
    "Tensor",
    "TensorMetadata",
]

SERVER_NAME = "tfserve-stack-modelserver"
PLATFORM = "tensorflow_savedmodel"  # Triton's platform name for SavedModels
# Triton's extension names for what we implement, plus ours (docs/oip.md).
EXTENSIONS = ("binary_tensor_data", "parameters", "version_labels", "signatures")
SIGNATURE_SEPARATOR = ":"
_INT64_MAX = 2**63 - 1

Parameters = dict[str, Any]


@dataclass
class Tensor:
    """One input or output: ``array`` holds the values (object array of bytes for BYTES)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    array: np.ndarray
    parameters: Parameters = field(default_factory=dict)


@dataclass
class RequestedOutput:
    name: str
    parameters: Parameters = field(default_factory=dict)


@dataclass
class InferRequest:
    model_name: str
    model_version: str = ""
    id: str = ""
    parameters: Parameters = field(default_factory=dict)
    inputs: list[Tensor] = field(default_factory=list)
    outputs: list[RequestedOutput] = field(default_factory=list)


@dataclass
class InferResponse:
    model_name: str
    model_version: str
    id: str
    outputs: list[Tensor]
    parameters: Parameters = field(default_factory=dict)


@dataclass
class TensorMetadata:
    name: str
    datatype: str
    shape: list[int]


@dataclass
class ModelMetadata:
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


@dataclass(frozen=True)
class Target:
    """What an OIP (model name, version, parameters) names in TF Serving's terms."""

    model: str
    signature: str
    version: int | None
    label: str | None
    by_name: bool  # the signature came from the model name's suffix (unknown -> 404, not 400)

    def spec(self, signature: bool = True) -> model_pb2.ModelSpec:
        spec = model_pb2.ModelSpec(name=self.model, signature_name=self.signature if signature else "")
        if self.version is not None:
            spec.version.value = self.version
        elif self.label is not None:
            spec.version_label = self.label
        return spec


def target(model_name: str, version: str = "", parameters: Mapping[str, Any] | None = None) -> Target:
    """Parse an OIP model name and version (module docstring)."""
    if not model_name:
        raise InvalidArgument("a model name is required")
    model, sep, signature = model_name.partition(SIGNATURE_SEPARATOR)
    requested = (parameters or {}).get("signature_name")
    if requested is not None and not isinstance(requested, str):
        raise InvalidArgument("parameter signature_name must be a string")
    if sep and requested and requested != signature:
        raise InvalidArgument(
            f"model name {model_name!r} names signature {signature!r} but parameter signature_name is "
            f"{requested!r}; give one of them"
        )
    if not model or (sep and not signature):
        raise NotFound(f"Model {model_name!r} not found: use <model> or <model>:<signature>")
    number: int | None = None
    label: str | None = None
    if version.isdigit() and version.isascii():
        number = int(version)
        if number > _INT64_MAX:
            raise NotFound(f"Model {model_name!r} has no version {version}")
    elif version:
        label = version
    return Target(model, signature or requested or DEFAULT_SIGNATURE, number, label, bool(sep))


class OipDataPlane:
    """The OIP calls, answered from ``DataPlane`` (and its manager for readiness and version lists).

    Every method raises ``ServingError`` (``InvalidArgument`` / ``NotFound`` / ``Unavailable``...) that the
    adapters map to OIP error replies in one place each; never another exception."""

    def __init__(self, dataplane: DataPlane) -> None:
        self._dp = dataplane

    @property
    def limits(self) -> RequestLimits:
        """The request limits (``--max_request_*``), checked by the adapters before decoding."""
        return self._dp.limits

    # ---- health and server metadata -----------------------------------------------------------------
    def server_live(self) -> bool:
        return True

    def server_ready(self) -> bool:
        """Ready when every configured model has an AVAILABLE version (and at least one model is served)."""
        manager = self._dp.manager
        names = list(self._dp.core.entries) or manager.model_names()
        return bool(names) and all(manager.available_versions(name) for name in names)

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}

    # ---- models ---------------------------------------------------------------------------------------
    def _known(self, where: Target) -> None:
        if not self._dp.manager.is_known(where.model):
            raise NotFound(f"Model {where.model!r} not found")

    def model_ready(self, model_name: str, version: str = "") -> bool:
        """True when the named version (latest: any) is AVAILABLE; NotFound for unknown models/labels."""
        where = target(model_name, version)
        self._known(where)
        manager = self._dp.manager
        try:
            number = manager.resolve_version(where.model, where.version, where.label)
            manager.status(where.model, number)  # NotFound: a version the server has never seen
            with manager.acquire(where.model, where.version, where.label) as handle:
                return where.signature in handle.servable.signature_defs
        except UnknownVersionLabel as error:
            raise NotFound(f"Model {where.model!r} has no version label {where.label!r}") from error
        except NotFound as error:
            if isinstance(error, ServableNotFound):
                return False
            raise NotFound(f"Model {where.model!r} has no version {where.version}") from error
        except ServingError:
            return False

    async def model_metadata(self, model_name: str, version: str = "") -> ModelMetadata:
        where = target(model_name, version)
        self._known(where)
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=where.spec(signature=False), metadata_field=["signature_def"]
        )
        try:
            reply = await self._dp.get_model_metadata(request)
        except ServingError as error:
            raise _oip_error(error, where) from None
        signatures = get_model_metadata_pb2.SignatureDefMap()
        reply.metadata["signature_def"].Unpack(signatures)
        signature = signatures.signature_def.get(where.signature)
        if signature is None:
            raise NotFound(f"Model {where.model!r} has no signature {where.signature!r}")
        return ModelMetadata(
            name=model_name,
            versions=[str(v) for v in self._dp.manager.available_versions(where.model)],
            platform=PLATFORM,
            inputs=_tensor_metadata(signature.inputs),
            outputs=_tensor_metadata(signature.outputs),
        )

    # ---- inference ------------------------------------------------------------------------------------
    async def infer(self, request: InferRequest) -> InferResponse:
        where = target(request.model_name, request.model_version, request.parameters)
        spec = where.spec()
        names = [o.name for o in request.outputs]
        try:
            async with self._dp.prediction(spec) as prediction:  # one version from dtypes to outputs
                expected = prediction.input_dtypes
                inputs: dict[str, np.ndarray] = {}
                for tensor in request.inputs:
                    if tensor.name in inputs:
                        raise InvalidArgument(f"input '{tensor.name}' is given twice")
                    wanted = expected.get(tensor.name)
                    if wanted is not None and datatype_of(wanted) != tensor.datatype:
                        raise InvalidArgument(
                            f"input '{tensor.name}' has datatype {tensor.datatype} but model "
                            f"{request.model_name!r} expects {datatype_of(wanted)}"
                        )
                    inputs[tensor.name] = tensor.array
                arrays = await prediction.run(inputs, names)
                resolved = prediction.spec
        except ServingError as error:
            raise _oip_error(error, where) from None
        outputs = [_output(name, arrays[name]) for name in (names or sorted(arrays))]
        return InferResponse(
            model_name=request.model_name,
            model_version=str(resolved.version.value),
            id=request.id,
            outputs=outputs,
        )


def _output(name: str, array: Any) -> Tensor:
    array = np.asarray(array)
    return Tensor(name, array_datatype(array), tuple(int(d) for d in array.shape), array)


def _tensor_metadata(infos: Any) -> list[TensorMetadata]:
    out = []
    for key in sorted(infos):
        info = infos[key]
        shape = [-1] if info.tensor_shape.unknown_rank else [int(d.size) for d in info.tensor_shape.dim]
        out.append(TensorMetadata(key, datatype_of(info.dtype), shape))
    return out


def _oip_error(error: ServingError, where: Target) -> ServingError:
    """TF Serving's errors in OIP terms: what names a missing model/version/signature becomes NotFound."""
    if isinstance(error, UnknownVersionLabel):
        return NotFound(f"Model {where.model!r} has no version label {where.label!r}")
    if isinstance(error, ServableNotFound) and where.version is not None:
        return NotFound(f"Model {where.model!r} has no available version {where.version}")
    if where.by_name and error.message == f'Serving signature key "{where.signature}" not found.':
        return NotFound(f"Model {where.model!r} has no signature {where.signature!r}")
    return error
