"""The KServe peer: KServe's Python model server (v1 protocol) serving the same SavedModel.

    BENCH_MODEL_DIR=models/fashion/N python -m bench.baselines.kserve_service PORT

``POST /v1/models/fashion:predict`` takes ``{"instances": [...]}`` as the modelserver's REST predict does;
``GET /v1/models/fashion`` answers 200 once the model is loaded. ``predict`` is a plain function, as in
KServe's own model servers (KServe calls it on its event loop; it has no batching of its own).

Binding: KServe 0.21's ``RESTServer`` hard-codes ``host="0.0.0.0"`` in its ``uvicorn.Config`` and the
gRPC server listens on ``[::]``; neither has a flag or setting for the address. So gRPC is switched off
(``enable_grpc=False``, supported) and ``LoopbackRESTServer`` - a subclass that only rewrites the config's
host to 127.0.0.1 - is put in place of ``kserve.model_server.RESTServer`` before the server starts. The bench
checks the listening sockets of the whole process tree, so a KServe release that changes this fails loudly.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import numpy as np

__all__ = ["LOOPBACK", "build_model", "serve"]

LOOPBACK = "127.0.0.1"
# The model it serves (BENCH_MODEL_NAME, default fashion) and one image's shape (BENCH_INPUT_SHAPE, "H,W,C").
MODEL = os.environ.get("BENCH_MODEL_NAME", "fashion")
SHAPE = tuple(int(x) for x in os.environ.get("BENCH_INPUT_SHAPE", "28,28,1").split(","))
OUTPUT = os.environ.get("BENCH_OUTPUT_NAME", "probabilities")  # serving_default's output it answers with


def build_model(model_dir: str) -> Any:
    """A loaded ``kserve.Model`` named ``fashion`` calling the SavedModel's ``serving_default``."""
    import kserve
    from kserve.errors import InvalidInput

    class FashionModel(kserve.Model):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(MODEL)
            self._tf: Any = None
            self._predict: Any = None

        def load(self) -> bool:
            import tensorflow as tf

            self._tf = tf
            self._predict = tf.saved_model.load(model_dir).signatures["serving_default"]
            self.ready = True
            return self.ready

        def predict(self, payload: Any, headers: Any = None) -> dict[str, Any]:
            try:
                rows = np.asarray(payload["instances"], dtype=np.float32).reshape(-1, *SHAPE)
            except (KeyError, TypeError, ValueError) as exc:
                raise InvalidInput(f'the body must be {{"instances": [{SHAPE} images]}}: {exc}') from None
            outputs = self._predict(image=self._tf.constant(rows))[OUTPUT].numpy()
            return {"predictions": outputs.tolist()}

    model = FashionModel()
    model.load()
    return model


def serve(port: int, model_dir: str) -> None:
    # KServe parses sys.argv when kserve.model_server is imported; keep our own arguments away from it.
    sys.argv = sys.argv[:1]
    import kserve
    import kserve.model_server as model_server

    class LoopbackRESTServer(model_server.RESTServer):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.config.host = LOOPBACK

    model_server.RESTServer = LoopbackRESTServer
    server = kserve.ModelServer(http_port=port, enable_grpc=False, workers=1, enable_latency_logging=False)
    # Its timing middleware logs a line per request at INFO; ours logs none, so neither pays for it.
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    server.start([build_model(model_dir)])


if __name__ == "__main__":
    serve(int(sys.argv[1]), os.environ["BENCH_MODEL_DIR"])
