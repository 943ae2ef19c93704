"""Models this project did not design, built with plain Keras / TensorFlow (no project code), as a user brings
them to ``python -m export publish``; and the refusals. Every builder writes into ``directory`` and returns
the SOURCE path and a function giving the source model's own predictions (input name -> array)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2

Predict = Callable[[dict[str, np.ndarray]], np.ndarray]
SIDE = 32  # tiny images: the architecture matters, not the resolution


def _keras_predict(model: keras.Model, output: str | None = None) -> Predict:
    def predict(inputs: dict[str, np.ndarray]) -> np.ndarray:
        values = list(inputs.values())
        result = model(values[0] if len(values) == 1 else inputs, training=False)
        return np.asarray(result[output] if output else result)

    return predict


def mobilenet_keras(directory: Path, *, uint8: bool, rescaling: bool) -> tuple[Path, Predict]:
    """MobileNetV2 (random weights, alpha 0.35), 4 classes: a .keras file."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((SIDE, SIDE, 3), dtype="uint8" if uint8 else "float32", name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs) if rescaling else inputs
    base = keras.applications.MobileNetV2(
        weights=None, input_shape=(SIDE, SIDE, 3), alpha=0.35, classes=4, include_top=True
    )
    model = keras.Model(inputs, base(x))
    path = (
        directory / f"mobilenet_{'uint8' if uint8 else 'float'}_{'rescaling' if rescaling else 'plain'}.keras"
    )
    model.save(path)
    return path, _keras_predict(model)


def efficientnet_keras(directory: Path) -> tuple[Path, Predict]:
    """EfficientNetB0 as keras.applications builds it (Rescaling and Normalization inside), 3 classes."""
    keras.utils.set_random_seed(2)
    model = keras.applications.EfficientNetB0(weights=None, input_shape=(SIDE, SIDE, 3), classes=3)
    path = directory / "efficientnet.keras"
    model.save(path)
    return path, _keras_predict(model)


def mobilenet_exported(directory: Path) -> tuple[Path, Predict]:
    """MobileNetV2 with logits (no softmax), written with ``model.export()`` (a TF2 SavedModel)."""
    keras.utils.set_random_seed(3)
    model = keras.applications.MobileNetV2(
        weights=None,
        input_shape=(SIDE, SIDE, 3),
        alpha=0.35,
        classes=5,
        classifier_activation=None,
    )
    path = directory / "mobilenet_export"
    model.export(str(path), format="tf_saved_model", verbose=False)
    return path, _keras_predict(model)


def grayscale_h5(directory: Path) -> tuple[Path, Predict]:
    """A small grayscale CNN saved in the legacy HDF5 format (``.h5``)."""
    keras.utils.set_random_seed(6)
    inputs = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probs")(x))
    path = directory / "grayscale.h5"
    model.save(path)
    return path, _keras_predict(model)


def fashion_dense_keras(directory: Path) -> tuple[Path, Predict]:
    """A fashion-sized classifier (28x28x1, 10 classes) with dense weights large enough for TF Lite's
    dynamic-range quantization to take (it leaves tensors under 1024 elements float)."""
    keras.utils.set_random_seed(7)
    inputs = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Dense(32, activation="relu")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="probs")(x))
    path = directory / "fashion_dense.keras"
    model.save(path)
    return path, _keras_predict(model)


def text_keras(directory: Path) -> tuple[Path, Predict]:
    """The usual Keras text classifier: ``Input((1,), dtype="string")`` and TextVectorization inside."""
    keras.utils.set_random_seed(4)
    vectorize = keras.layers.TextVectorization(max_tokens=64, output_sequence_length=8)
    vectorize.adapt(["win free cash now", "see you at lunch", "claim your free prize", "call me later"])
    inputs = keras.Input((1,), dtype="string", name="message")
    x = keras.layers.Embedding(64, 8)(vectorize(inputs))
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="spam")(x))
    path = directory / "spam.keras"
    model.save(path)
    return path, _keras_predict(model)


def tabular_keras(directory: Path) -> tuple[Path, Predict]:
    """A functional regressor with two named inputs, each normalised by an adapted Normalization layer."""
    keras.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    rooms, income = keras.Input((1,), name="rooms"), keras.Input((1,), name="income")
    norm_rooms, norm_income = keras.layers.Normalization(), keras.layers.Normalization()
    norm_rooms.adapt(rng.normal(5.0, 2.0, (200, 1)))
    norm_income.adapt(rng.normal(40.0, 10.0, (200, 1)))
    x = keras.layers.Concatenate()([norm_rooms(rooms), norm_income(income)])
    x = keras.layers.Dense(8, activation="relu")(x)
    model = keras.Model({"rooms": rooms, "income": income}, keras.layers.Dense(1, name="price")(x))
    path = directory / "tabular.keras"
    model.save(path)
    return path, _keras_predict(model)


def tf1_classifier(directory: Path) -> tuple[Path, Predict]:
    """A tf.compat.v1 graph SavedModel: ``scores`` predict signature and a classify signature on tf.Examples
    (feature ``x``: 4 floats), 3 classes; no ``serving_default``."""
    weights = (np.arange(12, dtype=np.float32).reshape(4, 3) - 6.0) / 10.0
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        w = tf.compat.v1.get_variable("w", initializer=tf.constant(weights))
        scores = tf.nn.softmax(tf.matmul(x, w), name="scores")
        serialized = tf.compat.v1.placeholder(tf.string, [None], name="tf_example")
        parsed = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([4], tf.float32)})
        example_scores = tf.nn.softmax(tf.matmul(parsed["x"], w))
        classes = tf.tile(tf.constant([["setosa", "versicolor", "virginica"]]), [tf.shape(serialized)[0], 1])
        defs = tf.compat.v1.saved_model.signature_def_utils
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            path = directory / "tf1_classifier"
            builder = tf.compat.v1.saved_model.Builder(str(path))
            builder.add_meta_graph_and_variables(
                session,
                ["serve"],
                signature_def_map={
                    "scores": defs.predict_signature_def({"x": x}, {"scores": scores}),
                    "classify_iris": defs.classification_signature_def(serialized, classes, example_scores),
                },
            )
            builder.save()

    def predict(inputs: dict[str, np.ndarray]) -> np.ndarray:
        logits = inputs["x"].astype(np.float64) @ weights
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    return path, predict


class _Pricer(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = tf.Variable([0.5, -1.0, 2.0])
        self.b = tf.Variable(3.0)

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="features")])
    def price(self, features: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"price": tf.linalg.matvec(features, self.w) + self.b}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sku")])
    def describe(self, sku: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"label": tf.strings.join(["item-", sku])}


def custom_module(directory: Path) -> tuple[Path, Predict]:
    """A tf.Module saved with custom signature names (``price``, ``describe``) and no serving_default."""
    module = _Pricer()
    path = directory / "pricer"
    tf.saved_model.save(module, str(path), signatures={"price": module.price, "describe": module.describe})

    def predict(inputs: dict[str, np.ndarray]) -> np.ndarray:
        return inputs["features"] @ np.array([0.5, -1.0, 2.0], np.float32) + np.float32(3.0)

    return path, predict


TESTDATA = Path(__file__).resolve().parent.parent / "tfs_conformance" / "testdata"


def tfs_half_plus_two(directory: Path) -> tuple[Path, Predict]:
    """TensorFlow Serving's own TF1 testdata (reference variables, regress / classify signatures)."""

    def predict(inputs: dict[str, np.ndarray]) -> np.ndarray:
        return inputs["x"] * np.float32(0.5) + np.float32(2.0)

    return TESTDATA / "saved_model_half_plus_two_cpu" / "00000123", predict


# -- refusals --------------------------------------------------------------------------------------------


def py_function_model(directory: Path) -> Path:
    class WithPython(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.py_function(lambda v: v * 2.0, [x], tf.float32)}

    module = WithPython()
    path = directory / "py_function"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def _edit(source: Path, target: Path, change: Callable[[Any], None]) -> Path:
    """A copy of the SavedModel at ``source`` with its serving meta graph edited by ``change``."""
    import shutil

    shutil.copytree(source, target)
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((target / "saved_model.pb").read_bytes())
    change(proto.meta_graphs[0])
    (target / "saved_model.pb").write_bytes(proto.SerializeToString())
    return target


def unknown_op_model(directory: Path, tf1_path: Path) -> Path:
    """The TF1 classifier with its softmax replaced by an op only a custom build would register."""

    def change(meta_graph: Any) -> None:
        for node in meta_graph.graph_def.node:
            if node.op == "Softmax":
                node.op = "FancySoftmaxCustomOp"

    return _edit(tf1_path, directory / "unknown_op", change)


def resource_input_model(directory: Path, tf1_path: Path) -> Path:
    def change(meta_graph: Any) -> None:
        meta_graph.signature_def["scores"].inputs["x"].dtype = types_pb2.DT_RESOURCE

    return _edit(tf1_path, directory / "resource_input", change)


def no_input_model(directory: Path) -> Path:
    class Constant(tf.Module):
        @tf.function(input_signature=[])
        def serve(self) -> dict[str, tf.Tensor]:
            return {"answer": tf.constant(42.0)}

    module = Constant()
    path = directory / "no_input"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path
