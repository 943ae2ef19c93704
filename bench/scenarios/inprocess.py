"""Scenario 1, the in-process limit: the SavedModel's ``serving_default`` signature called directly in
Python, batch 1 and batch 32 - the ceiling for anything that serves it.

It also measures the per-call cost of the two execution paths at batch 1 and 32, alternating rounds in one
process: the TF2 Python path (``tf.saved_model.load`` + ConcreteFunction, what the modelserver ran before) and
the TF Serving path the modelserver runs now (TensorFlow's C++ loader and ``TF_SessionRun`` through
``modelserver.runtime.servable``: numpy in, numpy out, the GIL released while TensorFlow runs).

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

__all__ = ["execution_paths", "measure", "run"]

ROUNDS = 4


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
        calls, cpu, started = 0, time.process_time(), time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            function(image=image)["probabilities"].numpy()
            calls += 1
        out[f"batch{batch}"] = {
            "batch": batch,
            "calls": calls,
            "seconds": elapsed,
            "images_per_s": calls * batch / elapsed,
            "ms_per_call": elapsed / calls * 1000,
            "cpu_ms_per_image": (time.process_time() - cpu) / (calls * batch) * 1000,  # all threads
        }
    out["execution"] = execution_paths(model_dir, seconds, batches)
    return out


def execution_paths(model_dir: Path, seconds: float, batches: tuple[int, ...]) -> dict[str, Any]:
    """ms per call of each path and batch, over ``ROUNDS`` alternating rounds of ``seconds / ROUNDS``."""
    import numpy as np
    import tensorflow as tf

    from modelserver.runtime.loader import Loader
    from modelserver.runtime.warmup import WarmupOptions

    function = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    servable = Loader("fashion", 1, model_dir, WarmupOptions(enabled=False)).load()
    rng = np.random.default_rng(1)
    paths = {
        "function": lambda x: function(image=tf.constant(x))["probabilities"].numpy(),
        "session": lambda x: servable.run("serving_default", {"image": x})["probabilities"],
    }
    totals = {(p, b): [0, 0.0] for p in paths for b in batches}
    for _ in range(ROUNDS):
        for batch in batches:
            image = rng.random((batch, 28, 28, 1), dtype=np.float32)
            for name, call in paths.items():
                for _ in range(3):
                    call(image)
                calls, started = 0, time.perf_counter()
                while time.perf_counter() - started < seconds / ROUNDS:
                    call(image)
                    calls += 1
                totals[(name, batch)][0] += calls
                totals[(name, batch)][1] += time.perf_counter() - started
    Loader.unload(servable)
    result: dict[str, Any] = {}
    for (name, batch), (calls, elapsed) in totals.items():
        result.setdefault(name, {})[f"batch{batch}"] = {"calls": calls, "ms_per_call": elapsed / calls * 1000}
    for batch in batches:
        key = f"batch{batch}"
        result.setdefault("session_over_function", {})[key] = (
            result["session"][key]["ms_per_call"] / result["function"][key]["ms_per_call"]
        )
    return result


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
        if key == "execution":
            for batch, ratio in value["session_over_function"].items():
                ctx.say(
                    f"execution {batch}: C++ session {value['session'][batch]['ms_per_call']:.3f} ms/call, "
                    f"ConcreteFunction {value['function'][batch]['ms_per_call']:.3f} ms/call ({ratio:.2f}x)"
                )
            continue
        ctx.say(
            f"in-process {key}: {value['images_per_s']:.0f} images/s ({value['ms_per_call']:.2f} ms/call)"
        )


if __name__ == "__main__":
    print(json.dumps(measure(Path(sys.argv[1]), float(sys.argv[2]))))
