"""The SavedModels that TF Serving's ``test_tf_saved_model_save*``, ``test_sequential_keras_saved_model_save``
and ``test_distrat_sequential_keras_saved_model_save`` write at test time, with the original's code.

Run in a child process (``python -m tests.tfs_conformance.write_models <out_dir>``): the distribution-strategy
case needs two virtual CPUs, which TensorFlow accepts only before its runtime starts, and the pytest process
keeps its own TensorFlow state untouched. Writes ``<out_dir>/<case>/00000123`` for each case.
"""

from __future__ import annotations

import os
import sys

import tensorflow.compat.v1 as tf
from tensorflow.python.saved_model import signature_constants

__all__ = ["CASES", "main"]


def set_virtual_cpus(num_virtual_cpus: int) -> None:
    """Create virtual CPU devices if they haven't yet been created (``SetVirtualCpus`` of the test base)."""
    physical_devices = tf.config.experimental.list_physical_devices("CPU")
    if not physical_devices:
        raise RuntimeError("No CPUs found")
    configs = tf.config.experimental.get_virtual_device_configuration(physical_devices[0])
    if configs is None:
        virtual_devices = [
            tf.config.experimental.VirtualDeviceConfiguration() for _ in range(num_virtual_cpus)
        ]
        tf.config.experimental.set_virtual_device_configuration(physical_devices[0], virtual_devices)
    elif len(configs) < num_virtual_cpus:
        raise RuntimeError(f"Already configured with {len(configs)} < {num_virtual_cpus} virtual CPUs")


def tf_saved_model_save(export_path: str) -> None:
    root = tf.train.Checkpoint()
    root.v1 = tf.Variable(3.0)
    root.v2 = tf.Variable(2.0)
    root.f = tf.function(lambda x: {"y": root.v1 * root.v2 * x})
    to_save = root.f.get_concrete_function(tf.TensorSpec(None, tf.float32))
    tf.saved_model.experimental.save(root, export_path, to_save)


def tf_saved_model_save_multiple_signatures(export_path: str) -> None:
    root = tf.train.Checkpoint()
    root.f = tf.function(lambda x: {"y": 1.0}, input_signature=[tf.TensorSpec(None, tf.float32)])
    root.g = tf.function(lambda x: {"y": 2.0}, input_signature=[tf.TensorSpec(None, tf.float32)])
    tf.saved_model.experimental.save(
        root,
        export_path,
        signatures={
            signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY: root.f,
            "custom_signature_key": root.g,
        },
    )


def sequential_keras_saved_model_save(export_path: str) -> None:
    model = tf.keras.models.Sequential()
    model.add(tf.keras.layers.Input(dtype="float32", shape=(1,), name="x"))
    model.add(tf.keras.layers.Lambda(lambda x: x, name="y"))
    tf.saved_model.save(model, export_path)


def distrat_sequential_keras_saved_model_save(export_path: str) -> None:
    strategy = tf.distribute.MirroredStrategy(devices=("/cpu:0", "/cpu:1"))
    with strategy.scope():
        model = tf.keras.models.Sequential()
        model.add(tf.keras.layers.Input(dtype="float32", shape=(1,), name="x"))
        model.add(tf.keras.layers.Dense(1, kernel_initializer="ones", bias_initializer="zeros"))
        model.add(tf.keras.layers.Lambda(lambda x: x, name="y"))
    tf.saved_model.save(model, export_path)


CASES = {
    "tf_saved_model_save": tf_saved_model_save,
    "tf_saved_model_save_multiple_signatures": tf_saved_model_save_multiple_signatures,
    "keras_sequential_saved_model_save": sequential_keras_saved_model_save,
    "distrat_keras_sequential_saved_model_save": distrat_sequential_keras_saved_model_save,
}


def main(out_dir: str) -> int:
    tf.enable_eager_execution()
    set_virtual_cpus(2)
    for case, write in CASES.items():
        write(os.path.join(out_dir, case, "00000123"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
