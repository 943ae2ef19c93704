"""The real-size model of the bench (issue 30): MobileNetV2 (alpha 1.0, 224x224x3, 1000 classes) with random
weights - nothing downloaded; the architecture is what costs - as a SavedModel the modelserver loads.

``serving_default``: ``image`` float32 [-1, 224, 224, 3] in [0, 1] -> ``probabilities`` float32 [-1, 1000].

``make bench`` publishes it through the stack's own export path once (``make models-mobilenet``: ``keras``
below writes ``mobilenet.keras`` - raw pixels in, ``Rescaling`` to MobileNetV2's [-1, 1] inside - then
``python -m export publish mobilenet.keras --name mobilenet`` into ``models/``, about 2-4 minutes on 2 cores:
contract, warm-up, frozen graph and the C++ loader gate included); the bench copies the latest published
version. Without one (``make bench-smoke``, the tests), ``build`` below exports a SavedModel with the same
architecture directly, in about 40 s (``serving_default``: ``image`` in [0, 1]; the gateway infers its image
contract from that signature).

Child-process entry points (TensorFlow stays out of the bench process, whose PSS would share its pages):

    python -m bench.mobilenet keras FILE.keras         # the Keras model export publish takes
    python -m bench.mobilenet build OUT_DIR            # OUT_DIR (a version folder) written by one rename
    python -m bench.mobilenet inprocess MODEL_DIR SECONDS BATCH[,BATCH...] [INTRA_OP CALLERS]  # JSON on stdout
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["INPUT", "OUTPUT", "SIDE", "build", "inprocess", "keras_model", "sample_jpegs"]

SIDE = 224
INPUT, OUTPUT = "image", "probabilities"


def keras_model() -> Any:
    """MobileNetV2 taking raw pixels [0, 255] (``Rescaling`` inside, which export publish reads as the input
    range), input ``image`` [-1, 224, 224, 3], random weights (seed 0)."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIDE, SIDE, 3), name=INPUT)
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    base = keras.applications.MobileNetV2(
        input_shape=(SIDE, SIDE, 3), alpha=1.0, include_top=True, weights=None, classes=1000
    )
    return keras.Model(inputs, base(scaled), name="mobilenet_v2")


def build(out: Path) -> Path:
    """Write the SavedModel to ``out`` (a version folder; staged beside it, then one rename)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(
        input_shape=(SIDE, SIDE, 3), alpha=1.0, include_top=True, weights=None, classes=1000
    )

    from export.training import track_weights  # the export's way: the C++ loader restores every weight

    @tf.function(input_signature=[tf.TensorSpec([None, SIDE, SIDE, 3], tf.float32, name=INPUT)])
    def serve(image: tf.Tensor) -> dict[str, tf.Tensor]:
        # MobileNetV2 takes [-1, 1]; the served input is [0, 1] like the fashion model's.
        return {OUTPUT: model(image * 2.0 - 1.0, training=False)}

    servable = tf.Module()
    track_weights(servable, model)
    servable.serve = serve
    stage = out.with_name(f".tmp-{out.name}")
    tf.saved_model.save(servable, str(stage), signatures={"serving_default": servable.serve})
    os.rename(stage, out)
    return out


def sample_jpegs(data_dir: Path, count: int) -> list[bytes]:
    """``count`` JPEG photos of mixed sizes (112x112 to 448x480): Fashion-MNIST test images upscaled
    (bicubic), as RGB JPEG (quality 90) - what a client uploads and the gateway decodes and resizes."""
    import io

    from PIL import Image

    from bench.payloads import fashion_images

    out = []
    for i, image in enumerate(fashion_images(data_dir, count)):
        side = (112, 224, 320, 448)[i % 4]
        picture = Image.fromarray(image, mode="L").resize(
            (side, side + 16 * (i % 3)), Image.Resampling.BICUBIC
        )
        buffer = io.BytesIO()
        picture.convert("RGB").save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def inprocess(
    model_dir: Path, seconds: float, batches: tuple[int, ...], intra_op: int = 0, callers: int = 1
) -> dict[str, Any]:
    """images/s, ms per call and CPU ms per image (every thread of the process) at each batch through the C++
    session the modelserver runs (``modelserver.runtime``: TensorFlow's loader and ``TF_SessionRun``, GIL
    released), from ``callers`` threads, the intra-op pool at ``intra_op`` threads (0: TensorFlow's choice;
    process-wide, so one rule per process); ``best`` is the batch with the most images/s - the limit any
    server of this model has on this machine under that rule."""
    import numpy as np

    from bench.scenarios.inprocess import timed_calls
    from modelserver.runtime.loader import Loader
    from modelserver.runtime.warmup import WarmupOptions

    servable = Loader(
        "mobilenet", 1, model_dir, WarmupOptions(enabled=False), intra_op_threads=intra_op
    ).load()
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    for batch in batches:
        image = rng.random((batch, SIDE, SIDE, 3), dtype=np.float32)
        for _ in range(2):  # warm
            servable.run("serving_default", {INPUT: image})
        out[f"batch{batch}"] = timed_calls(
            lambda image=image: servable.run("serving_default", {INPUT: image}), batch, seconds, callers
        )
    Loader.unload(servable)
    best = max((v for v in out.values()), key=lambda v: v["images_per_s"])
    out["best"] = dict(best)
    return out


if __name__ == "__main__":
    if sys.argv[1] == "keras":
        keras_model().save(sys.argv[2])
    elif sys.argv[1] == "build":
        build(Path(sys.argv[2]))
    elif sys.argv[1] == "inprocess":
        batches = tuple(int(b) for b in sys.argv[4].split(","))
        rule = [int(x) for x in sys.argv[5:7]]  # INTRA_OP CALLERS
        print(json.dumps(inprocess(Path(sys.argv[2]), float(sys.argv[3]), batches, *rule)))
    else:
        raise SystemExit(f"unknown command {sys.argv[1]!r}: keras, build or inprocess")
