"""The Ray Serve peer: one replica serving the same SavedModel with ``@serve.batch``.

    BENCH_MODEL_DIR=models/fashion/N BENCH_MAX_CONCURRENCY=64 RAY_USAGE_STATS_ENABLED=0 \
        python -m bench.baselines.ray_service PORT TEMP_DIR

It starts a private Ray instance (no dashboard, usage stats off, node address 127.0.0.1, logs under
``TEMP_DIR``), deploys ``FashionModel`` with ``max_ongoing_requests`` raised to the load's concurrency (Ray's
default of 5 would cap every batch at 5) and serves HTTP on ``127.0.0.1:PORT`` until SIGTERM, when it shuts
Ray down so no Ray process outlives it. ``POST /v1/models/fashion:predict`` takes ``{"instances": [...]}`` as
the modelserver's REST predict does; ``GET /v1/models/fashion`` answers 200 once the replica is serving.

Binding: the Serve HTTP proxy, which takes all the load, listens on 127.0.0.1 only. Ray's own gRPC servers
(GCS, raylet, every worker) listen on all interfaces whatever the settings - ``GrpcServer::Run`` picks
``0.0.0.0`` unless a component asks for localhost, and none of these does, with no flag or variable to change
it in Ray 2.60 - and so do its dashboard agent and runtime-env agent on the node's address. Ray 2.60 requires
its cluster token on those (token authentication is on by default). The bench records every such listener
in the results instead of refusing Ray (servers.RAY_EXPOSED); no load is ever sent to them.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any

import numpy as np

__all__ = ["main", "parse_instances", "split_rows", "stack_rows"]

# Same as the modelserver's batching (max_batch_size 64, batch_timeout_micros 2000).
MAX_BATCH = 64
BATCH_WAIT_S = 0.002
# The model it serves (BENCH_MODEL_NAME, default fashion) and one image's shape (BENCH_INPUT_SHAPE, "H,W,C").
MODEL = os.environ.get("BENCH_MODEL_NAME", "fashion")
SHAPE = tuple(int(x) for x in os.environ.get("BENCH_INPUT_SHAPE", "28,28,1").split(","))
OUTPUT = os.environ.get("BENCH_OUTPUT_NAME", "probabilities")  # serving_default's output it answers with


def stack_rows(parts: list[np.ndarray]) -> np.ndarray:
    """One batch of the requests' images (each request may hold several)."""
    return np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]


def split_rows(outputs: np.ndarray, parts: list[np.ndarray]) -> list[np.ndarray]:
    """The batch's outputs cut back into one block of rows per request, in order."""
    ends = np.cumsum([len(p) for p in parts])[:-1]
    return list(np.split(outputs, ends))


def parse_instances(body: bytes, shape: tuple[int, ...] = (28, 28, 1)) -> np.ndarray:
    """``{"instances": [HxWxC images]}`` -> float32 [n, *shape]; ValueError saying what is wrong."""
    try:
        instances = json.loads(body)["instances"]
        return np.asarray(instances, dtype=np.float32).reshape(-1, *shape)
    except (KeyError, TypeError, ValueError) as exc:
        size = "x".join(str(d) for d in shape)
        raise ValueError(f'the body must be {{"instances": [{size} images]}}: {exc}') from None


def _deployment(max_ongoing: int) -> Any:
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    @serve.deployment(num_replicas=1, max_ongoing_requests=max_ongoing, ray_actor_options={"num_cpus": 0})
    class FashionModel:
        def __init__(self, model_dir: str) -> None:
            import tensorflow as tf

            self._tf = tf
            self._predict = tf.saved_model.load(model_dir).signatures["serving_default"]

        @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=BATCH_WAIT_S)
        async def _batch(self, parts: list[np.ndarray]) -> list[np.ndarray]:
            image = self._tf.constant(stack_rows(parts))
            return split_rows(self._predict(image=image)[OUTPUT].numpy(), parts)

        async def __call__(self, request: Request) -> JSONResponse:
            if request.method == "GET":
                return JSONResponse({"model": MODEL, "state": "AVAILABLE"})
            try:
                rows = parse_instances(await request.body(), SHAPE)
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            return JSONResponse({"predictions": (await self._batch(rows)).tolist()})

    return FashionModel


def main(port: int, temp_dir: str) -> None:
    import ray
    from ray import serve

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    ray.init(
        num_cpus=os.cpu_count() or 2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        _temp_dir=temp_dir,
        object_store_memory=80 * 2**20,
        log_to_driver=False,
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        model = _deployment(int(os.environ.get("BENCH_MAX_CONCURRENCY", "64")))
        serve.run(model.bind(os.environ["BENCH_MODEL_DIR"]), name=MODEL, route_prefix="/v1/models")
        print(f"ray serve ready on 127.0.0.1:{port}", flush=True)
        stop.wait()
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
