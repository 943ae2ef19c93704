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
    "REST at high concurrency is dominated by Python's cyclic garbage collector. With TensorFlow "
    'loaded the heap holds about 300,000 GC-tracked objects, and `{"instances": ...}` for one 28x28x1'
    " image parses into ~800 Python lists; with 64 requests in flight they survive into generation 2,"
    " and every generation-2 collection scans the whole heap with the event loop blocked (about "
    "0.2-0.4 s each here). py-spy shows it as `_GeneratorContextManager.__exit__` of "
    "`json_tensor.no_gc` (the collection fires on the first allocation after `gc.enable()`). Proposed"
    " fix (modelserver/server.py once the models are loaded, and modelserver/manager.py after each "
    "version becomes AVAILABLE): `gc.collect(); gc.freeze()`, which moves TensorFlow's objects out of"
    " the collector's reach. Measured in this session on the same server flags, REST c64 with "
    "`gc.callbacks` timing the collector: GC time 1.4-1.7 ms per request without, 0.12 ms with the "
    "freeze; throughput 412-497 -> 1,026 req/s, p99 247-346 -> 114 ms. Beyond that: parse instances "
    "straight into one NumPy array instead of nested lists."
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
    "new version (`tf.saved_model.load`, tracing, warm-up replay in a worker thread) and unloading "
    "the old one - in the profile of a second, unmeasured swap, `Loader.unload` "
    "(modelserver/loader.py) is 8% of busy samples: it calls `gc.collect()`, a full collection over "
    "the ~300,000 objects TensorFlow keeps, which stops every thread (0.2-0.4 s per full collection "
    "measured with `gc.callbacks`). What it would take: drop the explicit `gc.collect()` in "
    "`Loader.unload` (or collect only the young generations), `gc.freeze()` after each load so later "
    "collections skip TensorFlow's objects, fewer warm-up iterations; TF Serving's own remedy is "
    "separate load threads (`--num_load_threads`)."
)
_RAM = (
    "The loader estimates (saved_model.pb + variables) x 1.2 + 16 MiB. The first model loaded also "
    "pays TensorFlow's one-time runtime set-up (first graph execution: kernels, thread pools), so its"
    " growth is about twice the estimate; the later, small models grow 8-12 MiB, less than the fixed "
    "16 MiB overhead alone. What it would take: charge the runtime set-up once per process rather "
    "than per version, a smaller per-version overhead, and learning the real growth of each model "
    "from its first load (RSS before/after) for later versions."
)

FINDINGS: dict[str, str] = {
    "grpc_vs_inprocess": _GRPC,
    "grpc_vs_naive": _GRPC,
    "rest_vs_grpc": _REST,
    "rest_vs_bentoml": _REST,
    "rest_refused": _REST,
    "rest_p50_vs_bentoml": _REST_P50,
    "gateway_vs_grpc": _GATEWAY,
    "gateway_added_p50": _GATEWAY,
    "hotswap_failed": _SWAP,
    "hotswap_p99": _SWAP,
    "ram_estimate": _RAM,
}
