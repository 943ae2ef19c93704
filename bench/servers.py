"""Starting each server under test on free loopback ports and waiting until it really serves.

Every function returns a started ``ServerProcess`` (with its ports in ``.ports``); the caller owns it and
must stop it (use it as a context manager). Nothing binds anything but 127.0.0.1.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from bench.errors import ServerFailed
from bench.peer_envs import peer_python
from bench.procs import ServerProcess, free_port, http_get
from devtools.files import write_atomic

if TYPE_CHECKING:
    from bench.context import Context

__all__ = [
    "BATCHING_PARAMETERS",
    "RAY_EXPOSED",
    "is_loopback",
    "model_available",
    "serving",
    "start_bentoml",
    "start_floor",
    "start_gateway",
    "start_kserve",
    "start_modelserver",
    "start_naive",
    "start_ray",
]

# Tuned as TF Serving's batching guide says for online serving on 2 cores: threads = cores, a small queue,
# a timeout in the 1-10 ms range. max_batch_size 64 lets concurrency 64 fill one batch.
BATCHING_PARAMETERS = """\
max_batch_size { value: 64 }
batch_timeout_micros { value: 2000 }
max_enqueued_batches { value: 64 }
num_batch_threads { value: 2 }
"""
MONITORING_CONFIG = 'prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }\n'
METRICS_PATH = "/monitoring/prometheus/metrics"
# Why Ray is measured although its internal servers listen beyond loopback (bench/baselines/ray_service.py).
RAY_EXPOSED = (
    "Ray's internal gRPC servers (GCS, raylet, workers) and agents listen on all interfaces, with no setting "
    "to change it in Ray 2.60; they require Ray's cluster token; the Serve HTTP proxy that takes the load "
    "listens on 127.0.0.1"
)
_TF_QUIET = {"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}


def is_loopback(address: str) -> bool:
    """``127.0.0.1:8501``, ``[::1]:90`` and ``[::ffff:127.0.0.1]:80`` are; ``0.0.0.0:80``, ``[::]:80`` not."""
    host = address.rsplit(":", 1)[0].strip("[]")
    return host.startswith(("127.", "::ffff:127.")) or host == "::1"


def serving(server: ServerProcess, wait: Callable[[], object], *, exposed_ok: bool = False) -> ServerProcess:
    """Start ``server``, run ``wait`` (its readiness check), record its start-up time and make sure every
    socket its process tree listens on is on loopback. On any failure - never ready, or listening on another
    address (it is then never measured) - the server is stopped before the error propagates. ``exposed_ok``
    is for Ray alone (see RAY_EXPOSED): its other listeners are recorded, not refused."""
    try:
        server.start()
        wait()
        server.mark_ready()
        exposed = [a for a in server.listening() if not is_loopback(a)]
        if exposed and not exposed_ok:
            raise ServerFailed(server.name, f"listens beyond 127.0.0.1 on {', '.join(exposed)}: not measured")
    except BaseException:
        server.stop()
        raise
    return server


def _serving_http(
    ctx: Context, server: ServerProcess, path: str, *, exposed_ok: bool = False
) -> ServerProcess:
    url = f"http://127.0.0.1:{server.ports['http']}{path}"
    return serving(server, lambda: server.wait_http(url, ctx.settings.ready_timeout_s), exposed_ok=exposed_ok)


def model_available(rest_port: int, name: str, version: int | None = None) -> bool:
    """True when the model server's REST status shows ``name`` (at ``version``, if given) AVAILABLE."""
    status, body = http_get(f"http://127.0.0.1:{rest_port}/v1/models/{name}")
    if status != 200:
        return False
    try:
        versions = json.loads(body).get("model_version_status", [])
    except ValueError:
        return False
    return any(
        v.get("state") == "AVAILABLE" and (version is None or str(v.get("version")) == str(version))
        for v in versions
    )


INTRA_OP_THREADS = 1


def start_modelserver(
    ctx: Context,
    name: str,
    config: Path,
    *,
    batching: bool,
    wait_for: tuple[str, ...],
    config_poll_s: int = 0,
    extra_flags: tuple[str, ...] = (),
    workers: int = 1,
    tree: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> ServerProcess:
    """``tree``: run the server from that source tree (an A/B of two commits, ``python -m bench.ab``);
    ``extra_env``: more environment variables for it."""
    grpc_port, rest_port = free_port(), free_port()
    monitoring = ctx.work / "monitoring.config"
    write_atomic(monitoring, MONITORING_CONFIG)
    argv = [
        sys.executable,
        "-m",
        "modelserver",
        f"--port={grpc_port}",
        f"--rest_api_port={rest_port}",
        "--bind_host=127.0.0.1",
        f"--model_config_file={config}",
        "--file_system_poll_wait_seconds=1",
        f"--monitoring_config_file={monitoring}",
        # Each batch thread runs its batch's ops itself instead of handing them to a pool that competes with
        # it for the cores (issue 30 levers: fashion gRPC c1 p50 1.38-1.44 vs 2.07-2.24 ms, MobileNetV2 gRPC
        # c16 98.7-112.7 vs 71.3-96.2 req/s); the in-process limit is measured under this rule too.
        f"--tensorflow_intra_op_parallelism={INTRA_OP_THREADS}",
    ]
    if config_poll_s:
        argv.append(f"--model_config_file_poll_wait_seconds={config_poll_s}")
    if batching:
        params = ctx.work / "batching.config"
        write_atomic(params, BATCHING_PARAMETERS)
        argv += ["--enable_batching", f"--batching_parameters_file={params}"]
    if workers > 1:
        argv.append(f"--num_workers={workers}")
    argv += extra_flags
    env = {**_TF_QUIET, **(extra_env or {}), **({"PYTHONPATH": str(tree)} if tree else {})}
    server = ctx.server(name, argv, env=env, cwd=tree)
    server.ports = {"grpc": grpc_port, "rest": rest_port}

    def wait() -> None:
        for model in wait_for:
            server.wait_until(
                partial(model_available, rest_port, model), ctx.settings.ready_timeout_s, f"serving {model}"
            )
        if workers > 1:  # the port answers once the first worker listens
            server.wait_until(
                lambda: f"all {workers} workers serving" in server.log_text(),
                ctx.settings.ready_timeout_s,
                f"all {workers} workers serving",
            )

    return serving(server, wait)


def start_gateway(ctx: Context, grpc_port: int, config: Path, name: str = "gateway") -> ServerProcess:
    port = free_port()
    env = {
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_DEFAULT_MODEL_SERVER": f"127.0.0.1:{grpc_port}",
        "GATEWAY_MODEL_CONFIG_FILE": str(config),
        "GATEWAY_ADMIN_TOKEN": "bench-admin-token-not-secret-0123456789",
        "GATEWAY_LOG_LEVEL": "warning",
        "PYTHONUNBUFFERED": "1",
    }
    server = ctx.server(name, [sys.executable, "-m", "gateway"], env=env)
    server.ports = {"http": port}
    return _serving_http(ctx, server, "/readyz")


def start_naive(ctx: Context) -> ServerProcess:
    port = free_port()
    argv = [sys.executable, "-m", "bench.baselines.naive_fastapi", str(ctx.model_path("fashion")), str(port)]
    server = ctx.server("naive-fastapi", argv, env=_TF_QUIET)
    server.ports = {"http": port}
    return _serving_http(ctx, server, "/healthz")


def start_floor(ctx: Context, sync_threads: int = 0) -> ServerProcess:
    """The transport floor (bench/baselines/transport_floor.py): grpc.aio (or with ``sync_threads``, grpcio's
    synchronous server) and uvicorn answering canned replies, ready once ``/healthz`` answers (its gRPC
    server listens before uvicorn starts)."""
    grpc_port, http_port = free_port(), free_port()
    argv = [sys.executable, "-m", "bench.baselines.transport_floor", str(grpc_port), str(http_port)]
    if sync_threads:
        argv.append(str(sync_threads))
    server = ctx.server(f"transport-floor-{sync_threads or 'aio'}", argv, env={"PYTHONUNBUFFERED": "1"})
    server.ports = {"grpc": grpc_port, "http": http_port}
    return _serving_http(ctx, server, "/healthz")


# What a peer serves: the fashion model by default; the real-size scenario passes MobileNetV2's name and shape.
FASHION_SHAPE = (28, 28, 1)


def _model_env(ctx: Context, model: str, shape: tuple[int, ...], output: str) -> dict[str, str]:
    """The peer service's model (bench/baselines/*_service.py): its version folder, name, one image's shape
    and the ``serving_default`` output it answers with."""
    return {
        "BENCH_MODEL_DIR": str(ctx.model_path(model)),
        "BENCH_MODEL_NAME": model,
        "BENCH_INPUT_SHAPE": ",".join(str(d) for d in shape),
        "BENCH_OUTPUT_NAME": output,
    }


def start_bentoml(
    ctx: Context,
    model: str = "fashion",
    shape: tuple[int, ...] = FASHION_SHAPE,
    output: str = "probabilities",
) -> ServerProcess:
    port = free_port()
    argv = [  # BentoML's CLI from its own venv (bench/peer_envs.py)
        str(peer_python(ctx.repo_root, "bentoml").with_name("bentoml")),
        "serve",
        "bench.baselines.bento_service:FashionService",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {
        **_TF_QUIET,
        **_model_env(ctx, model, shape, output),
        "BENTOML_HOME": str(ctx.work / "bentoml-home"),
        "BENTOML_DO_NOT_TRACK": "true",  # no usage analytics: nothing leaves 127.0.0.1
        "BENTOML_CONFIG_OPTIONS": "api_server.metrics.enabled=false",
    }
    server = ctx.server(
        "bentoml" if model == "fashion" else f"bentoml-{model}", argv, env=env, cwd=ctx.repo_root
    )
    server.ports = {"http": port}
    return _serving_http(ctx, server, "/readyz")


def _start_peer(
    ctx: Context,
    name: str,
    venv: str,
    module: str,
    extra_argv: list[str],
    env: dict[str, str],
    model: str,
    shape: tuple[int, ...],
    output: str,
    *,
    exposed_ok: bool = False,
) -> ServerProcess:
    """A peer from ``bench.baselines`` on a free port, run by its own venv's python (bench/peer_envs.py),
    ready once ``GET /v1/models/<model>`` answers 200."""
    port = free_port()
    argv = [str(peer_python(ctx.repo_root, venv)), "-m", module, str(port), *extra_argv]
    env = {**_TF_QUIET, **_model_env(ctx, model, shape, output), **env}
    server = ctx.server(name if model == "fashion" else f"{name}-{model}", argv, env=env, cwd=ctx.repo_root)
    server.ports = {"http": port}
    return _serving_http(ctx, server, f"/v1/models/{model}", exposed_ok=exposed_ok)


def start_ray(
    ctx: Context,
    model: str = "fashion",
    shape: tuple[int, ...] = FASHION_SHAPE,
    output: str = "probabilities",
) -> ServerProcess:
    """Ray Serve, one replica, ``max_ongoing_requests`` = the run's highest concurrency."""
    top = max(*ctx.settings.concurrencies, *ctx.settings.mobilenet_concurrencies)
    env = {
        "BENCH_MAX_CONCURRENCY": str(top),
        "RAY_USAGE_STATS_ENABLED": "0",  # no usage report: nothing leaves 127.0.0.1
    }
    argv = [str(ctx.work / f"ray-{model}")]
    return _start_peer(
        ctx,
        "ray-serve",
        "ray",
        "bench.baselines.ray_service",
        argv,
        env,
        model,
        shape,
        output,
        exposed_ok=True,
    )


def start_kserve(
    ctx: Context,
    model: str = "fashion",
    shape: tuple[int, ...] = FASHION_SHAPE,
    output: str = "probabilities",
) -> ServerProcess:
    """KServe's Python model server, v1 protocol, REST only (its gRPC server would listen on ``[::]``)."""
    return _start_peer(
        ctx, "kserve", "kserve", "bench.baselines.kserve_service", [], {}, model, shape, output
    )
