"""Starting each server under test on free loopback ports and waiting until it really serves.

Every function returns a started ``ServerProcess`` (with its ports in ``.ports``); the caller owns it and
must stop it (use it as a context manager). Nothing binds anything but 127.0.0.1.
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from bench.procs import ServerProcess, free_port, http_get
from devtools.files import write_atomic

if TYPE_CHECKING:
    from bench.context import Context

__all__ = [
    "BATCHING_PARAMETERS",
    "model_available",
    "start_bentoml",
    "start_gateway",
    "start_modelserver",
    "start_naive",
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
_TF_QUIET = {"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}


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


def start_modelserver(
    ctx: Context,
    name: str,
    config: Path,
    *,
    batching: bool,
    wait_for: tuple[str, ...],
    config_poll_s: int = 0,
    extra_flags: tuple[str, ...] = (),
) -> ServerProcess:
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
    ]
    if config_poll_s:
        argv.append(f"--model_config_file_poll_wait_seconds={config_poll_s}")
    if batching:
        params = ctx.work / "batching.config"
        write_atomic(params, BATCHING_PARAMETERS)
        argv += ["--enable_batching", f"--batching_parameters_file={params}"]
    argv += extra_flags
    server = ctx.server(name, argv, env=_TF_QUIET)
    server.ports = {"grpc": grpc_port, "rest": rest_port}
    server.start()
    for model in wait_for:
        server.wait_until(
            partial(model_available, rest_port, model), ctx.settings.ready_timeout_s, f"serving {model}"
        )
    return server


def start_gateway(ctx: Context, grpc_port: int, config: Path) -> ServerProcess:
    port = free_port()
    env = {
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_DEFAULT_MODEL_SERVER": f"127.0.0.1:{grpc_port}",
        "GATEWAY_MODEL_CONFIG_FILE": str(config),
        "GATEWAY_STATE_FILE": str(ctx.work / "gateway-state.json"),
        "GATEWAY_ADMIN_TOKEN": "bench-admin-token-not-secret-0123456789",
        "GATEWAY_LOG_LEVEL": "warning",
        "PYTHONUNBUFFERED": "1",
    }
    server = ctx.server("gateway", [sys.executable, "-m", "gateway"], env=env)
    server.ports = {"http": port}
    server.start()
    server.wait_http(f"http://127.0.0.1:{port}/readyz", ctx.settings.ready_timeout_s)
    return server


def start_naive(ctx: Context) -> ServerProcess:
    port = free_port()
    argv = [sys.executable, "-m", "bench.baselines.naive_fastapi", str(ctx.model_path("fashion")), str(port)]
    server = ctx.server("naive-fastapi", argv, env=_TF_QUIET)
    server.ports = {"http": port}
    server.start()
    server.wait_http(f"http://127.0.0.1:{port}/healthz", ctx.settings.ready_timeout_s)
    return server


def start_bentoml(ctx: Context) -> ServerProcess:
    port = free_port()
    bentoml = Path(sys.executable).with_name("bentoml")
    argv = [
        str(bentoml),
        "serve",
        "bench.baselines.bento_service:FashionService",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {
        **_TF_QUIET,
        "BENCH_MODEL_DIR": str(ctx.model_path("fashion")),
        "BENTOML_HOME": str(ctx.work / "bentoml-home"),
        "BENTOML_DO_NOT_TRACK": "true",  # no usage analytics: nothing leaves 127.0.0.1
        "BENTOML_CONFIG_OPTIONS": "api_server.metrics.enabled=false",
    }
    server = ctx.server("bentoml", argv, env=env, cwd=ctx.repo_root)
    server.ports = {"http": port}
    server.start()
    server.wait_http(f"http://127.0.0.1:{port}/readyz", ctx.settings.ready_timeout_s)
    return server
