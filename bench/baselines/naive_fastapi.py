"""The naive baseline: what people write by hand - a FastAPI app that calls Keras ``model.predict`` once per
request (the SavedModel wrapped in a ``TFSMLayer``), in FastAPI's thread pool, no batching.

    python -m bench.baselines.naive_fastapi MODEL_DIR PORT      (binds 127.0.0.1 only)

It is deliberately the common pattern, not a strawman: one process, one model, sync endpoint, warmed once at
start. Bad JSON gets a 400 (or pydantic's 422) with a message, not a traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

__all__ = ["create_app"]


class PredictBody(BaseModel):
    instances: list[Any]


def create_app(model_dir: str) -> FastAPI:
    import keras

    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.TFSMLayer(model_dir, call_endpoint="serving_default")]
    )
    # One call before serving, so Keras traces its predict function at start and not in the first request.
    model.predict(np.zeros((1, 28, 28, 1), dtype=np.float32), verbose=0)
    app = FastAPI(title="naive baseline")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/models/fashion:predict")
    def predict(body: PredictBody) -> dict[str, Any]:
        try:
            batch = np.asarray(body.instances, dtype=np.float32).reshape(-1, 28, 28, 1)
        except ValueError as exc:
            raise HTTPException(400, f"instances must be 28x28x1 float images: {exc}") from None
        result = model.predict(batch, verbose=0)
        probabilities = result["probabilities"] if isinstance(result, dict) else result
        return {"predictions": np.asarray(probabilities).tolist()}

    return app


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(
        create_app(sys.argv[1]),
        host="127.0.0.1",
        port=int(sys.argv[2]),
        log_level="warning",
        access_log=False,
    )
