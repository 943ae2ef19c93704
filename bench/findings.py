"""What profiling showed, per goal, and what closing the gap would take. ``latest.md`` prints an entry only
for a goal its run missed, under that run's own py-spy summary. Written from the profiles and the experiments
of the session that built the bench (2026-11-23, a 2-core machine shared with other work), updated for
issue 14 and the transport floor (2026-12-01). Findings are fixed text; the figures of the run they explain
are in the goals' figures column and the load-point table."""

from __future__ import annotations

__all__ = ["FINDINGS"]

_GRPC = (
    "The per-request Python steps are cut: TensorProto -> ndarray is numpy (`modelserver/runtime/tensors.py`), "
    "models run through TensorFlow's C++ session with the GIL released, and the serving process no "
    "longer imports TensorFlow's Python layer. What remains is grpc.aio itself. The same run measures "
    "its ceiling: an empty grpc.aio handler (canned reply bytes, no protobuf) under the same h2load c64 "
    "over 8 connections with the same body (the floor rows of the load-point table; the figures column "
    "says what share of it the target asks). On this machine 0.35x of in-process batch 32 (17,200-20,200 "
    "images/s) needs 6,000-7,100 req/s = 62-72% of what grpc.aio does with no work at all (9,800 req/s "
    "at c64 on 2026-12-01, p50 0.28 ms at c1; ours, 2,885 req/s that day, is 0.30x of it). A native-stack "
    "py-spy of the server at c64 (2026-12-01) showed the main thread 56% inside grpc's Cython/C core "
    "(sendmsg/recv syscalls per RPC, completion-queue callbacks) and 29% in our handler (Predict "
    "adapter, data plane, batcher). More event loops barely help gRPC on 2 cores: `--num_workers=2` vs 1 "
    "(`python -m bench.ab`, 2026-12-01, bench/results/ab-workers-2026-12-01.json) gave gRPC c64 "
    "1.01-1.08x the req/s (mean of each of 4 A/B runs) and REST c64 1.31-1.57x, for 1099 vs 524 MiB "
    "RSS, since one worker already keeps both cores busy (event loop, grpc's threads, TensorFlow). "
    "The default stays 1 worker; more are for machines with cores to spare. Issue 30 (2026-12-06, one "
    "process, best of 5 rounds, load average ~8): the request tensor's conversion is not where the time "
    "goes - `make_ndarray` of the fashion image (`tensor_content`, 3 KB) takes 7.1 us against 0.7 us for "
    "a zero-copy `np.frombuffer` view and 0.6 us for parsing the whole PredictRequest (MobileNetV2's "
    "602 KB: 186 vs 14 vs 14 us), at most 2% of a core at 3,000 req/s; the levers left are per-RPC: "
    "grpc.aio's completion-queue work and the data plane's task hops (not yet measured as A/Bs). A py-spy "
    "of gRPC c64 the same day (batching on, 404 busy of 701 samples, load ~8) agrees: own time in "
    "asyncio's `Handle._run` 36% (grpc.aio's callbacks on the event loop), `Session.run` 24% (TensorFlow, "
    "GIL released), `_new_tensor` 11% (TF_AllocateTensor and the copy of each batch into it: handing "
    "the batch buffer to TF_NewTensor without a copy is the zero-copy lever left), `make_ndarray` 2%. "
    'Issue 30\'s levers, each an interleaved A/B (bench/README.md "Levers", bench/results/ab-*-2026-12-06.json, '
    "load 2-14 from other work): a second worker 0.87-0.90x in the rounds no load spike hit; grpcio's "
    "synchronous server (16 threads, each call handed to the event loop) 0.965x mean although its own "
    "canned floor is 1.22x grpc.aio's (the hop eats the gain; not landed); TensorFlow's pools at 1 thread "
    "711 vs 993 us of CPU per request but req/s unreadable (not a default); the event loop's own Python "
    "per Predict (reply tensors filled in place, dims and guarded shapes read once, cached metric series, "
    "zero-copy tensor_content, the batch merge off the loop) 77.5 -> 59.2 us in process (landed). What "
    "remains, per thread at c64 (per-thread CPU, py-spy): the event loop thread is the bottleneck, and 58% "
    "of its samples are asyncio's `Handle._run` own time, grpc.aio's Cython per-RPC callbacks (receive, "
    "deserialize, start the handler task, send); our handler is ~9%. Beside it, TensorFlow's threads take "
    "~300 us of CPU per request at the small batches c64 forms (6-9 rows), grpc's poller ~45 and drift ~25, "
    "on the same 2 cores as the loop: the floor has neither. Per thread on 2026-12-07 (8 s of h2load c64, "
    "/proc per-thread CPU over the answered requests, 2 runs each, the machine shared): the event loop "
    "456-591 us per request against the floor's 180-186 us per reply, the two batch threads (TensorFlow's "
    "calling thread and our merge) 308-404 us at the 7-10 rows a c64 batch gets, TensorFlow's pool 82-152 "
    "us, grpc's poller 43-69 us; the floor's whole process 257-268 us. Our handler is ~21% of the loop's "
    "busy samples; the rest is grpc.aio's callbacks and epoll, more of them per call than the floor's. "
    "Two suspects measured and cleared (interleaved, same figures): unary calls served as grpc.aio "
    "unary-unary without the admission's message deadline, loop 438-515 vs 476-484 us; no interceptor at "
    "all, 532-556 vs 591-672 us - within the noise, so both hardening steps of issue 25 stay. The figures "
    "column gives the arithmetic of each run: our CPU per request, the floor's per reply and the model's "
    "per image at batch 32 in process, and what 2 cores allow a server that paid only floor + model. "
    "Since 2026-12-07 the model servers run TensorFlow's intra-op pool at 1 thread and the in-process "
    "limit is the best of two rules (bench/scenarios/inprocess.py): with that pool, two callers at batch "
    "32 give 14,048-14,364 images/s against one caller's 11,575-11,779 on TensorFlow's default pools, so "
    "the target of 0.35x became 3,473-5,985 req/s - 82-136% of the grpc.aio floor in the seven full runs "
    "of 2026-12-07 since (the floor itself 3,825-6,623 req/s on a shared machine). gRPC c64 itself did not "
    "move with the pool (1,276-1,972 req/s in those runs against 1,523 in the one before, CPU per request "
    "662-1,043 vs 967 us): the event loop is the bottleneck. uvloop under both servers was measured as a "
    "lever the same day and gave nothing (bench/README.md): grpc.aio's per-call work is the same on it."
)
_NAIVE = (
    "The naive baseline moves with the machine more than we do: naive FastAPI + `model.predict` at c64 "
    "answered nothing within wrk's timeout in the busy runs of 2026-12-07 (6.5-8.6 req/s, every one a "
    "timeout, which the ratio still counts as its throughput) and 20.6 req/s, all answered, in the quiet "
    "run of 08:56, where ours did 1,972 (96x). What moves the ratio for us is gRPC c64 itself: "
)
_REST = (
    "REST at high concurrency was dominated by Python's cyclic garbage collector while TensorFlow's "
    "Python layer was loaded (about 300,000 GC-tracked objects rescanned by every full collection). "
    "The serving process no longer imports it (modelserver RSS about 0.7x of before), and the heap is "
    "frozen once at start (`freeze_heap` in modelserver/process/server.py) instead of after every load. In "
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
    "(1.72-2.23 off): REST is limited by its one event loop, so a second loop turns idle CPU into answers. "
    "2026-12-07: the cyclic GC came back by another door. The parsed body (one Python list per pixel, "
    "813 GC-tracked lists for a [1, 28, 28, 1] fashion image) was held across the model's await, so at c64 every request "
    "in flight kept its lists alive and the GC walked them on the event loop: a `gc.callbacks` hook counted "
    "242 gen0 and 22 gen1 collections in ~9,100 requests, 84 us per request. `RestApi._predict` now drops "
    "it once the tensors are built (a test checks no row list is alive while the model runs): REST c64 "
    "1.12-1.29x the req/s in 3 interleaved rounds, CPU per request 669-568 vs 742-691 us; the next two full "
    "runs gave 1,903 and 2,203 req/s at c64 (989-1,001 in the two runs before, on a busier machine), "
    "4.26x and 4.12x BentoML."
)
_REST_P50 = (
    "A lone request no longer waits for company: with `--batching_dispatch_when_idle` (default) the "
    "batcher cuts a batch at once when no batch is running (modelserver/runtime/batching.py); TF Serving's "
    "exact scheduling stays available with `=false` and is measured in the same run "
    "(`*.batching_tf.c1`: in the runs of 2026-12-01, p50 1.6-1.8 ms with idle dispatch vs 4.2-7.2 ms "
    "with TF Serving's scheduling, batch_timeout_micros 2000). What is left at c1 is the in-process "
    "call itself plus JSON parsing, uvicorn and one thread hop into TensorFlow. Issue 30 replaced the "
    "goal \"REST p50 c1 <= 0.2x BentoML's\" with these two: 0.2x of BentoML's p50 was below the model "
    "call itself (the in-process batch-1 call was 0.43 ms of our 1.02 ms REST p50 on 2026-12-01, when "
    "REST and gRPC p50 were the call + 0.58 / 0.70 ms). For gRPC the transport alone takes most of the "
    "allowance: grpc.aio answering a canned reply at c1 has its own p50 in the figures column (0.35 ms in "
    "the full run of 2026-12-06 19:16), so 0.40 ms over the call leaves ~0.05 ms for parsing the Predict, "
    "the batcher and the two thread hops into TensorFlow and back; uvicorn's canned reply is 0.08 ms, and "
    "REST's remaining ~0.8 ms holds the JSON parse of the 784-number image (~0.2 ms, the REST finding), "
    "the same hops and the reply's JSON. Measured on 2026-12-07 (bench/README.md, gRPC levers): with "
    "TensorFlow's intra-op pool at 1 thread the batch-1 call runs on the batch thread itself, and gRPC p50 "
    "at c1 fell from 2.07-2.24 to 1.38-1.44 ms (CPU per request 2.6 -> 1.6 ms) - the handoff to a 2-thread "
    "pool on 2 shared cores costs more than the parallelism gives a 28x28 image. Landed the same day: "
    "the model servers run `--tensorflow_intra_op_parallelism=1`, and the in-process batch-1 call is "
    "measured under that rule too (0.41-0.43 ms against 0.81-0.87 ms on the default pools: the best of "
    "the two is the baseline). In the seven full runs since, gRPC p50 c1 was 1.01-1.52 ms (2.20 ms the "
    "run before) and REST 1.04-1.75 ms (2.15): 0.54-1.13 and 0.70-1.27 ms over the call, where grpc.aio's "
    "canned reply alone takes 0.34-0.47 ms at c1."
)
_GATEWAY = (
    "Built for issue 14 (2026-12-01), each lever an interleaved A/B (gateway + model server stacks, "
    "alternating rounds): the metrics middleware is pure ASGI; uploads of at most 16 KiB and 128x128 "
    "pixels are decoded on the event loop; pixels become float32 through byte-plane translate tables; "
    "the services and admin-token dependencies are async; the heap is frozen at start (upload c64 1.18x, "
    "then 1.10x). `gateway/middleware/hot_routes.py` answers :classify and :predict with plain query parameters "
    "without FastAPI's router, dependency solving and response validation (same code, handlers and "
    "metrics labels; a test compares both paths): upload c64 1.19x, c1 p50 1.87 -> 1.75 ms. "
    "`gateway/upstream/coalesce.py` sends concurrent Predicts for one model version that reach the client in the "
    "same event-loop turn as one Predict and splits the reply by rows (never waits for company; at most "
    "GATEWAY_MAX_FILES rows): upload c64 2.23x, c8 1.61x, c1 1.00x, because the gRPC call was the "
    "biggest single cost of an upload on both sides (grpc.aio's client 19% of the gateway's busy "
    "samples; the model server's per-RPC work, see the gRPC finding). A run that misses this goal has "
    "the gateway and the model server sharing 2 cores with other work: what remains per upload is "
    "uvicorn's socket writes, the multipart parser and Pillow's decode (py-spy of upload c64)."
)
_SWAP = (
    "No request failed: the new version loads before the old one unloads. The swap's own work is TensorFlow's "
    "C++ loader and the warm-up replay, in the loader's thread, which runs niced (niceness 10) after the "
    "process's first load; since 2026-12-06 evening its restore and warm-up ops also run in that thread "
    "(RunOptions.inter_op_thread_pool -1, `modelserver/runtime/session.py` IN_CALLING_THREAD) instead of on "
    "the inter-op pool the serving sessions share. Per-thread CPU of a swap (2026-12-06, /proc/<pid>/task): "
    "the loader thread 0.5 s of CPU in 1.3 s, TensorFlow's pool threads no busier than before the publish, "
    "and py-spy --gil finds the loader holding the GIL in 6 of 2,535 samples. What the run's control row "
    "shows is that any CPU work beside serving costs this much on this machine, whoever does it: the same "
    "load with 1 s of CPU in another process at SCHED_IDLE (it runs only on a core no other thread wants) "
    "instead of a publish gave p99 during/before 1.66x, 1.85x, 2.00x (2026-12-06, 3 runs; nice 19: 1.36x, "
    "1.63x, 1.92x), against 1.59-2.04x for the swap itself (5 runs) - the 2 vCPUs share more than the "
    "scheduler can separate (caches, or the host's SMT siblings). Levers measured against the swap, 3-5 "
    "alternating runs each, none moved it outside that spread: SCHED_IDLE for the loader thread (mean 1.61x "
    "vs 1.77x), no smaps release before the replay (1.64x vs 1.73x), the explain warm-up at 1 step instead "
    "of 32 (1.29-1.63x vs 1.68-1.76x), no explain records (1.76x, 1.85x), TensorFlow's thread spinning off "
    "(1.75-2.02x). What would meet the goal on 2 cores is less work in the swap: a warm-up shorter than "
    "the 1% of requests p99 is, or more cores than serving keeps busy."
)
_RAM = (
    "The loader estimates (saved_model.pb + variables) x 1.2 + 4.25 MiB per version, plus 16 MiB of "
    "one-time runtime set-up (thread pools, allocator arenas) charged to the first load in a process. "
    "The library pages a load touches are released after it (guard/pages.py), so they are in no "
    "version's growth (modelserver/runtime/loader.py; re-calibrated on 2026-12-01 after that change). "
    "What the files cannot show is the warm-up replay's cost: an exported model's `explain` signature "
    "(integrated gradients) builds its gradient executor and TensorFlow's allocator keeps its activations "
    "(fashion: +81 MiB against a 23 MiB estimate on 2026-12-06, -72%; the warm-up alone +65 MiB in process). "
    "Since then the loader re-estimates after the replay with its measured RSS growth (TF Serving's post-load "
    "re-estimate; the manager's reservation takes the larger figure), and the model's next version adds it up "
    "front. The figure compared here is that post-load estimate: the warm-up share of it is measured, not "
    "predicted (the first version's up-front estimate is still file-based; `bench --only memory` on "
    "2026-12-06: fashion 87.8 vs +85.3 MiB, text 10.9 vs +10.4, housing 11.5 vs +13.4)."
)
_RSS = (
    "Registering TensorFlow's ops and kernels at start touches about 300 MiB of libtensorflow_cc's "
    "code and read-only data that serving never reads again; since 2026-12-01 the model server "
    "releases those pages after start and after every load (`guard/pages.py`: madvise(MADV_DONTNEED) on "
    "read-only mappings with no private page, so the page cache keeps them and a later access is a minor "
    "fault): RSS with the three models 506 -> about 215 MiB per worker, the same throughput (REST c64 "
    "2695 vs 2748 req/s on one server before/after releasing). What remains is anonymous memory (heap, "
    "per-thread malloc arenas, buffers: the Memory section's split) and the pages serving touches. A run "
    "that misses this goal has a load that touches more of the libraries (a model with other ops); "
    "tried and not kept: `malloc_trim` after every unload (7 MiB) and `MALLOC_ARENA_MAX=2` (6-10 MiB)."
)

_PEER_TOP = (
    "The peers are measured with the same body and wrk settings in the same run (bench/results/latest.md, "
    "Peers). Our REST predict's ceiling is per-request Python on one event loop (see the REST finding); a "
    "peer ahead at the highest concurrency would be one that spreads that work over more processes. What "
    "it would take: the same levers as for REST/gRPC - fewer Python steps per request and several "
    "serving processes per port."
)
_PEER_P50 = (
    "Idle dispatch is built: with `--batching_dispatch_when_idle` (default true) a lone request is "
    "batched at once instead of waiting `batch_timeout_micros` (TF Serving's exact scheduling, `=false`, "
    "is measured in the same run: the `TF Serving scheduling` rows), and since 2026-12-01 a lone "
    "client's request runs as its own batch without the dispatcher hop (A/B vs before, 4 alternating "
    "rounds: REST c1 p50 1.321 -> 1.261 ms, gRPC c1 1.144 -> 1.088 ms, gRPC c64 req/s 0.998x). The "
    "quickest peer at c1 is KServe, which has no batching at all: it calls the model on its event "
    "loop, so a lone request has no queue and no thread hop, but every other request waits while the "
    "model runs and nothing coalesces at high concurrency (the req/s goal above). Ours runs the model "
    "in a worker thread to keep the loop serving; that hop is most of what separates the two at c1."
)
_MOBILENET = (
    "Issue 30's real-size model. The figures column says what the cores allow: the serving processes' CPU "
    "per request (over each load point's wall time) beside the in-process CPU per image at the best "
    "batch, and the req/s the machine's cores give at that cost - on 2 cores both goals are bounded by "
    "CPU, not by waiting. gRPC: the model server costs more CPU per image than the in-process best batch "
    "because c16 forms smaller batches (the batcher cuts what arrived within batch_timeout_micros 2 ms while "
    "the other batch thread runs; at batch 1 an image costs 1.5x its batch-8 CPU: 28-33 vs 19-22 ms in "
    "the in-process rows of the runs of 2026-12-06 evening). "
    "One batch thread instead of two did not help (77 and 92 vs 96 and 89 req/s, 2026-12-06). The gateway: "
    "every JPEG upload costs the gateway 7.6-8.1 ms of CPU (py-spy at c16, own time: Lanczos resize 21%, "
    "waking the event loop from the decode threads 8%, picture copies 8%, the byte-to-float planes 7%, "
    "grpc.aio's call and serialisation 13%, the coalescer's merge 6%) on top of the model server's 20-22 ms, "
    "on the same 2 cores: about 66 uploads/s, which is what its rows measure. 0.8x of the limit would need "
    "gateway and model server together under 2 cores / (0.8 x the limit) of CPU per upload - ~30 ms in the "
    "runs of 2026-12-06 evening, where the model server alone took 24 ms and the gateway 9-10 ms; it needs "
    "cores the model does not use (the gateway on its own machine, as deployed in deploy/k8s). The TF "
    "Serving REST JSON rows also pay the parse of 150,528 JSON numbers per image "
    "(against the OIP binary rows: same server, same picture). Memory: the `explain` signature warms up on "
    "one row at one step since 2026-12-06 (a MobileNetV2's load 15.1-16.1 s -> 9.7-9.8 s, RssAnon at ready "
    "596 -> 412 MiB); the RSS row of the MobileNetV2 table is taken after the c64 points, and holds what "
    "TensorFlow's allocator kept from the largest batches (up to 64 images). The strongest lever measured "
    "since (2026-12-07, bench/README.md): TensorFlow's intra-op pool at 1 thread, so each of the two batch "
    "threads runs its batch itself - gRPC c16 98.7-112.7 vs 71.3-96.2 req/s, CPU per request 16.6-19.1 vs "
    "19.3-26.0 ms, c1 p50 19.4-19.8 vs 23.3-23.5 ms. Landed the same day, with the in-process limit on "
    "the same rule: two callers each running its own batch on one intra-op thread are the limit (109.1 "
    "images/s at batch 1 in the run of 2026-12-07 04:00, against 88.8 for one caller at batch 8 on the "
    "default pools), so served throughput rose (gRPC c16 87.7-122.8 req/s in the seven full runs since, "
    "73.5 the run before; gateway JPEG 65.3-99.6, 53.1) and so did the limit (109.1-157.0 images/s): "
    "0.71-0.87x and 0.58-0.74x of it, where the CPU arithmetic of the figures column allows 0.76-0.92x "
    "and 0.62-0.77x - the model server's CPU per request stays 2-5 ms above the model's own per image."
)
FINDINGS: dict[str, str] = {
    "mobilenet_grpc_vs_inprocess": _MOBILENET,
    "mobilenet_gateway_vs_inprocess": _MOBILENET,
    "grpc_vs_inprocess": _GRPC,
    "grpc_vs_naive": _NAIVE + _GRPC,
    "rest_vs_grpc": _REST,
    "rest_vs_bentoml": _REST,
    "rest_refused": _REST,
    "grpc_vs_floor": _GRPC,
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
