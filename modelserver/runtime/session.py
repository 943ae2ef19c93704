"""TensorFlow's C++ SavedModel loader and session, through the C API the tensorflow wheel ships.

This is the code path TensorFlow Serving itself runs (``LoadSavedModel`` in
``tensorflow/cc/saved_model/loader.cc``, then ``Session::Run``): import the MetaGraphDef with the requested
tags, run the saver's restore op with ``<dir>/variables/variables``, run the init op
(``__saved_model_init_op``, ``main_op`` or ``legacy_init_op``) with the asset paths fed - for TF1 and TF2
SavedModels alike - and run signatures by the tensor names of their SignatureDef. Nothing maps variables by
Python object graph, so a SavedModel that loads and runs here loads and runs in the official
``tensorflow_model_server``.

Contract:
- ``Session.load`` blocks and either returns a ready session or raises ``SessionError`` carrying TensorFlow's
  status code and message.
- ``Session.run`` is thread-safe (TensorFlow sessions are) and releases the GIL while TensorFlow runs: every
  foreign call through ctypes does. Inputs are numpy arrays (object arrays of ``bytes`` for DT_STRING); the
  caller checks names and dtypes first. Fed shapes are *not* checked here: the graph decides, as in TF
  Serving.
- ``Session.close`` frees the session and graph; no ``run`` may be in flight (the manager unloads a version
  only when no handle is held).

The shared libraries are the ones ``import tensorflow`` loads; opening them with ctypes does not need the
TensorFlow Python layer.
"""
# long: one concept, TensorFlow's C API session: the library and its signatures, the tensor copies in and out
# (TF_TString included), load, run and close share the handles and memory rules

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from modelserver.runtime.dtypes import DTYPES
from tfs_protos.tensorflow.core.framework import types_pb2

__all__ = ["IN_CALLING_THREAD", "NUMPY_DTYPES", "Session", "SessionError", "TensorRef", "tensor_ref"]

# True: the session loads and runs of this context execute their ops in the calling thread
# (RunOptions.inter_op_thread_pool = -1), not on TensorFlow's inter-op pool, which every session shares with
# the requests being served. A hot swap's restore and warm-up replay set it, so that their work stays in the
# loader's own (niced) thread instead of queueing beside the serving sessions' ops (issue 30: hot swap p99).
IN_CALLING_THREAD: ContextVar[bool] = ContextVar("IN_CALLING_THREAD", default=False)
# RunOptions.inter_op_thread_pool (field 3, int32) = -1: "use the caller thread to execute Session::Run()"
_CALLING_THREAD_OPTION = b"\x18" + b"\xff" * 9 + b"\x01"

# TF_DataType (= tensorflow.DataType enum values) -> numpy dtype, from the dtype table. DT_STRING is handled
# apart (TF_TString elements).
DT_STRING = int(types_pb2.DT_STRING)
NUMPY_DTYPES: dict[int, np.dtype[Any]] = {
    row.enum: row.numpy for row in DTYPES if row.numpy is not None and row.enum != DT_STRING
}
_TSTRING_SIZE = 24  # sizeof(TF_TString): tensorflow/core/platform/ctstring_internal.h


class SessionError(Exception):
    """A TensorFlow status other than OK: ``code`` is the TF/gRPC status code number, ``message`` its text."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Output(ctypes.Structure):
    _fields_ = [("oper", ctypes.c_void_p), ("index", ctypes.c_int)]


class _Buffer(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("length", ctypes.c_size_t), ("deallocator", ctypes.c_void_p)]


_P = ctypes.c_void_p
_lib_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


def _library_dir() -> Path:
    spec = find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise SessionError(9, "the tensorflow wheel is not installed: its C API is the SavedModel runtime")
    return Path(next(iter(spec.submodule_search_locations)))


def _declare(lib: ctypes.CDLL, name: str, restype: Any, *argtypes: Any) -> None:
    function = getattr(lib, name)
    function.restype = restype
    function.argtypes = list(argtypes)


# long: the C API's function signatures, one row each
def library() -> ctypes.CDLL:
    """The C API (``libtensorflow_cc.so.2`` over ``libtensorflow_framework.so.2``), opened once."""
    global _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        directory = _library_dir()
        ctypes.CDLL(str(directory / "libtensorflow_framework.so.2"), mode=ctypes.RTLD_GLOBAL)
        lib = ctypes.CDLL(str(directory / "libtensorflow_cc.so.2"), mode=ctypes.RTLD_GLOBAL)
        size, i64p = ctypes.c_size_t, ctypes.POINTER(ctypes.c_int64)
        for name, restype, argtypes in (
            ("TF_NewStatus", _P, ()),
            ("TF_DeleteStatus", None, (_P,)),
            ("TF_GetCode", ctypes.c_int, (_P,)),
            ("TF_Message", ctypes.c_char_p, (_P,)),
            ("TF_NewGraph", _P, ()),
            ("TF_DeleteGraph", None, (_P,)),
            ("TF_GraphOperationByName", _P, (_P, ctypes.c_char_p)),
            ("TF_NewSessionOptions", _P, ()),
            ("TF_DeleteSessionOptions", None, (_P,)),
            ("TF_SetConfig", None, (_P, ctypes.c_void_p, size, _P)),
            ("TF_NewBuffer", ctypes.POINTER(_Buffer), ()),
            ("TF_NewBufferFromString", ctypes.POINTER(_Buffer), (ctypes.c_void_p, size)),
            ("TF_DeleteBuffer", None, (ctypes.POINTER(_Buffer),)),
            (
                "TF_LoadSessionFromSavedModel",
                _P,
                (_P, _P, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, _P, _P, _P),
            ),
            ("TF_CloseSession", None, (_P, _P)),
            ("TF_DeleteSession", None, (_P, _P)),
            (
                "TF_SessionRun",
                None,
                (
                    _P,
                    _P,
                    ctypes.POINTER(_Output),
                    ctypes.POINTER(_P),
                    ctypes.c_int,
                    ctypes.POINTER(_Output),
                    ctypes.POINTER(_P),
                    ctypes.c_int,
                    ctypes.POINTER(_P),
                    ctypes.c_int,
                    _P,
                    _P,
                ),
            ),
            ("TF_AllocateTensor", _P, (ctypes.c_int, i64p, ctypes.c_int, size)),
            ("TF_DeleteTensor", None, (_P,)),
            ("TF_TensorType", ctypes.c_int, (_P,)),
            ("TF_NumDims", ctypes.c_int, (_P,)),
            ("TF_Dim", ctypes.c_int64, (_P, ctypes.c_int)),
            ("TF_TensorByteSize", size, (_P,)),
            ("TF_TensorData", _P, (_P,)),
            ("TF_StringInit", None, (_P,)),
            ("TF_StringCopy", None, (_P, ctypes.c_char_p, size)),
            ("TF_StringDealloc", None, (_P,)),
            ("TF_StringGetDataPointer", _P, (_P,)),
            ("TF_StringGetSize", size, (_P,)),
        ):
            _declare(lib, name, restype, *argtypes)
        _lib = lib
        return lib


class _Status:
    """A TF_Status for one call; ``check`` raises ``SessionError`` unless it is OK."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        self.ptr = lib.TF_NewStatus()

    def __enter__(self) -> _Status:
        return self

    def __exit__(self, *exc: object) -> None:
        self.lib.TF_DeleteStatus(self.ptr)

    def check(self) -> None:
        code = self.lib.TF_GetCode(self.ptr)
        if code != 0:
            message = (self.lib.TF_Message(self.ptr) or b"").decode("utf-8", "replace")
            raise SessionError(code, message)


@dataclass(frozen=True)
class TensorRef:
    """A graph tensor named as in a SignatureDef's ``TensorInfo.name``: ``op:index`` (index 0 when absent)."""

    op: str
    index: int


def tensor_ref(name: str) -> TensorRef:
    op, sep, index = name.rpartition(":")
    if sep and index.isdigit():
        return TensorRef(op, int(index))
    return TensorRef(name, 0)


def _new_tensor(lib: ctypes.CDLL, array: np.ndarray, dtype: int) -> int:
    """A TF_Tensor holding a copy of ``array`` (the caller deletes it)."""
    dims = (ctypes.c_int64 * max(array.ndim, 1))(*array.shape)
    if dtype == DT_STRING:
        flat = array.reshape(-1)
        tensor = lib.TF_AllocateTensor(DT_STRING, dims, array.ndim, flat.size * _TSTRING_SIZE)
        if not tensor:
            raise SessionError(8, f"could not allocate a string tensor of {flat.size} elements")
        base = lib.TF_TensorData(tensor)
        for i, value in enumerate(flat):
            if isinstance(value, str):
                raw = value.encode("utf-8")
            elif isinstance(value, (bytes, bytearray, memoryview)):
                raw = bytes(value)
            else:  # bytes(n) of an int would allocate n zero bytes: refuse anything but text and bytes
                _free_input(lib, tensor, DT_STRING, i)
                raise SessionError(
                    3, f"a string tensor element must be bytes or text, not {type(value).__name__}"
                )
            element = base + i * _TSTRING_SIZE
            lib.TF_StringInit(element)
            lib.TF_StringCopy(element, raw, len(raw))
        return int(tensor)
    contiguous = np.ascontiguousarray(array, dtype=NUMPY_DTYPES[dtype])
    tensor = lib.TF_AllocateTensor(dtype, dims, array.ndim, contiguous.nbytes)
    if not tensor:
        raise SessionError(8, f"could not allocate a tensor of {contiguous.nbytes} bytes")
    if contiguous.nbytes:
        ctypes.memmove(lib.TF_TensorData(tensor), contiguous.ctypes.data, contiguous.nbytes)
    return int(tensor)


def _free_input(lib: ctypes.CDLL, tensor: int, dtype: int, count: int) -> None:
    if dtype == DT_STRING:  # TF_TString elements own heap memory for long strings
        base = lib.TF_TensorData(tensor)
        for i in range(count):
            lib.TF_StringDealloc(base + i * _TSTRING_SIZE)
    lib.TF_DeleteTensor(tensor)


def _to_numpy(lib: ctypes.CDLL, tensor: int) -> np.ndarray:
    """A numpy copy of a TF_Tensor the session returned (object array of bytes for DT_STRING)."""
    dtype = lib.TF_TensorType(tensor)
    shape = tuple(lib.TF_Dim(tensor, i) for i in range(lib.TF_NumDims(tensor)))
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    data = lib.TF_TensorData(tensor)
    if dtype == DT_STRING:
        out = np.empty(count, dtype=object)
        for i in range(count):
            element = data + i * _TSTRING_SIZE
            size = lib.TF_StringGetSize(element)
            out[i] = ctypes.string_at(lib.TF_StringGetDataPointer(element), size) if size else b""
        return out.reshape(shape)
    numpy_dtype = NUMPY_DTYPES.get(dtype)
    if numpy_dtype is None:
        raise SessionError(12, f"output tensors of TF_DataType {dtype} cannot be returned")
    nbytes = lib.TF_TensorByteSize(tensor)
    out = np.empty(shape, dtype=numpy_dtype)
    if nbytes:
        ctypes.memmove(out.ctypes.data, data, min(nbytes, out.nbytes))
    return out


def _config_proto(intra_op: int, inter_op: int) -> bytes:
    """A serialized ConfigProto with the thread-pool sizes (fields 2 and 5; 0 = TensorFlow's choice; a
    negative inter-op size runs every op in the caller's thread). Both are written even when 0: merged after
    a --tensorflow_session_config_file, they replace its sizes, as TF Serving's server.cc sets them on every
    session config whatever the file says."""
    return b"\x10" + _varint(intra_op) + b"\x28" + _varint(inter_op)


class Session:
    """One SavedModel loaded by TensorFlow's C++ loader, and its session."""

    def __init__(self, lib: ctypes.CDLL, session: int, graph: int, meta_graph_def: bytes) -> None:
        self._lib = lib
        self._session: int | None = session
        self._graph = graph
        self.meta_graph_def = meta_graph_def  # serialized MetaGraphDef: the exact SignatureDefs served
        self._outputs: dict[str, _Output] = {}
        self._outputs_lock = threading.Lock()

    @classmethod
    def load(
        cls,
        export_dir: str | Path,
        tags: Iterable[str] = ("serve",),
        *,
        intra_op_threads: int = 0,
        inter_op_threads: int = 0,
        session_config: bytes = b"",
    ) -> Session:
        lib = library()
        tag_list = [t.encode("utf-8") for t in sorted(tags)]
        c_tags = (ctypes.c_char_p * max(len(tag_list), 1))(*tag_list)
        graph = lib.TF_NewGraph()
        options = lib.TF_NewSessionOptions()
        meta = lib.TF_NewBuffer()
        run_options = (
            lib.TF_NewBufferFromString(_CALLING_THREAD_OPTION, len(_CALLING_THREAD_OPTION))
            if IN_CALLING_THREAD.get()
            else None
        )
        try:
            with _Status(lib) as status:
                # A serialized message followed by another merges them: the thread-pool sizes win.
                config = session_config + _config_proto(intra_op_threads, inter_op_threads)
                if config:
                    lib.TF_SetConfig(options, config, len(config), status.ptr)
                    status.check()
                session = lib.TF_LoadSessionFromSavedModel(
                    options,
                    run_options,  # the restore and init ops
                    str(export_dir).encode("utf-8"),
                    c_tags,
                    len(tag_list),
                    graph,
                    meta,
                    status.ptr,
                )
                status.check()
            meta_graph_def = ctypes.string_at(meta.contents.data, meta.contents.length)
        except BaseException:
            lib.TF_DeleteGraph(graph)
            raise
        finally:
            lib.TF_DeleteSessionOptions(options)
            lib.TF_DeleteBuffer(meta)
            if run_options is not None:
                lib.TF_DeleteBuffer(run_options)
        return cls(lib, session, graph, meta_graph_def)

    def _output(self, name: str) -> _Output:
        found = self._outputs.get(name)
        if found is not None:
            return found
        ref = tensor_ref(name)
        with self._outputs_lock:
            operation = self._lib.TF_GraphOperationByName(self._graph, ref.op.encode("utf-8"))
            if not operation:
                raise SessionError(3, f"tensor {name} is not in the graph")
            found = _Output(operation, ref.index)
            self._outputs[name] = found
        return found

    # long: one TF_SessionRun, its buffers and their cleanup in one try/finally (who frees what stays visible)
    def run(
        self,
        feeds: Mapping[str, tuple[np.ndarray, int]],
        fetches: Sequence[str],
        *,
        timeout_ms: int = 0,
    ) -> list[np.ndarray]:
        """Feed ``{tensor name: (array, TF dtype)}``, fetch ``fetches`` (tensor names), in order.

        ``timeout_ms`` > 0 asks TensorFlow to cancel the run when it takes longer (RunOptions.timeout_in_ms):
        work for a request whose deadline passed stops instead of running on. Under ``IN_CALLING_THREAD`` the
        ops run in the calling thread.
        """
        session = self._session
        if session is None:
            raise SessionError(9, "the session was closed")
        lib = self._lib
        n_in, n_out = len(feeds), len(fetches)
        inputs = (_Output * max(n_in, 1))()
        values = (_P * max(n_in, 1))()
        outputs = (_Output * max(n_out, 1))()
        results = (_P * max(n_out, 1))()
        created: list[tuple[int, int, int]] = []
        run_options = None
        try:
            for i, (name, (array, dtype)) in enumerate(feeds.items()):
                inputs[i] = self._output(name)
                tensor = _new_tensor(lib, array, dtype)
                created.append((tensor, dtype, int(array.size)))
                values[i] = tensor
            for i, name in enumerate(fetches):
                outputs[i] = self._output(name)
            options = b"\x10" + _varint(timeout_ms) if timeout_ms > 0 else b""  # RunOptions.timeout_in_ms
            if IN_CALLING_THREAD.get():
                options += _CALLING_THREAD_OPTION
            if options:
                run_options = lib.TF_NewBufferFromString(options, len(options))
            with _Status(lib) as status:
                lib.TF_SessionRun(
                    session,
                    run_options,
                    inputs,
                    values,
                    n_in,
                    outputs,
                    results,
                    n_out,
                    None,
                    0,
                    None,
                    status.ptr,
                )
                status.check()
            arrays: list[np.ndarray] = []
            try:
                for i in range(n_out):
                    arrays.append(_to_numpy(lib, int(results[i] or 0)))
            finally:
                for i in range(n_out):
                    if results[i]:
                        lib.TF_DeleteTensor(results[i])
            return arrays
        finally:
            if run_options is not None:
                lib.TF_DeleteBuffer(run_options)
            for tensor, dtype, count in created:
                _free_input(lib, tensor, dtype, count)

    def close(self) -> None:
        """Close and delete the session and its graph (idempotent)."""
        session, self._session = self._session, None
        if session is None:
            return
        with _Status(self._lib) as status:
            self._lib.TF_CloseSession(session, status.ptr)
            self._lib.TF_DeleteSession(session, status.ptr)
        self._lib.TF_DeleteGraph(self._graph)


def _varint(value: int) -> bytes:
    """Protobuf's base-128 varint; a negative int32/int64 as its 64-bit two's complement (10 bytes)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
