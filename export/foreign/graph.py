"""TF1 / Estimator SavedModels (a graph, no TF2 object graph): published as they are, byte for byte, with the
``contract`` signature added at the proto level.

Re-tracing such a model in TF2 is not faithful (reference variables, ``legacy_init_op``, assets), so the
export never re-traces it: the version is a copy of the SOURCE whose ``saved_model.pb`` gains one ``Const``
DT_STRING node holding the contract JSON and a SignatureDef with no inputs naming it (and ``serving_default``
as an alias of the serving signature when the model has none). The "source model's own output" every
published signature is compared with is the SOURCE run by the same C++ loader (:class:`CppSignature`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import node_def_pb2, tensor_shape_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow.python.saved_model import fingerprinting_utils

from export.signatures import SERVE_TAG
from modelserver.runtime.session import Session

__all__ = ["CONTRACT_NODE", "CppSignature", "example_spec", "is_graph_only", "write"]

CONTRACT_NODE = "export_contract/contract"


def is_graph_only(meta_graph: Any) -> bool:
    """A TF1 / Estimator SavedModel: no TF2 object graph to load functions from."""
    return not meta_graph.object_graph_def.nodes


def _spec(info: Any) -> tf.TensorSpec:
    shape = (
        None
        if info.tensor_shape.unknown_rank
        else [d.size if d.size >= 0 else None for d in info.tensor_shape.dim]
    )
    return tf.TensorSpec(shape, tf.as_dtype(info.dtype), name=info.name.split(":")[0])


class CppSignature:
    """One SignatureDef of a SavedModel loaded by TensorFlow's C++ loader, callable like a signature
    function: keyword arrays -> dict of tensors. ``structured_input_signature`` / ``structured_outputs``
    describe it as a ConcreteFunction would."""

    def __init__(self, session: Session, signature: Any) -> None:
        self.session = session
        self.signature = signature
        inputs = {name: _spec(info) for name, info in sorted(signature.inputs.items())}
        self.structured_input_signature: tuple[tuple[()], dict[str, tf.TensorSpec]] = ((), inputs)
        self.structured_outputs = {name: _spec(info) for name, info in sorted(signature.outputs.items())}

    def __call__(self, **inputs: Any) -> dict[str, tf.Tensor]:
        feeds = {
            self.signature.inputs[name].name: (np.asarray(value), self.signature.inputs[name].dtype)
            for name, value in inputs.items()
        }
        names = sorted(self.signature.outputs)
        values = self.session.run(feeds, [self.signature.outputs[name].name for name in names])
        return {name: tf.constant(value) for name, value in zip(names, values, strict=True)}


def example_spec(graph_def: Any, placeholder: str | None = None) -> dict[str, tf.io.FixedLenFeature] | None:
    """The dense features of the ParseExample op reading ``placeholder`` (any one, in the graph or its
    function library, when None)."""
    bodies = [list(graph_def.node)] + [list(f.node_def) for f in graph_def.library.function]
    for nodes in bodies:
        consts = {n.name: n for n in nodes if n.op == "Const"}
        for node in nodes:
            if node.op not in ("ParseExample", "ParseExampleV2"):
                continue
            if placeholder is not None and node.input[0].split(":")[0] != placeholder:
                continue
            if node.op == "ParseExampleV2":
                names = [node.input[3]]
            else:
                first = 2 + node.attr["Nsparse"].i
                names = list(node.input[first : first + node.attr["Ndense"].i])
            keys: list[str] = []
            for name in names:
                const = consts.get(name.split(":")[0])
                if const is None:
                    return None
                values = np.asarray(tf.make_ndarray(const.attr["value"].tensor)).reshape(-1)
                keys.extend(v.decode() for v in values)
            shapes = [tf.TensorShape(s).as_list() for s in node.attr["dense_shapes"].list.shape]
            dtypes = [tf.as_dtype(t) for t in node.attr["Tdense"].list.type]
            return {
                key: tf.io.FixedLenFeature(shape, dtype)
                for key, shape, dtype in zip(keys, shapes, dtypes, strict=True)
            }
    return None


def write(source: Path, directory: Path, contract_json: str, alias_of: str | None) -> None:
    """Copy the SavedModel at ``source`` into ``directory`` and add the ``contract`` signature (and
    ``serving_default`` = ``alias_of``)."""
    shutil.copytree(source, directory, dirs_exist_ok=True)
    (directory / "fingerprint.pb").unlink(missing_ok=True)
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((directory / "saved_model.pb").read_bytes())
    meta_graph = next(m for m in proto.meta_graphs if SERVE_TAG in m.meta_info_def.tags)
    node = node_def_pb2.NodeDef(name=CONTRACT_NODE, op="Const")
    node.attr["dtype"].type = types_pb2.DT_STRING
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(contract_json.encode("utf-8")))
    meta_graph.graph_def.node.append(node)
    signature = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    output = signature.outputs["contract"]
    output.name = f"{CONTRACT_NODE}:0"
    output.dtype = types_pb2.DT_STRING
    output.tensor_shape.CopyFrom(tensor_shape_pb2.TensorShapeProto())
    meta_graph.signature_def["contract"].CopyFrom(signature)
    if alias_of is not None:
        meta_graph.signature_def["serving_default"].CopyFrom(meta_graph.signature_def[alias_of])
    (directory / "saved_model.pb").write_bytes(proto.SerializeToString(deterministic=True))
    fingerprinting_utils.write_fingerprint(str(directory))
