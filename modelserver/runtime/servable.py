"""A loaded model version: its SignatureDefs and a synchronous ``run`` of one signature through the version's
TensorFlow session (``modelserver.runtime.session``: the C++ loader and ``Session::Run``, as TF Serving runs models).

Thread safety: ``run`` may be called from many threads at once (TensorFlow sessions are thread-safe) and
releases the GIL while TensorFlow works. It is only called through a ``ServableHandle`` so the version cannot
be unloaded underneath it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from modelserver.errors import InvalidArgument, ServingError
from modelserver.runtime.batching_config import BatchingConfig
from modelserver.runtime.session import NUMPY_DTYPES, Session, SessionError
from modelserver.runtime.tensors import dtype_enum, dtype_name
from tfs_protos.tensorflow.core.framework import types_pb2
from tfs_protos.tensorflow.core.protobuf import meta_graph_pb2

__all__ = ["DEFAULT_SIGNATURE", "Servable", "check_inputs", "numpy_dtype", "serving_error_from_tf"]

DEFAULT_SIGNATURE = "serving_default"


def numpy_dtype(dtype: int) -> np.dtype[Any]:
    """The numpy dtype a signature input of TF ``dtype`` is fed with (object for DT_STRING)."""
    if dtype == types_pb2.DT_STRING:
        return np.dtype(object)
    found = NUMPY_DTYPES.get(dtype)
    if found is None:
        raise InvalidArgument(f"inputs of type {dtype_name(dtype)} cannot be sent to this server")
    return found


def _status_code(code: int) -> grpc.StatusCode:
    return next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)


def serving_error_from_tf(exc: BaseException) -> ServingError:
    """A TensorFlow runtime failure as a ServingError with the same status code (TF and gRPC share codes)."""
    if isinstance(exc, ServingError):
        return exc
    if isinstance(exc, SessionError):
        return ServingError(exc.message.strip(), code=_status_code(exc.code))
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, (TypeError, ValueError)):
        return InvalidArgument(text)
    if isinstance(exc, FileNotFoundError):  # e.g. a SavedModel without its variables
        return ServingError(text, code=grpc.StatusCode.NOT_FOUND)
    return ServingError(f"{type(exc).__name__}: {text}", code=grpc.StatusCode.INTERNAL)


# Inputs declared with a rank of at least this must come with that rank and its known dimensions. For such
# inputs (images, sequences) TensorFlow's kernels - Conv2D, pooling, ... - abort the whole process on a
# tensor of another rank (`Check failed: index >= 0 && index < num_total_dims` in tensor_format.h; found by
# reliability/fuzz.py: one OIP request with shape [784] for fashion's [-1,28,28,1] killed the server). On TF
# Serving the same request is a query of death. Lower ranks are left to the graph, as TF Serving does: its
# testPredictREST feeds [3] to half_plus_two's `x` declared [-1,1] and expects an answer.
GUARDED_RANK = 3


def guarded_shapes(signature: meta_graph_pb2.SignatureDef) -> dict[str, list[int]]:
    """The declared dims of the signature's inputs of rank >= ``GUARDED_RANK`` (-1: any size)."""
    return {
        name: [d.size for d in info.tensor_shape.dim]
        for name, info in signature.inputs.items()
        if not info.tensor_shape.unknown_rank and len(info.tensor_shape.dim) >= GUARDED_RANK
    }


def check_inputs(
    signature_name: str,
    signature: meta_graph_pb2.SignatureDef,
    inputs: Mapping[str, np.ndarray],
    guarded: Mapping[str, list[int]] | None = None,
) -> None:
    """TF Serving's predict-request checks: exactly the signature's inputs, with its dtypes. Shapes are left
    to the graph, whose error (INVALID_ARGUMENT) the caller gets, as from TF Serving - except for inputs
    declared with rank >= ``GUARDED_RANK``, whose rank and known dimensions are checked here. ``guarded``:
    ``guarded_shapes(signature)`` when the caller keeps it (reading a proto's dims costs microseconds)."""
    wanted = set(signature.inputs)
    sent = set(inputs)
    if sent != wanted:
        raise InvalidArgument(
            f"input size does not match signature: {len(sent)}!={len(wanted)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(wanted))}}}). "
            f"Sent extra: {{{','.join(sorted(sent - wanted))}}}. "
            f"Missing but required: {{{','.join(sorted(wanted - sent))}}}."
        )
    for name, array in inputs.items():
        info = signature.inputs[name]
        got = dtype_enum(array)
        if got != info.dtype:
            raise InvalidArgument(
                f"Expects arg[{name}] of signature {signature_name} to be {dtype_name(info.dtype)} "
                f"but {dtype_name(got)} is provided"
            )
        # Other shapes are not checked against the signature: the graph decides (TF Serving's predict_util.cc).
        declared = (guarded_shapes(signature) if guarded is None else guarded).get(name)
        if declared is not None:
            _check_guarded_shape(signature_name, name, declared, array)


def _check_guarded_shape(signature_name: str, name: str, declared: list[int], array: np.ndarray) -> None:
    if array.ndim == len(declared) and all(
        want < 0 or want == got for want, got in zip(declared, array.shape, strict=True)
    ):
        return
    raise InvalidArgument(
        f"input {name} of signature {signature_name} has shape {list(array.shape)} but the signature declares "
        f"{declared} (-1: any size); send a tensor of rank {len(declared)} with those dimensions"
    )


@dataclass
class Servable:
    """One loaded version. ``signature_defs`` are the MetaGraphDef's as the C++ loader read them (the exact
    protos TF Serving reports in GetModelMetadata, method names included); ``session`` runs them."""

    name: str
    version: int
    path: Path
    signature_defs: dict[str, meta_graph_pb2.SignatureDef]
    session: Session | None = field(default=None, repr=False)
    ram_bytes: int = 0
    batching: BatchingConfig | None = (
        None  # its batching_params.pbtxt (--enable_per_model_batching_parameters)
    )
    _guarded: dict[str, dict[str, list[int]]] = field(default_factory=dict, init=False, repr=False)

    def guarded_shapes(self, signature_name: str) -> dict[str, list[int]]:
        """``guarded_shapes`` of one of its signatures, read once per version."""
        found = self._guarded.get(signature_name)
        if found is None:
            found = self._guarded[signature_name] = guarded_shapes(self.signature(signature_name))
        return found

    def signature(self, signature_name: str) -> meta_graph_pb2.SignatureDef:
        key = signature_name or DEFAULT_SIGNATURE
        try:
            return self.signature_defs[key]
        except KeyError:
            raise InvalidArgument(f'Serving signature key "{key}" not found.') from None

    def run(
        self,
        signature_name: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: Sequence[str] = (),
        *,
        timeout_ms: int = 0,
    ) -> dict[str, np.ndarray]:
        """Run one signature on already-checked inputs; return the filtered outputs as numpy arrays.

        Feeds and fetches are the SignatureDef's tensor names; ``timeout_ms`` > 0 cancels a run that outlives
        the request's deadline (DEADLINE_EXCEEDED)."""
        signature = self.signature(signature_name)
        session = self.session
        if session is None:
            raise ServingError(
                f"Servable {self.name} version {self.version} is unloaded", code=grpc.StatusCode.UNAVAILABLE
            )
        names = tuple(output_filter) or tuple(signature.outputs)
        feeds = {}
        for alias, array in inputs.items():
            info = signature.inputs[alias]
            feeds[info.name] = (array, info.dtype)
        try:
            arrays = session.run(feeds, [signature.outputs[n].name for n in names], timeout_ms=timeout_ms)
        except SessionError as exc:
            raise serving_error_from_tf(exc) from None
        return dict(zip(names, arrays, strict=True))

    def close(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            session.close()

    def check_output_filter(self, signature_name: str, output_filter: Sequence[str]) -> None:
        signature = self.signature(signature_name)
        seen: set[str] = set()
        for alias in output_filter:
            if alias not in signature.outputs:
                raise InvalidArgument(
                    f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                    f"{{{','.join(sorted(signature.outputs))}}}."
                )
            if alias in seen:
                raise InvalidArgument(f"duplicate output tensor alias: {alias}")
            seen.add(alias)
