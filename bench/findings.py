"""What profiling showed, per goal, and what closing the gap would take. ``latest.md`` prints an entry only
for a goal its run missed, under that run's own py-spy summary. Written from the profiles and the experiments
of the session that built the bench (2026-11-23, a 2-core machine shared with other work)."""

from __future__ import annotations

__all__ = ["FINDINGS"]

_GRPC = (
    "The modelserver is one Python process, and every request's gRPC work (grpc.aio's "
    "completion-queue callbacks, protobuf parsing, TensorProto -> ndarray and back, the batcher's "
    "futures) runs on one asyncio event loop, i.e. on one core holding the GIL. In the gRPC profile "
    "the event loop's own callback work (`Handle._run`) is the largest busy share and TensorFlow's "
    "inference (`quick_execute`) the second: batching already spreads the model's cost over up to 64 "
    "requests, so the fixed per-request cost on the loop sets the ceiling (the issue's bare asyncio "
    "prototype, about 4,600 req/s, is that ceiling on a quiet machine). What it would take: more "
    "event loops - N serving processes sharing the port (`grpc.so_reuseport`, one model copy each) - "
    "and fewer Python steps per request (modelserver/tensors.py `to_ndarray`: `np.frombuffer` on "
    "`tensor_content` instead of `tf.make_ndarray`, 2.4 vs 11 us per fashion request measured - "
    "small; replies keep TF Serving's typed `float_val`). The process count is the lever that "
    "matters."
)
_REST = (
    "REST at high concurrency was dominated by Python's cyclic garbage collector: with TensorFlow "
    "loaded the heap holds about 300,000 GC-tracked objects, and every generation-2 collection "
    "triggered by parsed JSON rescanned them with the event loop blocked (1.4-1.7 ms of GC per request"
    " at c64). The modelserver now calls `gc.collect(); gc.freeze()` after each load "
    "(modelserver/loader.py), which took REST/gRPC from 0.37x to 0.74x and REST/BentoML from 0.97x "
    "to 2.2x between two full runs of this bench. What remains is per-request Python on one event "
    "loop (orjson parse, nested lists -> ndarray, uvicorn). What it would take: parse instances "
    "straight into one NumPy array instead of nested lists, and several serving processes per port."
)
_REST_P50 = (
    "At concurrency 1 the batching queue holds a lone request up to `batch_timeout_micros` (2 ms "
    "here) waiting for company, as TF Serving's batcher does; the rest is JSON parsing, uvicorn and a"
    " thread hop into TensorFlow. What it would take: flush a batch at once when no other request is "
    "waiting (adaptive timeout), or a smaller timeout; BentoML's p50 on this machine is also far "
    "below the 24 ms the issue measured."
)
_GATEWAY = (
    "The gateway spends its time in per-request Python in one process: FastAPI's request parsing and "
    "dependency resolution (`request_params_to_args`), multipart parsing, anyio thread hops "
    "(`checkpoint`) for the Pillow decode, Starlette's `BaseHTTPMiddleware` (an extra task and memory"
    " stream per request) and the grpc.aio call. On 2 cores it also competes with the model server "
    "for CPU. What it would take: a pure ASGI middleware instead of `BaseHTTPMiddleware`, decoding "
    "small images inline instead of in a worker thread, and more uvicorn workers where cores allow."
)
_SWAP = (
    "No request failed: the new version loads before the old one unloads. The latency spike comes "
    "from work inside the serving process while requests wait for the GIL: loading and warming the "
    "new version (`tf.saved_model.load`, tracing, warm-up replay in a worker thread), then the full "
    "collection that makes the old version's frozen objects collectable again on unload "
    "(`gc.unfreeze(); gc.collect(); gc.freeze()` in modelserver/loader.py: needed, or every swap "
    "would leak the old version). What it would take: load in a separate process (or TF Serving's "
    "C++ loader, where no GIL is shared), fewer warm-up iterations, or collecting the old version's "
    "objects incrementally; TF Serving's own remedy is separate load threads (`--num_load_threads`)."
)
_RAM = (
    "The loader estimates (saved_model.pb + variables) x 1.2 + 8 MiB per version, plus 24 MiB of "
    "TensorFlow's one-time runtime set-up (kernels, thread pools) charged to the first load in a "
    "process (modelserver/loader.py). Where it misses, the cause is a model whose Python-side objects "
    "differ much from the calibration. What it would take: learn each model's real growth from its "
    "first load (RSS before/after) and use it for later versions."
)

_PEER_TOP = (
    "The peers are measured with the same body and wrk settings in the same run (bench/results/latest.md, "
    "Peers). Our REST predict's ceiling is per-request Python on one event loop (see the REST finding); a "
    "peer ahead at the highest concurrency would be one that spreads that work over more processes. What "
    "it would take: the same levers as for REST/gRPC - fewer Python steps per request and several "
    "serving processes per port."
)
_PEER_P50 = (
    "At the lowest concurrency a lone request waits in our batching queue up to `batch_timeout_micros` "
    "(2 ms here) for company, while KServe's plain model server calls the signature at once on its event "
    "loop (no batching at all) and Ray Serve's `@serve.batch` waits like ours (same 2 ms) plus its proxy -> "
    "replica hop. Our batching-off p50 (in the figures) is the price without the wait. What it would take: "
    "flush a batch at once when no other request is queued (an adaptive timeout), as the performance issue "
    "proposes; then ours keeps batching's throughput at c64 and a plain server's latency at c1."
)

FINDINGS: dict[str, str] = {
    "grpc_vs_inprocess": _GRPC,
    "grpc_vs_naive": _GRPC,
    "rest_vs_grpc": _REST,
    "rest_vs_bentoml": _REST,
    "rest_refused": _REST,
    "rest_p50_vs_bentoml": _REST_P50,
    "rest_vs_best_peer": _PEER_TOP,
    "rest_p50_vs_best_peer": _PEER_P50,
    "gateway_vs_grpc": _GATEWAY,
    "gateway_added_p50": _GATEWAY,
    "hotswap_failed": _SWAP,
    "hotswap_p99": _SWAP,
    "ram_estimate": _RAM,
}
