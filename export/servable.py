"""The hand-off between training (``export/<model>.py``) and publishing (``export/api.py``).

A model module trains on the real data and returns a :class:`Servable`: a ``tf.Module`` that tracks the
trained Keras model (and, for text, the vocabulary asset) together with plain ``tf.function`` signatures, so
that
``tf.saved_model.save`` writes a pure-TensorFlow SavedModel that TensorFlow Serving loads unchanged.
Everything the publishing steps need - held-out inputs for verification and warm-up, metrics, history, the
input contract - rides along, so those steps never know which model they handle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = ["CLASSIFY_METHOD", "CONTRACT_SIGNATURE", "PREDICT_METHOD", "REGRESS_METHOD", "SEED", "Servable"]

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
CONTRACT_SIGNATURE = "contract"

# One seed for every split, initialisation and shuffle: the same data gives the same model.
SEED = 1234


@dataclass
class Servable:
    name: str
    task: str  # "image_classification" | "text_classification" | "regression"
    labels: list[str]  # [] for the regressor
    module: tf.Module  # tracks the Keras model and assets; saved as the SavedModel root
    signatures: dict[str, Any]  # signature key -> ConcreteFunction
    method_names: dict[str, str]  # signature key -> method name to write into saved_model.pb
    contract: dict[str, Any]  # the JSON input contract (docs/architecture.md)
    # serving_default, or an equivalent that needs no lookup tables, to fold into frozen_graph.pb
    frozen_source: Any
    frozen_note: str
    # Held-out rows: serving_default inputs (name -> array, N rows) and the same rows as serialized
    # tf.Examples.
    predict_inputs: dict[str, np.ndarray]
    examples: list[bytes]
    metrics: dict[str, float]
    history: dict[str, list[float]]
    training: dict[str, Any]
    data: dict[str, Any]
    parameters: int
    curves: dict[str, tuple[str, ...]] = field(default_factory=dict)  # panel title -> history keys
    # The predict signature and its output that classify / regress answer from (verified against each other).
    predict_signature: str = "serving_default"
    score_output: str = "probabilities"
    # classify applies a softmax to ``score_output`` (a model that outputs logits, declared by its owner).
    logits: bool = False
    # Inputs of signatures that take neither ``predict_inputs`` nor the examples (a user's own signatures).
    signature_inputs: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    # Signatures kept from a user's model as they are: verified against that model, not against each other.
    own_signatures: frozenset[str] = frozenset()
    card_fields: dict[str, Any] = field(default_factory=dict)  # extra top-level model card fields
    files: dict[str, bytes] = field(default_factory=dict)  # extra files of the version (name -> bytes)
    # Writes the SavedModel itself instead of tf.saved_model.save (a TF1 graph published as it is); the
    # Python reload is then skipped: TF2's loader is not faithful to TF1 graphs, the C++ gate judges.
    write_saved_model: Callable[[Path], None] | None = None
    # A frozen graph that cannot be checked is left out (the card says why) instead of failing the export.
    frozen_optional: bool = False

    # A sample of the training split as serving_default inputs: the reference of the drift profile
    reference: dict[str, np.ndarray] = field(default_factory=dict)

    def feeds(self, key: str) -> dict[str, np.ndarray]:
        """The held-out inputs of signature ``key``: none for the contract, examples for classify / regress,
        otherwise the predict inputs."""
        if key in self.signature_inputs:
            return dict(self.signature_inputs[key])
        if key == CONTRACT_SIGNATURE:
            return {}
        if self.method_names.get(key) in (CLASSIFY_METHOD, REGRESS_METHOD):
            return {"inputs": np.asarray(self.examples, dtype=object)}
        return dict(self.predict_inputs)

    def summary(self) -> str:
        """One line per metric, each beside its baseline, for the end of an export."""
        head = f"== {self.name}: {self.parameters:,} parameters"
        if "epochs" in self.training:
            head += f", {self.training['epochs']} epochs, {self.training['seconds']:.0f} s training"
        lines = [head]
        for key, value in self.metrics.items():
            if key.startswith("baseline_"):
                continue
            baseline = self.metrics.get(f"baseline_{key}")
            tail = f"   (baseline {baseline:.4f})" if baseline is not None else ""
            lines.append(f"   {key:<24} {value:.4f}{tail}")
        return "\n".join(lines)
