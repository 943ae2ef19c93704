"""``frozen_graph.pb``: the serving graph with every variable folded into a constant, for tools that want a
single GraphDef (TF1-style loaders, graph inspectors, converters).

The frozen copy is checked on held-out rows: its outputs must match the SavedModel's ``serving_default``
within a small tolerance, or the export fails and nothing is published. The card records the frozen graph's
input and output tensor names, since freezing renames outputs (``Identity:0``, ...).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from export.errors import VerificationFailed
from export.servable import Servable

__all__ = ["FROZEN_GRAPH", "check_equivalence", "load_frozen", "write"]

FROZEN_GRAPH = "frozen_graph.pb"
TOLERANCE = 1e-4


class _TableCollectionNoise(logging.Filter):
    # Freezing exports a meta graph of the function graph; its (unused) "table_initializer" collection cannot
    # be serialised there, which TF reports as a harmless warning. The frozen graph itself has no table.
    def filter(self, record: logging.LogRecord) -> bool:
        return "serializing table_initializer" not in record.getMessage()


@contextlib.contextmanager
def _quiet_table_collection() -> Iterator[None]:
    logger = logging.getLogger("tensorflow")
    noise = _TableCollectionNoise()
    logger.addFilter(noise)
    try:
        yield
    finally:
        logger.removeFilter(noise)


def write(servable: Servable, directory: Path) -> dict[str, Any]:
    """Freeze ``servable.frozen_source`` into ``directory/frozen_graph.pb``; return its tensor names (no
    file when there is no frozen source: ``note`` then says why)."""
    if servable.frozen_source is None:
        return {"file": None, "note": servable.frozen_note}
    with _quiet_table_collection():
        frozen = convert_variables_to_constants_v2(servable.frozen_source)
    graph_def = frozen.graph.as_graph_def()
    (directory / FROZEN_GRAPH).write_bytes(graph_def.SerializeToString(deterministic=True))
    # Placeholders follow the flattened input signature (named by its TensorSpecs, which a loaded
    # signature's placeholders need not be); outputs flatten in sorted-key order.
    specs = tf.nest.flatten(servable.frozen_source.structured_input_signature)
    inputs = {
        (spec.name or tensor.name.split(":")[0]): tensor.name
        for spec, tensor in zip(specs, frozen.inputs, strict=True)
    }
    output_keys = sorted(servable.frozen_source.structured_outputs)
    outputs = {key: tensor.name for key, tensor in zip(output_keys, frozen.outputs, strict=True)}
    return {"file": FROZEN_GRAPH, "inputs": inputs, "outputs": outputs, "note": servable.frozen_note}


def load_frozen(path: Path, inputs: Mapping[str, str], outputs: Mapping[str, str]) -> Any:
    """A callable (keyword arrays -> dict of numpy outputs) running the frozen GraphDef at ``path``, the way
    a TF1 tool would: imported into a graph and run by a session (no re-tracing of a large graph)."""
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(path.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    session = tf.compat.v1.Session(graph=graph)
    fetches = {key: graph.get_tensor_by_name(name) for key, name in outputs.items()}

    def run(**kwargs: Any) -> dict[str, Any]:
        feeds = {graph.get_tensor_by_name(inputs[key]): np.asarray(value) for key, value in kwargs.items()}
        result: dict[str, Any] = session.run(fetches, feed_dict=feeds)
        return result

    return run


def check_equivalence(servable: Servable, directory: Path, names: Mapping[str, Any], loaded: Any) -> float:
    """Max abs difference between the frozen graph and the reloaded SavedModel on the held-out rows."""
    frozen = load_frozen(directory / FROZEN_GRAPH, names["inputs"], names["outputs"])
    expected = loaded.signatures[servable.predict_signature](
        **{k: tf.constant(v) for k, v in servable.predict_inputs.items()}
    )
    actual = frozen(**servable.predict_inputs)
    worst = 0.0
    for key, want in expected.items():
        if key not in actual:
            raise VerificationFailed(servable.name, f"frozen graph lacks the output {key!r}")
        got = np.asarray(actual[key])
        if want.dtype == tf.string:
            diff = 0.0 if np.array_equal(got, want.numpy()) else np.inf
        else:
            diff = float(np.max(np.abs(got - want.numpy()))) if want.shape.num_elements() else 0.0
        worst = max(worst, diff)
    if not worst <= TOLERANCE:
        raise VerificationFailed(servable.name, f"frozen graph differs from the SavedModel by {worst:g}")
    return worst
