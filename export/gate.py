"""The publish gate: the staged version must load and run under TensorFlow's C++ loader - the code TensorFlow
Serving calls - and agree with the trained model before it may be published.

``tf.saved_model.load`` maps variables by Python object graph, so it can run a SavedModel whose graph the C++
loader cannot (a serving function that reads a variable no restore op fills). This gate loads the staged
directory through ``modelserver.runtime.session`` (``TF_LoadSessionFromSavedModel``: restore op, init op, assets) and
runs every signature by the tensor names of its SignatureDef on the held-out rows; every output must match the
in-memory trained function within ``TOLERANCE``. Any failure names the signature and TensorFlow's error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from export.errors import VerificationFailed
from export.servable import Servable
from modelserver.runtime.session import Session, SessionError

__all__ = ["TOLERANCE", "check_cpp_loader"]

TOLERANCE = 1e-5


def _agree(key: str, name: str, got: np.ndarray, want: np.ndarray) -> str | None:
    if got.shape != want.shape:
        return f"output {name!r} has shape {list(got.shape)}, the trained model gives {list(want.shape)}"
    if want.dtype == object or got.dtype == object:
        return None if np.array_equal(got, want) else f"output {name!r} differs from the trained model"
    if not np.allclose(got, want, rtol=0.0, atol=TOLERANCE, equal_nan=True):
        worst = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
        return f"output {name!r} differs from the trained model by {worst:.3g} (tolerance {TOLERANCE:g})"
    return None


def check_cpp_loader(servable: Servable, directory: Path) -> dict[str, Any]:
    """Load ``directory`` with the C++ loader and run every signature; raise ``VerificationFailed`` on the
    first signature that fails or disagrees. Returns what was checked (for the model card)."""
    try:
        session = Session.load(directory, ("serve",))
    except SessionError as err:
        raise VerificationFailed(
            servable.name, f"TensorFlow's C++ SavedModel loader cannot load it: {err.message}"
        ) from None
    try:
        meta_graph = meta_graph_pb2.MetaGraphDef.FromString(session.meta_graph_def)
        checked = []
        for key in servable.signatures:
            signature = meta_graph.signature_def.get(key)
            if signature is None:
                raise VerificationFailed(servable.name, f"signature {key!r} is not in the C++-loaded graph")
            inputs = servable.feeds(key)
            feeds = {signature.inputs[n].name: (v, signature.inputs[n].dtype) for n, v in inputs.items()}
            names = sorted(signature.outputs)
            try:
                outputs = session.run(feeds, [signature.outputs[n].name for n in names])
            except SessionError as err:
                raise VerificationFailed(
                    servable.name,
                    f"signature {key!r} fails under TensorFlow's C++ loader (what TF Serving runs): "
                    f"{err.message.strip().splitlines()[0]}",
                ) from None
            expected = servable.signatures[key](**{n: tf.constant(v) for n, v in inputs.items()})
            for name, got in zip(names, outputs, strict=True):
                problem = _agree(key, name, got, np.asarray(expected[name].numpy()))
                if problem:
                    raise VerificationFailed(
                        servable.name, f"signature {key!r} under TensorFlow's C++ loader: {problem}"
                    )
            checked.append(key)
        return {
            "loader": "TF_LoadSessionFromSavedModel",
            "signatures": sorted(checked),
            "tolerance": TOLERANCE,
        }
    finally:
        session.close()
