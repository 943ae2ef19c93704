"""The real-size model (issue 30): MobileNetV2 at 224x224x3 (bench/mobilenet.py), where the model - not the
serving path - should be what costs. Measured in one run, each figure a ratio against the in-process limit of
the same run:

- the in-process limit: the C++ session the modelserver runs, batch 1 / 8 / 32, under two thread rules each in
  a child process of its own - TensorFlow's default pools from one caller, and the intra-op pool at one thread
  (what the bench's model servers run, ``--tensorflow_intra_op_parallelism=1``) from one caller per core, as
  the batch threads call it (``mobilenet.inprocess.intra_op_1``); the batch and rule with the most images/s is
  the limit (``mobilenet.inprocess.best``);
- the modelserver (batching on, this model alone) at each of ``mobilenet_concurrencies``: TF Serving gRPC
  Predict (h2load; ``mobilenet.grpc.c<N>``, statuses checked against the server's counters), OIP REST with the
  binary tensor extension (wrk; ``mobilenet.oip.c<N>``) and TF Serving REST JSON (wrk; ``mobilenet.rest.c<N>``),
  the same picture through all three: the first Fashion-MNIST test image upscaled to 224x224 RGB; latency
  percentiles and server cores per point, the server's RSS and PSS after the heaviest point.

- the peers (BentoML, Ray Serve, KServe), each from its own venv, on the same model with the same TF Serving
  JSON body (``mobilenet.<peer>.c<N>``), their RSS and PSS.

- the gateway (its defaults) in front of that model server: JPEG photos of mixed sizes (Fashion-MNIST test
  images upscaled to 112x112 ... 448x480, cycled) uploaded to ``:classify`` - multipart parse, JPEG decode,
  resize to 224x224, gRPC Predict - ``mobilenet.gateway.c<N>``, and the gateway's RSS.

The model comes from ``<models-dir>/mobilenet`` when one is published there, else it is built into the run's
repository (about 40 s on 2 cores).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.answers import compare, fetch_answer
from bench.errors import BenchError
from bench.loadgen import LoadResult, http_load
from bench.mobilenet import INPUT, SIDE, sample_jpegs
from bench.payloads import grpc_frame, multipart, predict_request
from bench.peer_envs import peer_venv, peer_version
from bench.repo import latest_version, write_models_config
from bench.scenarios.baselines import PEERS
from bench.scenarios.gateway import _check
from bench.scenarios.inprocess import INTRA_OP_RULE, RULES
from bench.scenarios.modelserver import grpc_point, verify_grpc
from bench.servers import INTRA_OP_THREADS, start_gateway, start_modelserver

__all__ = ["INPROCESS_BATCHES", "bodies", "picture", "run", "run_peer"]

INPROCESS_BATCHES = (1, 8, 32)
OIP_HEADER = "Inference-Header-Content-Length"
JPEGS = 8  # mixed-size photos the gateway points cycle through


def _child(ctx: Any, args: list[str], timeout_s: float) -> str:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-m", "bench.mobilenet", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ctx.repo_root,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"bench.mobilenet {args[0]} failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout


def _model(ctx: Any) -> Path:
    """The model's version folder in the run's repository: copied from the models dir, else built."""
    models_dir = ctx.settings.models_dir
    models_dir = models_dir if models_dir.is_absolute() else ctx.repo_root / models_dir
    published = latest_version(models_dir / "mobilenet")
    target = ctx.repo / "mobilenet" / str(published or 1)
    if published is not None:
        shutil.copytree(models_dir / "mobilenet" / str(published), target, symlinks=True)
        # as given (``models/...`` by default): the report names the project's folder, not the checkout's path
        shown = ctx.settings.models_dir / "mobilenet" / str(published)
        ctx.results["mobilenet"]["source"] = f"published: {shown}"
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        ctx.say("mobilenet: building MobileNetV2 (random weights) into the run's repository")
        _child(ctx, ["build", str(target)], 900)
        ctx.results["mobilenet"]["source"] = (
            "built by bench/mobilenet.py (no published mobilenet: `make models-mobilenet` publishes one "
            "through export publish)"
        )
    ctx.versions["mobilenet"] = int(target.name)
    return target


def picture(image: np.ndarray) -> np.ndarray:
    """A uint8 [28, 28] picture -> the model's input [1, 224, 224, 3] float32 in [0, 1] (bicubic upscale)."""
    from PIL import Image

    big = Image.fromarray(image, mode="L").resize((SIDE, SIDE), Image.Resampling.BICUBIC).convert("RGB")
    return (np.asarray(big, dtype=np.float32) / 255.0).reshape(1, SIDE, SIDE, 3)


def bodies(tensor: np.ndarray, out: Path) -> dict[str, Path]:
    """The same tensor as a length-prefixed gRPC PredictRequest, an OIP binary-data body (JSON header, then
    the raw float32 bytes; the header's length in ``mobilenet.oip.header_length``) and a TF Serving JSON
    body (``{"instances": [...]}``, 150,528 numbers)."""
    out.mkdir(parents=True, exist_ok=True)
    raw = np.ascontiguousarray(tensor, "<f4").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": INPUT,
                    "datatype": "FP32",
                    "shape": list(tensor.shape),
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        },
        separators=(",", ":"),
    ).encode()
    files = {
        "grpc": grpc_frame(predict_request("mobilenet", {INPUT: tensor})),
        "oip": header + raw,
        "rest": json.dumps({"instances": tensor.tolist()}, separators=(",", ":")).encode(),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = out / f"mobilenet.{name}"
        paths[name].write_bytes(data)
    (out / "mobilenet.oip.header_length").write_text(str(len(header)))
    return paths


# A point's window in replies per connection (below). The fixed 6 s window measured 0 req/s for TF Serving
# REST JSON at c64 for every server (2026-12-06): 64 bodies of 1.5 MB JSON each cost ~54 ms of parsing, so
# one reply per connection takes ~3.5 s, the batcher answers them in bursts, and the 1 s wrk warm-up left
# 64 requests queued ahead of the window: no reply landed inside it (and wrk counts none in flight).
REPLIES_PER_CONNECTION = 4
MAX_WINDOW_S = 60.0


def window(settings: Any, c: int, rate_c1: float | None) -> tuple[float, int, float]:
    """(duration, wrk timeout, warm-up) of a point at concurrency ``c`` whose path answered ``rate_c1``
    req/s at the lowest concurrency (None for that point itself): long enough for
    ``REPLIES_PER_CONNECTION`` replies per connection at that rate, a timeout above one queue's wait, and no
    separate warm-up above the lowest concurrency (the server is warm; a warm-up run would leave a queue of
    its own requests ahead of the window)."""
    timeout = max(settings.http_timeout_s, 10)
    if rate_c1 is None or rate_c1 <= 0:
        return settings.duration_s, timeout, settings.warmup_s
    per_round = c / rate_c1  # seconds until each of c connections has had one reply, at the c1 rate
    duration = min(MAX_WINDOW_S, max(settings.duration_s, REPLIES_PER_CONNECTION * per_round))
    return duration, int(min(MAX_WINDOW_S, max(timeout, 3 * per_round))), 0.0


def _http_point(
    ctx: Any, server: Any, key: str, url: str, body: Path, content_type: str, c: int, header: Any = None
) -> LoadResult:
    s = ctx.settings
    low = min(s.mobilenet_concurrencies)
    first = ctx.results.get("points", {}).get(key.rsplit(".c", 1)[0] + f".c{low}") if c > low else None
    duration, timeout, warmup = window(s, c, None if first is None else first.get("rps") or 0.0)
    result: LoadResult = ctx.point(
        key,
        server,
        lambda: http_load(
            url,
            body,
            content_type,
            concurrency=c,
            duration_s=duration,
            timeout_s=timeout,
            warmup_s=warmup,
            header=header,
        ),
    )
    return result


def run(ctx: Any) -> None:
    ctx.results["mobilenet"] = {}
    model = _model(ctx)
    batches = ",".join(str(b) for b in INPROCESS_BATCHES)
    args = ["inprocess", str(model), str(ctx.settings.inprocess_s), batches]
    limit = json.loads(_child(ctx, args, 900))
    pooled = json.loads(_child(ctx, [*args, str(INTRA_OP_THREADS), str(os.cpu_count() or 1)], 900))
    limit["best"]["rule"], pooled["best"]["rule"] = RULES["default"], RULES[INTRA_OP_RULE]
    limit[INTRA_OP_RULE] = pooled
    limit["best"] = max(limit["best"], pooled["best"], key=lambda v: v["images_per_s"])
    ctx.results["mobilenet"]["inprocess"] = limit
    for rule, entry in (("default pools", limit), ("intra-op 1 thread", pooled)):
        for key, value in entry.items():
            if key.startswith("batch"):
                ctx.say(
                    f"mobilenet in-process {key}, {rule}, {value['callers']} caller(s): "
                    f"{value['images_per_s']:.1f} images/s ({value['ms_per_call']:.1f} ms)"
                )
    paths = bodies(picture(ctx.payloads.image), ctx.work / "bodies")
    header = (OIP_HEADER, (ctx.work / "bodies" / "mobilenet.oip.header_length").read_text())
    config = write_models_config(ctx.work / "mobilenet.config", ctx.repo, ["mobilenet"])
    with start_modelserver(
        ctx, "modelserver-mobilenet", config, batching=True, wait_for=("mobilenet",)
    ) as server:
        rest = f"http://127.0.0.1:{server.ports['rest']}"
        output = _output_name(rest)  # the export names it after the Keras model's last layer
        problem = verify_grpc(server.ports["grpc"], paths["grpc"].read_bytes(), output, samples=2)
        ctx.results.setdefault("verified", {})["grpc.mobilenet"] = problem or "ok"
        if problem:
            ctx.say(f"mobilenet gRPC answers are wrong ({problem}); the figures below count them as served")
        ours = _answer(ctx, "modelserver", f"{rest}/v1/models/mobilenet:predict", paths["rest"])
        for c in ctx.settings.mobilenet_concurrencies:
            grpc_point(ctx, server, f"mobilenet.grpc.c{c}", paths["grpc"], c)
            _http_point(
                ctx,
                server,
                f"mobilenet.oip.c{c}",
                f"{rest}/v2/models/mobilenet/infer",
                paths["oip"],
                "application/octet-stream",
                c,
                header,
            )
            _http_point(
                ctx,
                server,
                f"mobilenet.rest.c{c}",
                f"{rest}/v1/models/mobilenet:predict",
                paths["rest"],
                "application/json",
                c,
            )
        ctx.measure_server("modelserver mobilenet", server)
        try:
            run_gateway(ctx, server, config)
        except BenchError as exc:
            ctx.skip("mobilenet gateway", str(exc).splitlines()[0])
    for name, peer in PEERS.items():
        run_peer(ctx, name, peer.start, paths["rest"], ours, output)


def _output_name(rest: str) -> str:
    """``serving_default``'s first output, from the model server's REST metadata (``OUTPUT`` for the model
    bench/mobilenet.py builds)."""
    from bench.procs import http_get

    status, body = http_get(f"{rest}/v1/models/mobilenet/metadata")
    if status != 200:
        raise BenchError(f"no metadata for mobilenet (HTTP {status})")
    signatures = json.loads(body)["metadata"]["signature_def"]["signature_def"]
    return str(sorted(signatures["serving_default"]["outputs"])[0])


def run_gateway(ctx: Any, modelserver: Any, config: Path) -> None:
    """JPEG photos of mixed sizes uploaded to the gateway's ``:classify`` (decode, resize to 224x224, Predict
    over gRPC to ``modelserver``), cycling through ``JPEGS`` photos: ``mobilenet.gateway.c<N>`` (with the
    model server's CPU seconds during it, ``upstream_cpu_s``); the gateway's RSS after."""
    from bench.__main__ import find_data_dir

    bodies_dir = ctx.work / "bodies"
    uploads = []
    for i, jpeg in enumerate(sample_jpegs(find_data_dir(ctx.settings), JPEGS)):
        body, content_type = multipart("file", f"photo{i}.jpg", "image/jpeg", jpeg)
        uploads.append(bodies_dir / f"mobilenet-upload{i}.multipart")
        uploads[-1].write_bytes(body)
    with start_gateway(ctx, modelserver.ports["grpc"], config, name="gateway-mobilenet") as gateway:
        url = f"http://127.0.0.1:{gateway.ports['http']}/v1/models/mobilenet:classify"
        problem = _check(url, uploads[0].read_bytes(), content_type, '"label"')
        ctx.results.setdefault("verified", {})["gateway.mobilenet"] = problem or "ok"
        if problem:
            raise BenchError(f"the gateway does not answer the JPEG upload correctly: {problem}")
        s = ctx.settings
        for c in s.mobilenet_concurrencies:
            upstream_cpu = modelserver.cpu_seconds()
            ctx.point(
                f"mobilenet.gateway.c{c}",
                gateway,
                lambda c=c: http_load(
                    url,
                    uploads[0],
                    content_type,
                    concurrency=c,
                    duration_s=s.duration_s,
                    timeout_s=max(s.http_timeout_s, 10),
                    warmup_s=s.warmup_s,
                    more_bodies=uploads[1:],
                ),
            )
            # the model server's share of each upload: with the gateway's, what the 2 cores allow
            point = ctx.results["points"][f"mobilenet.gateway.c{c}"]
            point["upstream_cpu_s"] = modelserver.cpu_seconds() - upstream_cpu
        ctx.measure_server("gateway mobilenet", gateway)


def _answer(ctx: Any, name: str, url: str, body: Path) -> list[float] | None:
    """One request before any load (it also warms the server: a first call traces and allocates), its
    first row kept for the cross-check; a failure is recorded under ``verified``, not raised."""
    try:
        return fetch_answer(url, body, timeout_s=180)
    except ValueError as exc:
        ctx.results.setdefault("verified", {})[f"mobilenet {name} answer"] = str(exc)
        ctx.say(f"mobilenet {name}: no usable answer to the JSON body ({exc})")
        return None


def run_peer(
    ctx: Any,
    name: str,
    start: Any,
    body: Path,
    ours: list[float] | None = None,
    output: str = "probabilities",
) -> None:
    """One peer (from its own venv) on MobileNetV2 with the TF Serving JSON body our REST path gets:
    ``mobilenet.<peer>.c<N>``; skipped with the reason when its venv is missing or it cannot start."""
    if peer_version(ctx.repo_root, name) is None:
        ctx.skip(
            f"mobilenet {name}", f"not installed in {peer_venv(ctx.repo_root, name)}: `make bench-tools`"
        )
        return
    try:
        with start(ctx, "mobilenet", (SIDE, SIDE, 3), output) as server:
            url = f"http://127.0.0.1:{server.ports['http']}/v1/models/mobilenet:predict"
            answer = _answer(ctx, name, url, body)
            if answer is not None and ours is not None:  # same SavedModel, same picture: same answer
                ctx.results.setdefault("verified", {})[f"mobilenet {name}"] = compare(ours, answer)
            for c in ctx.settings.mobilenet_concurrencies:
                _http_point(ctx, server, f"mobilenet.{name}.c{c}", url, body, "application/json", c)
            ctx.measure_server(f"{name} mobilenet", server)
    except BenchError as exc:
        ctx.skip(f"mobilenet {name}", str(exc).splitlines()[0])
