"""The peer: BentoML 1.4 serving the same SavedModel with adaptive batching (``batchable=True``).

    BENCH_MODEL_DIR=models/fashion/N bentoml serve bench.baselines.bento_service:FashionService \
        --host 127.0.0.1 --port PORT

The body is ``{"instances": [[28x28x1 image], ...]}`` as for the modelserver's REST predict; BentoML merges
concurrent requests along axis 0 up to ``max_batch_size`` within ``max_latency_ms``.
"""

from __future__ import annotations

import os

import bentoml
import numpy as np

__all__ = ["FashionService"]

# The model it serves (BENCH_MODEL_NAME, default fashion) and one image's shape (BENCH_INPUT_SHAPE, "H,W,C"):
# the real-size scenario serves MobileNetV2 (224,224,3) through the same service.
MODEL = os.environ.get("BENCH_MODEL_NAME", "fashion")
SHAPE = tuple(int(x) for x in os.environ.get("BENCH_INPUT_SHAPE", "28,28,1").split(","))
OUTPUT = os.environ.get("BENCH_OUTPUT_NAME", "probabilities")  # serving_default's output it answers with


@bentoml.service(workers=1, traffic={"timeout": 30})
class FashionService:
    def __init__(self) -> None:
        import tensorflow as tf

        self._tf = tf
        self._predict = tf.saved_model.load(os.environ["BENCH_MODEL_DIR"]).signatures["serving_default"]

    @bentoml.api(
        route=f"/v1/models/{MODEL}:predict",
        batchable=True,
        batch_dim=(0, 0),
        max_batch_size=64,
        max_latency_ms=1000,
    )
    def predict(self, instances: np.ndarray) -> np.ndarray:
        image = self._tf.constant(np.asarray(instances, dtype=np.float32).reshape(-1, *SHAPE))
        return self._predict(image=image)[OUTPUT].numpy()
