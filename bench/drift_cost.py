"""``python -m bench.drift_cost [requests-per-second ...]``: the drift monitor's CPU in process, for
Fashion-MNIST-shaped traffic (one 28x28 image a request, 10-class outputs): the request path's ``observe`` per
request, and the thread's ``flush`` per 1-second interval at the default sample (100 rows a second), then
what both add per request at each request rate. The bound does not grow with the rate: the flush's work is
the same whatever the traffic."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from modelserver.observe.drift import DriftMonitor, DriftSettings
from modelserver.observe.profile import PROFILE_FILE, build_profile

IMAGES = 2000
INTERVALS = 20


def main(rates: list[int]) -> None:
    rng = np.random.default_rng(0)
    images = rng.random((IMAGES, 28, 28, 1)).astype(np.float32)
    scores = rng.random((IMAGES, 10)).astype(np.float32)
    version = Path(tempfile.mkdtemp(prefix="drift-cost-"))
    (version / PROFILE_FILE).parent.mkdir(parents=True)
    labels = [str(i) for i in range(10)]
    profile = build_profile("fashion", "classification", labels, {"image": images}, {"scores": scores})
    (version / PROFILE_FILE).write_text(json.dumps(profile))
    requests = [({"image": images[i : i + 1]}, {"scores": scores[i : i + 1]}) for i in range(IMAGES)]
    # the thread never wakes on its own (interval 1 h): flush() is called here, once per simulated second
    monitor = DriftMonitor(
        DriftSettings(interval=3600, rows_per_second=100 / 3600), registry=CollectorRegistry()
    )
    try:
        print(
            "rate req/s | observe us/request | flush ms/interval | drift CPU us/request | share of one core"
        )
        for rate in rates:
            observe = flush = 0.0
            for _ in range(INTERVALS):
                started = time.thread_time()
                for i in range(rate):
                    inputs, outputs = requests[i % IMAGES]
                    monitor.observe("fashion", 1, version, inputs, outputs)
                observe += time.thread_time() - started
                started = time.thread_time()
                monitor.flush()
                flush += time.thread_time() - started
            per_request = (observe + flush) / (INTERVALS * rate)
            print(
                f"{rate} | {observe / (INTERVALS * rate) * 1e6:.2f} | {flush / INTERVALS * 1e3:.2f} | "
                f"{per_request * 1e6:.2f} | {per_request * rate:.2%}"
            )
    finally:
        monitor.close()


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100, 1000, 3000, 10000])
