"""``assets.extra/tf_serving_warmup_requests``: a TFRecord of ``PredictionLog`` records, a few per signature,
in the format TensorFlow Serving replays at load time (``servables/tensorflow/saved_model_warmup.cc``).

The ``explain`` signature (integrated gradients: steps x rows forward and backward passes) gets one record,
one row at one step: that builds its executor as well as a full request does. Measured on a published
MobileNetV2 (2026-12-06, 2 runs each): its three held-out records at 32 steps made the load take 15.1-16.1 s
instead of 9.7-9.8 s and left 596 instead of 412 MiB RssAnon, while the first 32-step explain call after the
load took as long either way (1.41 and 1.42 s vs 1.35 and 1.38 s)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    input_pb2,
    predict_pb2,
    prediction_log_pb2,
    regression_pb2,
)

from export import explain
from export.servable import CLASSIFY_METHOD, REGRESS_METHOD, Servable

__all__ = ["WARMUP_FILE", "records", "write"]

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
PER_SIGNATURE = 3


def records(servable: Servable) -> list[prediction_log_pb2.PredictionLog]:
    """``PER_SIGNATURE`` requests for every signature, with growing batch sizes 1, 2, 3, ... (``explain``: one)."""
    logs: list[prediction_log_pb2.PredictionLog] = []
    for key in sorted(servable.signatures):
        method = servable.method_names.get(key)
        feeds = servable.feeds(key)
        batches = range(1, PER_SIGNATURE + 1)
        if key == explain.SIGNATURE:
            feeds, batches = explain.warmup_feeds(feeds), range(1, 2)
        # Classify / Regress requests carry tf.Examples: only for signatures fed serialized examples.
        examples = method in (CLASSIFY_METHOD, REGRESS_METHOD) and [a.dtype for a in feeds.values()] == [
            object
        ]
        for batch in batches:
            if examples:
                (serialized,) = feeds.values()  # this signature's own examples
                example_list = input_pb2.ExampleList(
                    examples=[tf.train.Example.FromString(raw) for raw in serialized[:batch]]
                )
                if method == CLASSIFY_METHOD:
                    classify = classification_pb2.ClassificationRequest(
                        input=input_pb2.Input(example_list=example_list)
                    )
                    classify.model_spec.name = servable.name
                    classify.model_spec.signature_name = key
                    logs.append(
                        prediction_log_pb2.PredictionLog(
                            classify_log=prediction_log_pb2.ClassifyLog(request=classify)
                        )
                    )
                else:
                    regress = regression_pb2.RegressionRequest(
                        input=input_pb2.Input(example_list=example_list)
                    )
                    regress.model_spec.name = servable.name
                    regress.model_spec.signature_name = key
                    logs.append(
                        prediction_log_pb2.PredictionLog(
                            regress_log=prediction_log_pb2.RegressLog(request=regress)
                        )
                    )
                continue
            predict = predict_pb2.PredictRequest()
            predict.model_spec.name = servable.name
            predict.model_spec.signature_name = key
            for name, values in feeds.items():
                values = np.asarray(values)
                rows = values[:batch] if values.ndim else values  # a scalar as it is
                predict.inputs[name].CopyFrom(tf.make_tensor_proto(rows))
            logs.append(
                prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=predict))
            )
            if not feeds:
                break  # no inputs: one request is all there is to warm up
    return logs


def write(servable: Servable, version_dir: Path) -> int:
    path = version_dir / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    logs = records(servable)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return len(logs)
