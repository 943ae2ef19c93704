"""Scenario 1, the in-process limit: the SavedModel's ``serving_default`` signature called directly in
Python, batch 1 and batch 32 - the ceiling for anything that serves it.

It also measures the per-call cost of the two execution paths at batch 1 and 32, alternating rounds in one
process: the TF2 Python path (``tf.saved_model.load`` + ConcreteFunction, what the modelserver ran before) and
the TF Serving path the modelserver runs now (TensorFlow's C++ loader and ``TF_SessionRun`` through
``modelserver.runtime.servable``: numpy in, numpy out, the GIL released while TensorFlow runs).

Runs in a child process (``python -m bench.scenarios.inprocess MODEL_DIR SECONDS``, JSON on stdout) so
TensorFlow's thread pools and the model's memory are gone before the servers are measured.

The limit is the best of two thread rules, each in a child of its own (TensorFlow sizes its process-wide
intra-op pool once, from the first session):

- TensorFlow's default pools, one caller (``batch1`` / ``batch32`` above);
- the intra-op pool at one thread (``--tensorflow_intra_op_parallelism=1``, what the bench's model servers run)
  through the C++ session, batch 1 from one caller and batch 32 from one caller per core - how the model
  server's batch threads use it (``intra_op_1``).

``best(inprocess, batch)`` picks the limit: the most images/s at that batch (and, at batch 1, the least ms per
call: the c1 latency goals' baseline) over both rules, named by its rule.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.servers import INTRA_OP_THREADS

__all__ = [
    "INTRA_OP_RULE",
    "RULES",
    "best",
    "execution_paths",
    "measure",
    "measure_intra_op",
    "rule_entries",
    "run",
    "timed_calls",
]

ROUNDS = 4
INTRA_OP_RULE = "intra_op_1"
RULES = {"default": "TensorFlow's default pools, 1 caller", INTRA_OP_RULE: "intra-op pool 1 thread"}


def timed_calls(call: Callable[[], object], batch: int, seconds: float, callers: int = 1) -> dict[str, Any]:
    """``call`` (one batch of ``batch`` images) repeated from ``callers`` threads for ``seconds`` (at least
    twice each): images/s over all of them, ms per call as each caller sees it, and CPU ms per image over every
    thread of the process."""
    counts = [0] * callers
    cpu, started = time.process_time(), time.perf_counter()
    deadline = started + seconds

    def caller(i: int) -> None:
        while time.perf_counter() < deadline or counts[i] < 2:
            call()
            counts[i] += 1

    threads = [threading.Thread(target=caller, args=(i,), daemon=True) for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed, calls = time.perf_counter() - started, sum(counts)
    return {
        "batch": batch,
        "callers": callers,
        "calls": calls,
        "seconds": elapsed,
        "images_per_s": calls * batch / elapsed,
        "ms_per_call": elapsed * callers / calls * 1000,
        "cpu_ms_per_image": (time.process_time() - cpu) / (calls * batch) * 1000,  # all threads
    }


def rule_entries(inprocess: dict[str, Any]) -> tuple[tuple[str, dict[str, Any]], ...]:
    """Each thread rule's measurements (``batch<N>`` keys) in an ``inprocess`` result: the default rule's are
    its own keys, the intra-op rule's under ``intra_op_1`` (empty in results from before the second rule)."""
    return (("default", inprocess), (INTRA_OP_RULE, inprocess.get(INTRA_OP_RULE, {})))


def best(inprocess: dict[str, Any], batch: int) -> dict[str, Any]:
    """The limit at ``batch`` over the rules measured (empty when none was): the most images/s, and at batch 1
    the least ms per call; ``rule`` names the rule it came from."""
    key = f"batch{batch}"
    found = [{**entry[key], "rule": RULES[rule]} for rule, entry in rule_entries(inprocess) if key in entry]
    if not found:
        return {}
    if batch == 1:
        return min(found, key=lambda e: e["ms_per_call"])
    return max(found, key=lambda e: e["images_per_s"])


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
        out[f"batch{batch}"] = timed_calls(
            lambda image=image: function(image=image)["probabilities"].numpy(), batch, seconds
        )
    out["execution"] = execution_paths(model_dir, seconds, batches)
    return out


def measure_intra_op(model_dir: Path, seconds: float, callers: int) -> dict[str, Any]:
    """The C++ session with its intra-op pool at one thread: batch 1 from one caller, batch 32 from
    ``callers`` (call before anything else makes a TensorFlow session in this process)."""
    import numpy as np

    from modelserver.runtime.loader import Loader
    from modelserver.runtime.warmup import WarmupOptions

    servable = Loader(
        "fashion", 1, model_dir, WarmupOptions(enabled=False), intra_op_threads=INTRA_OP_THREADS
    ).load()
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    for batch, threads in ((1, 1), (32, callers)):
        image = rng.random((batch, 28, 28, 1), dtype=np.float32)
        for _ in range(5):
            servable.run("serving_default", {"image": image})
        out[f"batch{batch}"] = timed_calls(
            lambda image=image: servable.run("serving_default", {"image": image}), batch, seconds, threads
        )
    Loader.unload(servable)
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


def _child(ctx: Any, *args: str) -> dict[str, Any] | None:
    model_dir = ctx.model_path("fashion")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.scenarios.inprocess",
            str(model_dir),
            str(ctx.settings.inprocess_s),
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=ctx.settings.inprocess_s * 4 + 120,
        check=False,
    )
    if done.returncode != 0:
        ctx.skip("inprocess", f"the in-process run failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def run(ctx: Any) -> None:
    measured = _child(ctx)
    if measured is None:
        return
    ctx.results["inprocess"] = measured
    callers = os.cpu_count() or 1
    pooled = _child(ctx, "--intra-op-1", str(callers))
    if pooled is not None:
        measured[INTRA_OP_RULE] = pooled
        for key, value in pooled.items():
            ctx.say(
                f"in-process {key}, intra-op pool 1 thread, {value['callers']} caller(s): "
                f"{value['images_per_s']:.0f} images/s ({value['ms_per_call']:.2f} ms/call)"
            )
    for key, value in measured.items():
        if key == INTRA_OP_RULE:
            continue
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
    if sys.argv[3:4] == ["--intra-op-1"]:
        print(json.dumps(measure_intra_op(Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[4]))))
    else:
        print(json.dumps(measure(Path(sys.argv[1]), float(sys.argv[2]))))
