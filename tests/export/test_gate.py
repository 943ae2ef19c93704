"""export.gate: what `make export` publishes loads and runs under TensorFlow's C++ loader (the code TensorFlow
Serving calls, through the C API the tensorflow wheel ships), and a mis-tracked model is never published."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

import export.housing
from devtools.exported import MODEL_NAMES
from export import explain
from export.api import export_model
from export.errors import VerificationFailed
from modelserver.runtime.session import Session

SIGNATURES = {
    "fashion": {"serving_default", "classify", "contract", "explain"},
    "text": {"serving_default", "classify", "contract", "explain"},
    "housing": {"serving_default", "regress", "contract", "explain"},
}


def _predict_inputs(name: str, card: dict[str, Any], rows: int) -> dict[str, np.ndarray]:
    if name == "fashion":
        return {"image": np.random.default_rng(0).random((rows, 28, 28, 1), dtype=np.float32)}
    if name == "text":
        return {
            "text": np.asarray([b"WINNER! claim your prize now", b"see you at lunch"][:rows], dtype=object)
        }
    return {feature: np.full(rows, 1.5, np.float32) for feature in card["contract"]["inputs"]}


def _feeds(name: str, key: str, card: dict[str, Any], rows: int) -> dict[str, np.ndarray]:
    if key == "contract":
        return {}
    inputs = _predict_inputs(name, card, rows)
    if key == "explain":
        return explain.feeds(inputs, classes=name != "housing", steps=4)
    if key not in ("classify", "regress"):
        return inputs
    examples = []
    for row in range(rows):
        features = {}
        for feature, values in inputs.items():
            value = values[row]
            if isinstance(value, bytes):
                features[feature] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
            else:
                flat = np.asarray(value, np.float32).reshape(-1).tolist()
                features[feature] = tf.train.Feature(float_list=tf.train.FloatList(value=flat))
        example = tf.train.Example(features=tf.train.Features(feature=features))
        examples.append(example.SerializeToString())
    return {"inputs": np.asarray(examples, dtype=object)}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_published_signature_runs_under_the_cpp_loader(versions: dict[str, Path], name: str) -> None:
    """Part of `make test`: the freshly exported versions load through TF_LoadSessionFromSavedModel (restore
    op, init op, assets) and every signature runs by its SignatureDef's tensor names (4 per model, 12 in
    all)."""
    card = json.loads((versions[name] / "model_card.json").read_text())
    assert set(card["serving_check"]["signatures"]) == SIGNATURES[name]
    session = Session.load(versions[name])
    try:
        signature_defs = meta_graph_pb2.MetaGraphDef.FromString(session.meta_graph_def).signature_def
        for key in SIGNATURES[name]:
            signature = signature_defs[key]
            inputs = _feeds(name, key, card, 2)
            feeds = {signature.inputs[k].name: (v, signature.inputs[k].dtype) for k, v in inputs.items()}
            names = sorted(signature.outputs)
            outputs = dict(
                zip(names, session.run(feeds, [signature.outputs[n].name for n in names]), strict=True)
            )
            if key == "contract":
                assert json.loads(outputs["contract"][()].decode())["model"] == name
            else:
                for value in outputs.values():
                    assert value.shape[0] == 2
                    if value.dtype != object:
                        assert np.isfinite(value).all()
    finally:
        session.close()


@pytest.mark.trains
def test_gate_refuses_a_mis_tracked_model_and_publishes_nothing(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Track the Keras 3 variable wrappers (the old export): the Python loader still runs the model, but the
    C++ loader restores a copy the serving functions never read. The gate names the signature and error."""

    def keras_wrappers(module: Any, model: Any) -> None:
        module.model_weights = list(model.weights)

    monkeypatch.setattr(export.housing, "track_weights", keras_wrappers)
    with pytest.raises(VerificationFailed) as info:
        export_model("housing", tmp_path, limit=200, epochs=1, data_dir=data_dir)
    message = str(info.value)
    assert "C++ loader" in message
    assert "signature 'serving_default'" in message or "signature 'regress'" in message
    assert "Could not find variable" in message
    model_root = tmp_path / "housing"
    assert (
        not model_root.exists() or [p.name for p in model_root.iterdir() if not p.name.startswith(".")] == []
    )
