"""What profiling showed, per goal, and what closing the gap would take. ``latest.md`` prints an entry only
for a goal its run missed, under that run's own py-spy summary. Written from the profiles and the experiments
of the session that built the bench (2026-11-23, a 2-core machine shared with other work), updated for
issue 14 (2026-12-01)."""

from __future__ import annotations

__all__ = ["FINDINGS"]

_GRPC = (
    "The modelserver is one Python process, and every request's gRPC work runs on one asyncio event "
    "loop, i.e. on one core holding the GIL. Since issue 14 the serving process no longer imports "
    "TensorFlow's Python layer: TensorProto -> ndarray is numpy (`modelserver/tensors.py`, about 5x "
    "less than `tf.make_ndarray` per fashion request, measured in one process) and models run "
    "through the C++ session with the GIL released. A py-spy profile of gRPC Predict at c64 with "
    "batching on (2026-12-01, load average 20 from other work) now shows 73% of busy samples as "
    "the event loop's own callback work (`Handle._run`: grpc.aio's completion-queue callbacks, in C, "
    "invisible to py-spy), 8% in `Session.run` (TensorFlow, GIL released) and about 1% in tensor "
    "conversion: the per-request Python steps are gone, what remains is grpc.aio itself on one loop. "
    "Next lever: more event loops - N serving processes sharing the port (`SO_REUSEPORT`, "
    "`--num_workers`). Measured as an experiment (2026-12-01, not in the server: two unmodified "
    "processes with `grpc.so_reuseport` set to 1 on one port vs one process, fashion only, h2load c64, "
    "4 alternating rounds, load average 13-16): 1.28-1.42x the req/s of one process (mean 1.34x); "
    "each process 479 MiB RSS of which 100 MiB private, so a second worker adds about 100 MiB, not "
    "479. Built since as `--num_workers` (modelserver/supervisor.py, peers.py: reloads and config-file "
    "changes applied on every worker before they answer, metrics aggregated, RAM budget split) and "
    "measured with `python -m bench.ab` (2026-12-01, 2 cores, fashion, 1 vs 2 workers both up at once, "
    "every run in bench/results/ab-workers-2026-12-01.json; "
    "gRPC h2load c64 over 8 connections and REST wrk c64, order alternating per round). Batching on, "
    "6 rounds at load average 8-10 from other work: gRPC 0.89-1.26x the req/s of one worker (mean "
    "1.07x), REST 0.39-2.60x (mean 1.57x); 8 rounds at load 5-6: gRPC 0.88-1.52x (mean 1.08x), REST "
    "1.23-1.60x (mean 1.42x); 6 rounds at load 4-8: gRPC 0.59-1.68x (mean 1.05x), REST 1.10-1.79x "
    "(mean 1.42x). Batching off, 6 rounds at load 3.3-6.5: gRPC 0.81-1.18x (mean 1.01x), REST "
    "1.01-1.50x (mean 1.31x). Why gRPC gains little here (server CPU = its process tree's, per point): "
    "batching off, one worker already used 1.70-2.05 of the 2 cores (event loop, grpc's own threads, "
    "TensorFlow), so a second event loop has no core to run on; batching on, one worker used 1.21-1.52 "
    "cores and two 1.52-1.93 for about the same answers (each worker batches only its share of the "
    "requests; not measured apart), on a machine whose other work took the rest. The experiment's "
    "1.28-1.42x was at load 13-16, where two processes also win a bigger share of contended CPU. "
    "RSS: 524 MiB for one "
    "worker, 1099 MiB for two (each worker about 85 MiB private with the fashion model, the rest shared "
    "libtensorflow pages; the supervisor 51 MiB). So the default stays 1 worker (today's process): "
    "`--num_workers=0` (one per usable core, cgroup quota included) or N is for machines with cores "
    "to spare and load over many connections; every worker holds every model and 1/N of the RAM budget."
)
_REST = (
    "REST at high concurrency was dominated by Python's cyclic garbage collector while TensorFlow's "
    "Python layer was loaded (about 300,000 GC-tracked objects rescanned by every full collection). "
    "The serving process no longer imports it (modelserver RSS about 0.7x of before), and the heap is "
    "frozen once at start (`freeze_heap` in modelserver/server.py) instead of after every load. In "
    "an interleaved A/B against main (both servers up at once, wrk alternating, batching off, load "
    "average 18-20 from other work) REST predict did 1.4x main's req/s at c8 and c64 (noisy: round "
    "to round spread 2x). A py-spy profile of REST c64 (batching on, 2026-12-01, load 1-2) then "
    "showed JSON work as about half of the busy samples: the long-integer guard regex took 100 us "
    "on a 10 KB fashion body (now only run when a 20-digit run exists: 5 us), and np.asarray "
    "discovered the [1,28,28,1] nesting per element (60 us; now flattened level by level with C "
    "builtins, 35 us). Per request 270 -> 181 us of parsing on the event loop; the next full run "
    "went from 1504 to 1715 req/s at c64 (adjacent runs, load 1-3). What remains is orjson itself "
    "(95 us: 784 Python floats per image) and uvicorn. "
    "Several serving processes per port are built (`--num_workers`, opt-in): in interleaved A/Bs on "
    "2 cores (`python -m bench.ab`, 2026-12-01, see the gRPC finding) 2 workers gave REST predict at "
    "c64 1.42x (batching on, 8 rounds, 1.23-1.60x, load 5-6), 1.57x (6 rounds, 0.39-2.60x, load 8-10), "
    "1.42x (6 rounds, 1.10-1.79x, load 4-8) and 1.31x (batching off, 6 rounds, 1.01-1.50x) the req/s of "
    "one. One REST worker used 0.60-1.07 cores with batching on (1.44-1.68 off), two 1.02-1.70 "
    "(1.72-2.23 off): REST is limited by its one event loop, so a second loop turns idle CPU into answers."
)
_REST_P50 = (
    "A lone request no longer waits for company: with `--batching_dispatch_when_idle` (default) the "
    "batcher cuts a batch at once when no batch is running (modelserver/batching.py); TF Serving's "
    "exact scheduling stays available with `=false` and is measured in the same run "
    "(`*.batching_tf.c1`: in the runs of 2026-12-01, p50 1.6-1.8 ms with idle dispatch vs 4.2-7.2 ms "
    "with TF Serving's scheduling, batch_timeout_micros 2000). What is left at c1 is the in-process "
    "call itself plus JSON parsing, uvicorn and one thread hop into TensorFlow."
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
    "No request failed: the new version loads before the old one unloads. Loading is now TensorFlow's "
    "C++ loader (GIL released), warm-up replay runs numpy -> C session, and the per-load "
    "`gc.collect(); gc.freeze()` is gone (the heap is frozen once at start; a version is a C++ "
    "session with few Python objects, so unload leaves nothing frozen behind): the new version was "
    "AVAILABLE after 0.44-0.50 s against 1.0-1.6 s on main in adjacent runs. The p99 ratio itself "
    "was not measurable on the shared machine (load average 15-20: steady-state p99 swung 50-280 ms "
    "between runs). What remains in the serving process during a swap: the load and warm-up threads "
    "competing with the event loop for 2 cores. Next lever: TF Serving's `--num_load_threads` "
    "(loads serialized on one thread, accepted and ignored today), or loading in a sibling worker."
)
_RAM = (
    "The loader estimates (saved_model.pb + variables) x 1.2 + 4.25 MiB per version, plus 24 MiB of "
    "one-time runtime set-up (thread pools, allocator arenas) charged to the first load in a process; "
    "TensorFlow's shared libraries are loaded at start, so they are in the empty server's RSS, not in "
    "any version's growth (modelserver/loader.py; calibrated for the C++ session path on 2026-12-01: "
    "fashion +2%, text -12%, housing +12%). Where it misses, the cause is a model whose graph "
    "expands much more in memory than its serialized size. Next lever: learn each model's real "
    "growth from its first load (RSS before/after) and use it for later versions."
)
_RSS = (
    "A serving process with the three models is TensorFlow's C++ runtime plus the server: about 440 "
    "MiB before any model (libtensorflow_cc.so.2 and libtensorflow_framework.so.2 alone are about "
    "365 MiB of RSS once loaded through ctypes, measured in one process) and about 70 MiB for the "
    "three models, against about 720 MiB on main in adjacent runs (TensorFlow's Python layer "
    "imported). Most of the library RSS is shared clean file pages (see the Memory section's split): "
    "every worker mapping the same file shares them and the kernel can drop and re-read them, so a "
    "second worker adds its private pages only. Next lever: a TensorFlow build without the "
    "CUDA-capable kernels (the wheel's libtensorflow_cc is 1.1 GB), or counting PSS per worker."
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
    "rest_p50_over_inprocess": _REST_P50,
    "grpc_p50_over_inprocess": _REST_P50,
    "modelserver_rss": _RSS,
}
