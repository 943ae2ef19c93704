"""Hand-built SavedModels with known functions, for exact answers in modelserver tests (and the gateway's).

Built with plain ``tf.Module`` + ``tf.saved_model.save`` (about a second each); call the builders once per
session and copy the folders (``shutil.copytree``) into each test's model repository.

- ``half_plus_two``: TF Serving's testdata model. ``serving_default``: ``x`` float32 [-1] -> ``y`` = a*x + b
  (a=0.5, b=2 by default; ``b=3`` gives half_plus_three). ``classify_x_to_y`` (classify: tf.Example feature
  ``x`` -> ``scores`` [-1,1]), ``regress_x_to_y`` (regress -> ``outputs`` [-1,1]), ``regress_x_to_y2``
  (feature ``x2`` -> a*x2 + 3), and ``tensorflow/serving/regress`` / ``tensorflow/serving/classify`` keys
  as in TF Serving's half_plus_three example. ``contract=`` adds the export's no-input ``contract``
  signature answering that JSON. ``delay=(per_call, per_row)`` seconds makes ``serving_default`` sleep that
  long (a slow version, without burning CPU: tf.data's sleep).
- ``multi_input``: ``a`` float32 [-1,2] and ``b`` float32 [-1] -> ``sum`` = a0+a1+b [-1] and ``scaled`` = a*b
  [-1,2].
- ``strings``: ``text`` string [-1] -> ``length`` int32 [-1], ``upper_bytes`` string [-1] (upper-cased; the
  ``_bytes`` suffix makes REST emit base64).
- ``corrupt_version(src, dst, kind)``: a copy with a truncated ``saved_model.pb`` or without ``variables/``.
- ``write_warmup(version_dir, records)`` / ``predict_log(...)``: ``assets.extra/tf_serving_warmup_requests``.
- ``publish(src, base, version)``: copy a built model in as ``base/<version>`` the way the export does (hidden
  staging name, then one atomic rename), so a polling server never sees a half-written version.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "CLASSIFY_METHOD",
    "REGRESS_METHOD",
    "corrupt_version",
    "half_plus_two",
    "multi_input",
    "predict_log",
    "publish",
    "set_method_names",
    "strings",
    "write_warmup",
]

CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


def set_method_names(version_dir: Path, methods: dict[str, str]) -> None:
    """Rewrite signature method names in saved_model.pb (the TF2 saver writes every signature as predict)."""
    from tensorflow.core.protobuf import saved_model_pb2

    path = version_dir / "saved_model.pb"
    saved_model = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    for meta_graph in saved_model.meta_graphs:
        for key, method in methods.items():
            meta_graph.signature_def[key].method_name = method
    path.write_bytes(saved_model.SerializeToString())


def half_plus_two(
    version_dir: Path,
    *,
    a: float = 0.5,
    b: float = 2.0,
    contract: Mapping[str, Any] | None = None,
    delay: tuple[float, float] = (0.0, 0.0),
) -> Path:
    import tensorflow as tf
    from tensorflow.python.data.experimental.ops import testing as data_testing

    contract_text = json.dumps(contract) if contract is not None else ""

    class HalfPlusTwo(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = tf.Variable(a, dtype=tf.float32, name="a")
            self.b = tf.Variable(b, dtype=tf.float32, name="b")
            self.c = tf.Variable(3.0, dtype=tf.float32, name="c")

        def _feature(self, serialized: tf.Tensor, key: str) -> tf.Tensor:
            parsed = tf.io.parse_example(serialized, {key: tf.io.FixedLenFeature([1], tf.float32)})
            return parsed[key]

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def predict(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            if delay == (0.0, 0.0):
                return {"y": self.a * x + self.b}
            micros = tf.cast(delay[0] * 1e6 + delay[1] * 1e6 * tf.cast(tf.size(x), tf.float64), tf.int64)
            slept = (
                tf.data.Dataset.from_tensors(0).apply(data_testing.sleep(micros)).reduce(0, lambda s, _: s)
            )
            with tf.control_dependencies([slept]):
                return {"y": self.a * x + self.b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"scores": self.a * self._feature(inputs, "x") + self.b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"outputs": self.a * self._feature(inputs, "x") + self.b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress2(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"outputs": self.a * self._feature(inputs, "x2") + self.c}

        @tf.function(input_signature=[])
        def contract(self) -> dict[str, tf.Tensor]:
            return {"contract": tf.constant(contract_text)}

    module = HalfPlusTwo()
    signatures = {
        "serving_default": module.predict,
        "classify_x_to_y": module.classify,
        "regress_x_to_y": module.regress,
        "regress_x_to_y2": module.regress2,
        CLASSIFY_METHOD: module.classify,
        REGRESS_METHOD: module.regress,
    }
    if contract is not None:
        signatures["contract"] = module.contract
    tf.saved_model.save(module, str(version_dir), signatures=signatures)
    set_method_names(
        version_dir,
        {
            "classify_x_to_y": CLASSIFY_METHOD,
            CLASSIFY_METHOD: CLASSIFY_METHOD,
            "regress_x_to_y": REGRESS_METHOD,
            "regress_x_to_y2": REGRESS_METHOD,
            REGRESS_METHOD: REGRESS_METHOD,
        },
    )
    return version_dir


def multi_input(version_dir: Path) -> Path:
    import tensorflow as tf

    class MultiInput(tf.Module):
        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 2], tf.float32, name="a"),
                tf.TensorSpec([None], tf.float32, name="b"),
            ]
        )
        def predict(self, a: tf.Tensor, b: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"sum": tf.reduce_sum(a, axis=1) + b, "scaled": a * tf.expand_dims(b, 1)}

    module = MultiInput()
    tf.saved_model.save(module, str(version_dir), signatures={"serving_default": module.predict})
    return version_dir


def strings(version_dir: Path) -> Path:
    import tensorflow as tf

    class Strings(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def predict(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"length": tf.strings.length(text), "upper_bytes": tf.strings.upper(text)}

    module = Strings()
    tf.saved_model.save(module, str(version_dir), signatures={"serving_default": module.predict})
    return version_dir


def corrupt_version(source: Path, target: Path, kind: str) -> Path:
    """Copy ``source`` to ``target`` and break it: ``truncated`` saved_model.pb or ``missing_variables``."""
    shutil.copytree(source, target)
    if kind == "truncated":
        pb = target / "saved_model.pb"
        pb.write_bytes(pb.read_bytes()[: max(1, pb.stat().st_size // 3)])
    elif kind == "missing_variables":
        shutil.rmtree(target / "variables")
    else:
        raise ValueError(f"unknown corruption {kind!r}")
    return target


def predict_log(inputs: dict[str, Sequence[float]], signature_name: str = "") -> bytes:
    """One serialized PredictionLog with a float32 Predict request."""
    import numpy as np
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = signature_name
    for name, values in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(values, dtype=np.float32)))
    log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    return log.SerializeToString()


def write_warmup(version_dir: Path, records: Iterable[bytes]) -> Path:
    import tensorflow as tf

    path = version_dir / "assets.extra" / "tf_serving_warmup_requests"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return path


def publish(source: Path, base: Path, version: int) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    staging = base / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    shutil.copytree(source, staging)
    target = base / str(version)
    os.rename(staging, target)
    return target
