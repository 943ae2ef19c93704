"""assets.extra/tf_serving_warmup_requests: PredictionLog records, a few per signature, that replay."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from export.warmup import WARMUP_FILE

EXPLAIN = {"explain": "predict_log"}  # export.explain: the model's inputs + class_id + steps
EXPECTED_KINDS = {
    "fashion": {
        "serving_default": "predict_log",
        "classify": "classify_log",
        "contract": "predict_log",
        **EXPLAIN,
    },
    "text": {
        "serving_default": "predict_log",
        "classify": "classify_log",
        "contract": "predict_log",
        **EXPLAIN,
    },
    "housing": {
        "serving_default": "predict_log",
        "regress": "regress_log",
        "contract": "predict_log",
        **EXPLAIN,
    },
}


def _logs(version: Path) -> list[prediction_log_pb2.PredictionLog]:
    dataset = tf.data.TFRecordDataset(str(version / WARMUP_FILE))
    return [prediction_log_pb2.PredictionLog.FromString(raw.numpy()) for raw in dataset]


@pytest.mark.parametrize("name", sorted(EXPECTED_KINDS))
def test_warmup_records_parse_as_prediction_logs_per_signature(versions: dict[str, Path], name: str) -> None:
    logs = _logs(versions[name])
    per_signature: dict[str, list[str]] = collections.defaultdict(list)
    for log in logs:
        kind = log.WhichOneof("log_type")
        request = getattr(log, kind).request
        assert request.model_spec.name == name
        per_signature[request.model_spec.signature_name].append(kind)
    assert set(per_signature) == set(EXPECTED_KINDS[name])
    for key, kinds in per_signature.items():
        assert set(kinds) == {EXPECTED_KINDS[name][key]}
        assert 1 <= len(kinds) <= 5


@pytest.mark.parametrize("name", sorted(EXPECTED_KINDS))
def test_explain_warms_up_on_one_row_at_one_step(versions: dict[str, Path], name: str) -> None:
    # integrated gradients costs steps x rows passes: the held-out batches at 32 steps only slow the load
    explains = [
        log.predict_log.request
        for log in _logs(versions[name])
        if log.predict_log.request.model_spec.signature_name == "explain"
    ]
    assert len(explains) == 1
    steps = tf.make_ndarray(explains[0].inputs["steps"])
    assert steps.tolist() == [1]
    assert {len(tf.make_ndarray(tensor)) for tensor in explains[0].inputs.values()} == {1}


@pytest.mark.parametrize("name", sorted(EXPECTED_KINDS))
def test_warmup_requests_replay_against_the_savedmodel(
    versions: dict[str, Path], loaded: dict[str, Any], name: str
) -> None:
    for log in _logs(versions[name]):
        kind = log.WhichOneof("log_type")
        request = getattr(log, kind).request
        signature = loaded[name].signatures[request.model_spec.signature_name]
        if kind == "predict_log":
            out = signature(**{k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()})
        else:
            examples = [e.SerializeToString() for e in request.input.example_list.examples]
            assert examples
            out = signature(inputs=tf.constant(examples))
        assert out
