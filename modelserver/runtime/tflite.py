"""TF Lite versions: a ``model.tflite`` run by LiteRT's interpreter, as TF Serving's ``TfLiteSession``
(``servables/tensorflow/tflite_session.cc``) runs one with ``--prefer_tflite_model``.

The runtime is ``ai-edge-litert`` (LiteRT, the maintained successor of ``tflite-runtime``): its interpreter is
a self-contained C++ library with a thin Python wrapper, so this module - like the SavedModel path, which
calls TensorFlow's C API - never imports TensorFlow's Python layer.

Contract:
- ``load_tflite(...)`` reads the flatbuffer and builds ``TfLiteServable``: the ``Servable`` interface (the
  data plane, batching, warm-up, classify/regress and metadata use it unchanged) with its SignatureDefs taken
  from the model as TF Serving takes them: the ``signature_defs_metadata`` the TF Serving converter writes (a
  FlexBuffer map of serialized SignatureDefs, tensor names fixed to the model's legacy names without ``:0``),
  else one ``serving_default`` predict signature over the model's input and output tensors.
- ``run`` may be called from many threads: each call takes one interpreter of the version's pool (an
  interpreter runs one call at a time; the pool has ``--num_tflite_pools x --num_tflite_interpreters_per_pool``
  of them), resizes its inputs to the request's shapes when they differ, and copies the outputs out.
- ``tflite_ram_bytes`` is the loader's estimate: the model once, plus a copy and an arena per interpreter
  (XNNPACK packs the weights per interpreter).
"""

from __future__ import annotations

import contextlib
import queue
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from flatbuffers import flexbuffers
from flatbuffers.number_types import Uint32Flags
from flatbuffers.table import Table

from modelserver.errors import InvalidArgument, ServingError
from modelserver.runtime.servable import DEFAULT_SIGNATURE, Servable
from modelserver.runtime.tensors import dtype_enum
from tfs_protos.tensorflow.core.framework import types_pb2
from tfs_protos.tensorflow.core.protobuf import meta_graph_pb2

__all__ = ["TFLITE_FILE", "TfLiteServable", "load_tflite", "signature_defs_of", "tflite_ram_bytes"]

TFLITE_FILE = "model.tflite"
PREDICT_METHOD = "tensorflow/serving/predict"
_SIGNATURE_METADATA = "signature_defs_metadata"  # tensorflow/lite/tools/signature/signature_def_util.h
_ARENA_BYTES = 1 << 20  # per interpreter, besides its copy of the weights


def tflite_ram_bytes(path: Path, interpreters: int) -> int:
    size = (path / TFLITE_FILE).stat().st_size
    return size * (1 + interpreters) + _ARENA_BYTES * interpreters


def _field(table: Table, index: int) -> int:
    return int(table.Offset(4 + 2 * index))


def _metadata(model: bytes) -> dict[str, bytes]:
    """The flatbuffer's ``Model.metadata`` entries: {name: the bytes of the buffer it points to}."""
    root = Table(bytearray(model), struct.unpack_from("<I", model, 0)[0])
    found: dict[str, bytes] = {}
    metadata, buffers = _field(root, 6), _field(root, 4)  # schema.fbs: Model.metadata, Model.buffers
    if not metadata or not buffers:
        return found
    entries, buffer_vector = root.Vector(metadata), root.Vector(buffers)
    for k in range(root.VectorLen(metadata)):
        entry = Table(root.Bytes, root.Indirect(entries + 4 * k))
        name_at, index_at = _field(entry, 0), _field(entry, 1)
        if not name_at:
            continue
        index = entry.Get(Uint32Flags, entry.Pos + index_at) if index_at else 0
        buffer = Table(root.Bytes, root.Indirect(buffer_vector + 4 * index))
        data_at = _field(buffer, 0)
        start = buffer.Vector(data_at) if data_at else 0
        found[entry.String(entry.Pos + name_at).decode("utf-8")] = (
            bytes(root.Bytes[start : start + buffer.VectorLen(data_at)]) if data_at else b""
        )
    return found


def _tensor_info(detail: Mapping[str, Any]) -> meta_graph_pb2.TensorInfo:
    info = meta_graph_pb2.TensorInfo(name=detail["name"], dtype=dtype_enum(np.empty(0, detail["dtype"])))
    for size in detail["shape"]:  # the dims TfLiteTensorToTensorInfo reports
        info.tensor_shape.dim.add(size=int(size))
    return info


def signature_defs_of(
    model: bytes, inputs: Sequence[Mapping[str, Any]], outputs: Sequence[Mapping[str, Any]]
) -> dict[str, meta_graph_pb2.SignatureDef]:
    """TfLiteSession::Create's signatures: from the model's metadata, else one over its tensors."""
    names_in = {d["name"] for d in inputs}
    names_out = {d["name"] for d in outputs}
    raw = _metadata(model).get(_SIGNATURE_METADATA)
    signatures: dict[str, meta_graph_pb2.SignatureDef] = {}
    if raw:
        entries = flexbuffers.GetRoot(raw).AsMap
        for i in range(len(entries)):
            key, value = entries.Keys[i].AsKey, entries.Values[i]
            serialized = value.AsBlob if value.IsBlob else bytes(value.AsStringBytes)
            signature = meta_graph_pb2.SignatureDef.FromString(serialized)
            for kind, known, infos in (
                ("input", names_in, signature.inputs),
                ("output", names_out, signature.outputs),
            ):
                for alias, info in infos.items():
                    if info.name not in known:
                        legacy = info.name.split(":", 1)[0]
                        if legacy not in known:
                            raise ServingError(
                                f"Invalid SignatureDefs found in TfLite model: Signature {kind} {alias} "
                                f"references an unknown tensor '{info.name}'.",
                                code=grpc.StatusCode.INTERNAL,
                            )
                        info.name = legacy
            signatures[key] = signature
        return signatures
    signature = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
    for detail in inputs:
        signature.inputs[detail["name"].split(":", 1)[0]].CopyFrom(_tensor_info(detail))
    for detail in outputs:
        signature.outputs[detail["name"].split(":", 1)[0]].CopyFrom(_tensor_info(detail))
    signatures[DEFAULT_SIGNATURE] = signature
    return signatures


class _Interpreter:
    """One LiteRT interpreter and the input shapes its tensors are allocated for."""

    def __init__(self, model: bytes, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter  # the runtime only when a TF Lite model is served

        self.interpreter = Interpreter(model_content=model, num_threads=threads)
        self.interpreter.allocate_tensors()
        self.inputs = {d["name"]: d["index"] for d in self.interpreter.get_input_details()}
        self.outputs = {d["name"]: d["index"] for d in self.interpreter.get_output_details()}
        self.shapes = {d["index"]: tuple(d["shape"]) for d in self.interpreter.get_input_details()}

    def run(self, feeds: Mapping[str, np.ndarray], fetches: Sequence[str]) -> list[np.ndarray]:
        interpreter = self.interpreter
        resized = False
        for name, array in feeds.items():
            index = self.inputs[name]
            if self.shapes[index] != array.shape:
                interpreter.resize_tensor_input(index, list(array.shape), strict=False)
                self.shapes[index] = array.shape
                resized = True
        if resized:
            interpreter.allocate_tensors()
        for name, array in feeds.items():
            value = array.astype(np.bytes_) if array.dtype == object else np.ascontiguousarray(array)
            interpreter.set_tensor(self.inputs[name], value)
        interpreter.invoke()
        out = [interpreter.get_tensor(self.outputs[name]) for name in fetches]  # copies
        return [a.astype(object) if a.dtype.kind == "S" else a for a in out]


@dataclass
class TfLiteServable(Servable):
    """A TF Lite version: ``Servable``'s interface over a pool of LiteRT interpreters."""

    pool: queue.SimpleQueue[_Interpreter] | None = field(default=None, repr=False)
    interpreters: int = 0

    @contextlib.contextmanager
    def _interpreter(self) -> Iterator[_Interpreter]:
        pool = self.pool
        if pool is None:
            raise ServingError(
                f"Servable {self.name} version {self.version} is unloaded", code=grpc.StatusCode.UNAVAILABLE
            )
        interpreter = pool.get()  # blocks while every interpreter runs a call
        try:
            yield interpreter
        finally:
            pool.put(interpreter)

    def run(
        self,
        signature_name: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: Sequence[str] = (),
        *,
        timeout_ms: int = 0,
    ) -> dict[str, np.ndarray]:
        """As ``Servable.run``; ``timeout_ms`` is not used (TF Lite cannot cancel a running invoke; a call whose
        deadline passed before it started is refused by the data plane)."""
        signature = self.signature(signature_name)
        names = tuple(output_filter) or tuple(signature.outputs)
        feeds = {signature.inputs[alias].name: array for alias, array in inputs.items()}
        with self._interpreter() as interpreter:
            try:
                arrays = interpreter.run(feeds, [signature.outputs[n].name for n in names])
            except (ValueError, RuntimeError) as exc:  # LiteRT's errors: bad shapes, failed kernels
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise InvalidArgument(f"TF Lite: {message}") from None
        return dict(zip(names, arrays, strict=True))

    def close(self) -> None:
        self.pool = None  # interpreters still running a call finish and are dropped with their pool


def load_tflite(name: str, version: int, path: Path, interpreters: int, ram_bytes: int) -> TfLiteServable:
    """Build the interpreters for ``path/model.tflite``; ServingError when the model cannot be served."""
    model = (path / TFLITE_FILE).read_bytes()
    try:
        first = _Interpreter(model, threads=1)
        signatures = signature_defs_of(
            model, first.interpreter.get_input_details(), first.interpreter.get_output_details()
        )
        pool: queue.SimpleQueue[_Interpreter] = queue.SimpleQueue()
        pool.put(first)
        for _ in range(max(1, interpreters) - 1):
            pool.put(_Interpreter(model, threads=1))
    except (ValueError, RuntimeError) as exc:
        raise ServingError(
            f"Cannot build Interpreter from {path / TFLITE_FILE}: {exc}",
            code=grpc.StatusCode.INVALID_ARGUMENT,
        ) from None
    _check_types(signatures)
    return TfLiteServable(
        name=name,
        version=version,
        path=path,
        signature_defs=signatures,
        ram_bytes=ram_bytes,
        pool=pool,
        interpreters=max(1, interpreters),
    )


def _check_types(signatures: Mapping[str, meta_graph_pb2.SignatureDef]) -> None:
    for key, signature in signatures.items():
        for info in [*signature.inputs.values(), *signature.outputs.values()]:
            if info.dtype == types_pb2.DT_INVALID:
                raise ServingError(
                    f"TF Lite signature {key}: tensor {info.name} has a type TF Serving cannot map",
                    code=grpc.StatusCode.INTERNAL,
                )
