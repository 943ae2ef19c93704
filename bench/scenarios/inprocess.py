"""Scenario 1, the in-process limit: the SavedModel's ``serving_default`` signature called directly in
Python, batch 1 and batch 32 - the ceiling for anything that serves it.

Runs in a child process (``python -m bench.scenarios.inprocess MODEL_DIR SECONDS``, JSON on stdout) so
TensorFlow's thread pools and the model's memory are gone before the servers are measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["measure", "run"]


def measure(model_dir: Path, seconds: float, batches: tuple[int, ...] = (1, 32)) -> dict[str, Any]:
    import numpy as np
    import tensorflow as tf

    function = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    for batch in batches:
        image = tf.constant(rng.random((batch, 28, 28, 1), dtype=np.float32))
        for _ in range(5):  # trace and warm
            function(image=image)
        calls, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            function(image=image)["probabilities"].numpy()
            calls += 1
        out[f"batch{batch}"] = {
            "batch": batch,
            "calls": calls,
            "seconds": elapsed,
            "images_per_s": calls * batch / elapsed,
            "ms_per_call": elapsed / calls * 1000,
        }
    return out


def run(ctx: Any) -> None:
    model_dir = ctx.model_path("fashion")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-m", "bench.scenarios.inprocess", str(model_dir), str(ctx.settings.inprocess_s)],
        capture_output=True,
        text=True,
        env=env,
        timeout=ctx.settings.inprocess_s * 4 + 120,
        check=False,
    )
    if done.returncode != 0:
        ctx.skip("inprocess", f"the in-process run failed: {done.stderr.strip().splitlines()[-1:]}")
        return
    ctx.results["inprocess"] = json.loads(done.stdout.strip().splitlines()[-1])
    for key, value in ctx.results["inprocess"].items():
        ctx.say(
            f"in-process {key}: {value['images_per_s']:.0f} images/s ({value['ms_per_call']:.2f} ms/call)"
        )


if __name__ == "__main__":
    print(json.dumps(measure(Path(sys.argv[1]), float(sys.argv[2]))))
