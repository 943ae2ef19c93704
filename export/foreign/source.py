"""A user's model as ``publish`` finds it: a ``.keras`` / ``.h5`` file or a SavedModel directory (TF2, TF1,
any signature names), loaded once, hashed, and refused when TensorFlow Serving could not run it.

Contract:
- :func:`load` returns a :class:`Source` whose ``signatures`` are the user's own serving functions (key ->
  ConcreteFunction, outputs as the user wrote them). A Keras file gets one, ``serving_default``, calling the
  model with its input names and output names; a SavedModel keeps every signature it has, under its own key.
- :meth:`Source.attach` adds the export's own functions (``contract``, ``classify``, ...) so that they are
  saved with the model's variables and tables; :meth:`Source.module` is then the object to save.
- Refusals (:class:`export.errors.Refused`, before anything is written): a ``tf.py_function`` / ``PyFunc`` op,
  an op TensorFlow's C++ runtime does not register, a resource- or variant-typed signature input, a model
  whose only signatures take no inputs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf
from tensorflow.core.framework import graph_pb2, types_pb2
from tensorflow.python.framework import op_def_registry

from export.data import sha256_of
from export.errors import InvalidSource, Refused
from export.foreign import graph
from export.servable import PREDICT_METHOD
from export.signatures import SERVE_TAG
from modelserver.runtime.session import Session, SessionError

__all__ = ["KERAS_SUFFIXES", "Source", "load"]

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
UNSERVABLE_INPUTS = {types_pb2.DT_RESOURCE: "resource", types_pb2.DT_VARIANT: "variant"}
_NAME = re.compile(r"[^A-Za-z0-9_]")


@dataclass
class Source:
    path: Path
    kind: str  # "keras" | "saved_model"
    sha256: str
    signatures: dict[str, Any]  # the user's signature key -> ConcreteFunction
    method_names: dict[str, str]  # the user's signatures whose method is not predict
    keras_model: Any = None
    _root: Any = None  # tf.saved_model.load result, or a Keras ExportArchive
    graph_def: Any = None  # set for a TF1 graph published as it is (export.foreign.graph)
    _attached: list[str] = field(default_factory=list)

    @property
    def graph_only(self) -> bool:
        return self.graph_def is not None

    def close(self) -> None:
        if self.graph_only:
            self._root.close()

    def attach(self, name: str, function: Any) -> None:
        """Save ``function`` (a ``tf.function`` with an input signature) with the model."""
        if self.graph_only:
            raise TypeError("a TF1 graph is published as it is: nothing can be attached")
        if self.kind == "keras":
            self._root.add_endpoint(name, function)
        else:
            setattr(self._root, f"_export_{name}", function)
        self._attached.append(name)

    def module(self) -> Any:
        """The trackable to pass to ``tf.saved_model.save``: the model's variables, tables and assets."""
        if self.graph_only:
            return None
        if self.kind == "keras":
            # ExportArchive tracks the variables the endpoints read and the lookup tables of the tracked
            # layers (TextVectorization, StringLookup); writing out is ours, to add signatures and methods.
            self._root._filter_and_track_resources()
            return self._root._tf_trackable
        return self._root


def _digest(path: Path) -> str:
    if path.is_file():
        return sha256_of(path)
    manifest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        manifest.update(f"{file.relative_to(path).as_posix()}\0{sha256_of(file)}\n".encode())
    return manifest.hexdigest()


def _nodes(graph_def: Any) -> Iterable[Any]:
    yield from graph_def.node
    for function in graph_def.library.function:
        yield from function.node_def


def refuse_ops(source: object, graph_def: Any) -> None:
    """Refuse Python ops and ops the C++ runtime does not register (the in-process registry is the one the
    tensorflow wheel's C++ library fills)."""
    for node in _nodes(graph_def):
        if node.op in PYTHON_OPS:
            raise Refused(
                source,
                f"op {node.name!r} is a {node.op} (tf.py_function / tf.numpy_function), which runs Python "
                "code that is not in the SavedModel",
            )
    defined = {function.signature.name for function in graph_def.library.function}
    for node in _nodes(graph_def):
        if node.op not in defined and op_def_registry.get(node.op) is None:
            raise Refused(
                source, f"op type {node.op!r} (node {node.name!r}) is not in TensorFlow's C++ runtime"
            )


def refuse_signatures(source: object, signature_defs: Any) -> None:
    keys = [key for key in signature_defs if not key.startswith("__")]
    for key in keys:
        for name, info in signature_defs[key].inputs.items():
            if info.dtype in UNSERVABLE_INPUTS:
                raise Refused(
                    source,
                    f"signature {key!r} input {name!r} is {UNSERVABLE_INPUTS[info.dtype]}-typed; "
                    "no client can send it",
                )
    if keys and all(not signature_defs[key].inputs for key in keys):
        raise Refused(source, f"its only signatures ({', '.join(sorted(keys))}) take no inputs")
    if not keys:
        raise Refused(source, "it has no signatures")


def _load_saved_model(path: Path, sha256: str) -> Source:
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString((path / "saved_model.pb").read_bytes())
    except Exception as err:  # a truncated or foreign file
        raise InvalidSource(path, f"saved_model.pb is not a SavedModel: {err}") from None
    meta_graphs = [m for m in proto.meta_graphs if SERVE_TAG in m.meta_info_def.tags]
    if not meta_graphs:
        raise InvalidSource(path, "the SavedModel has no meta graph tagged 'serve'")
    meta_graph = meta_graphs[0]
    refuse_ops(path, meta_graph.graph_def)
    refuse_signatures(path, meta_graph.signature_def)
    if graph.is_graph_only(meta_graph):
        return _load_graph(path, sha256, meta_graph)
    try:
        loaded = tf.saved_model.load(str(path), tags=[SERVE_TAG])
    except Exception as err:  # the loader's own words are the reason
        raise InvalidSource(path, f"TensorFlow cannot load the SavedModel: {err}") from None
    signatures = {key: loaded.signatures[key] for key in sorted(loaded.signatures)}
    methods = {
        key: sig.method_name
        for key, sig in meta_graph.signature_def.items()
        if key in signatures and sig.method_name and sig.method_name != PREDICT_METHOD
    }
    return Source(path, "saved_model", sha256, signatures, methods, _root=loaded)


def _load_graph(path: Path, sha256: str, meta_graph: Any) -> Source:
    """A TF1 graph, run by TensorFlow's C++ loader only (as TF Serving runs it)."""
    try:
        session = Session.load(path, (SERVE_TAG,))
    except SessionError as err:
        raise InvalidSource(
            path, f"TensorFlow's C++ SavedModel loader cannot load it: {err.message}"
        ) from None
    signature_defs = meta_graph.signature_def
    signatures = {
        key: graph.CppSignature(session, signature_defs[key])
        for key in sorted(signature_defs)
        if not key.startswith("__")
    }
    methods = {
        key: signature_defs[key].method_name
        for key in signatures
        if signature_defs[key].method_name and signature_defs[key].method_name != PREDICT_METHOD
    }
    return Source(
        path, "saved_model", sha256, signatures, methods, _root=session, graph_def=meta_graph.graph_def
    )


def input_name(tensor: Any, index: int) -> str:
    """A Keras input's name as a signature input name: the Input layer's name, made a valid identifier."""
    history = getattr(tensor, "_keras_history", None)
    name = history.operation.name if history is not None else getattr(tensor, "name", "")
    name = _NAME.sub("_", str(name or f"input_{index}"))
    return name if name[:1].isalpha() else f"input_{index}"


def functional(model: Any) -> Any:
    """The functional graph of a model (a Sequential model keeps one inside once it has an Input)."""
    return getattr(model, "_functional", None) or model


def _serving_function(model: Any) -> Any:
    graph = functional(model)
    tensors = list(graph.inputs)
    names = [input_name(tensor, i) for i, tensor in enumerate(tensors)]
    specs = [
        tf.TensorSpec([None, *tensor.shape[1:]], tf.as_dtype(tensor.dtype), name=name)
        for tensor, name in zip(tensors, names, strict=True)
    ]
    outputs = list(getattr(graph, "output_names", None) or ["output_0"])
    struct = getattr(graph, "_inputs_struct", None)

    @tf.function(input_signature=specs)
    def serving_default(*inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        # The model is called with its inputs in the structure it was built with (tensor, list or dict).
        packed = keras.tree.pack_sequence_as(struct, list(inputs)) if struct is not None else inputs[0]
        result = model(packed, training=False)
        flat = list(result.values()) if isinstance(result, dict) else tf.nest.flatten(result)
        return {name: tf.identity(value) for name, value in zip(outputs, flat, strict=True)}

    return serving_default


def _load_keras(path: Path, sha256: str) -> Source:
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as err:  # custom objects, a corrupt file, a foreign format
        raise InvalidSource(path, f"Keras cannot load the model: {err}") from None
    if not getattr(functional(model), "inputs", None):
        raise InvalidSource(path, "the Keras model has no Input (build it with keras.Input first)")
    serving = _serving_function(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serving)
    concrete = serving.get_concrete_function()
    graph_def = graph_pb2.GraphDef()
    graph_def.ParseFromString(concrete.graph.as_graph_def().SerializeToString())
    refuse_ops(path, graph_def)
    return Source(path, "keras", sha256, {"serving_default": concrete}, {}, keras_model=model, _root=archive)


def load(path: str | Path) -> Source:
    """Load SOURCE; raise :class:`InvalidSource` for what is not a model and :class:`Refused` for a model TF
    Serving could not run."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in KERAS_SUFFIXES:
        return _load_keras(path, _digest(path))
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return _load_saved_model(path, _digest(path))
    if not path.exists():
        raise InvalidSource(path, "no such file or directory")
    raise InvalidSource(
        path, "expected a .keras or .h5 file, or a SavedModel directory (one holding saved_model.pb)"
    )
