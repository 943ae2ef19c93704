"""ServerOptions: the modelserver's one typed settings class. Field names are ``tensorflow_model_server``'s
flag names with its defaults (``model_servers/main.cc``, ``server.h``), so ``--port=8500`` sets ``port``;
``modelserver.process.cli`` parses the flags, and ``MODELSERVER_<FIELD>`` environment variables fill what the
command line leaves unset. ``validate_combination`` rejects what TF Serving rejects at start.

Extras TF Serving does not have (environment or flag): ``bind_host`` (``0.0.0.0``, as TF Serving listens;
tests use ``127.0.0.1``), ``total_model_memory_limit_bytes`` (the RAM budget for loaded versions,
0 = 90% of the memory available at start), ``aspired_version_policy`` (``availability_preserving``, the
default and TF Serving's behaviour, or ``resource_preserving``: unload old versions before loading new ones,
for a budget that holds one version at a time; see ``modelserver.lifecycle.aspired_version_policy``); the control plane
(``modelserver.control``): ``model_control_token``, ``enable_model_config_reload``,
``allowed_model_base_paths``; bounds per request (``modelserver.runtime.limits``): ``max_request_elements``,
``max_request_bytes`` (also gRPC's receive limit), ``max_request_batch_size``; and the REST server's HTTP
limits (``guard.http``): ``rest_api_max_body_bytes`` (inflated size for gzip bodies),
``rest_api_max_header_bytes``, ``rest_api_header_timeout_seconds``, ``rest_api_body_timeout_seconds`` (no
byte for that long: 408), ``rest_api_body_deadline_seconds`` (the whole body, however it trickles: 408);
``max_connections_per_port`` (gRPC and REST each; 0 = as many as the open-file limit allows after the
descriptors reserved for the server's own work, ``guard.descriptors``);
``grpc_request_message_timeout_seconds`` (a gRPC call's request message must arrive within it:
DEADLINE_EXCEEDED, and only then does the call count against ``grpc_max_threads``; 0 = off, grpc.aio counts
calls from their HEADERS; ``modelserver.protocols.admission``);
and ``batching_dispatch_when_idle`` (default true: with batching on, a batch is cut at once when no batch is
running instead of waiting ``batch_timeout_micros``; false = TF Serving's exact scheduling, see
``modelserver.runtime.batching``); and ``num_workers`` (serving processes sharing the ports, see
``modelserver.process.supervisor``; 0 = one per usable core); and the request log's bounds
(``modelserver.observe.request_log``): ``request_log_max_file_bytes``, ``request_log_max_file_age_seconds``,
``request_log_max_total_bytes`` (per ``filename_prefix``), ``request_log_queue_size``; and drift
(``modelserver.observe.drift``): ``enable_drift_monitor``, ``drift_psi_threshold``, ``drift_window_rows``,
``drift_min_rows``, ``drift_sample_rate``, ``drift_rows_per_second``, ``drift_interval_seconds``,
``drift_cpu_budget``; and ``otlp_endpoint``, ``trace_sample_ratio`` (traces, see
``modelserver.observe.tracing``).
"""

from __future__ import annotations

import os

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelserver.errors import ConfigError
from modelserver.lifecycle.aspired_version_policy import PolicyName

__all__ = ["ServerOptions", "default_ram_budget", "parse_channel_arguments", "usable_cores"]


class ServerOptions(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELSERVER_", extra="forbid")

    port: int = Field(8500, ge=0, le=65535, description="gRPC port")
    grpc_socket_path: str = ""
    rest_api_port: int = Field(0, ge=0, le=65535, description="REST port; 0 = REST off")
    model_name: str = "default"
    model_base_path: str = ""
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: int = Field(0, ge=0)
    file_system_poll_wait_seconds: int = 1
    enable_batching: bool = False
    batching_dispatch_when_idle: bool = True
    batching_parameters_file: str = ""
    monitoring_config_file: str = ""
    enable_model_warmup: bool = True
    num_request_iterations_for_warmup: int = Field(0, ge=0)
    allow_version_labels_for_unavailable_models: bool = False
    enable_signature_method_name_check: bool = False
    enable_grpc_healthcheck_service: bool = False
    rest_api_enable_cors_support: bool = False
    saved_model_tags: str = "serve"
    tensorflow_intra_op_parallelism: int = Field(0, ge=0)
    # negative: every op in the caller's thread (TensorFlow's ConfigProto), as TF Serving passes it through
    tensorflow_inter_op_parallelism: int = Field(0, ge=-(2**31), le=2**31 - 1)
    tensorflow_session_parallelism: int = Field(0, ge=0)
    total_model_memory_limit_bytes: int = Field(0, ge=0)
    aspired_version_policy: PolicyName = "availability_preserving"
    num_load_threads: int = Field(0, ge=0, description="load thread pool; 0 = serially in the manager thread")
    num_unload_threads: int = Field(0, ge=0, description="unload thread pool; 0 = in the manager thread")
    bind_host: str = "0.0.0.0"
    model_control_token: str = ""
    enable_model_config_reload: bool = True
    allowed_model_base_paths: str = ""
    max_request_elements: int = Field(1 << 26, ge=0)
    max_request_bytes: int = Field(256 << 20, ge=0, le=2**31 - 1)
    max_request_batch_size: int = Field(1 << 16, ge=0)
    rest_api_max_body_bytes: int = Field(64 << 20, ge=1024, le=2**31 - 1)
    rest_api_max_header_bytes: int = Field(64 << 10, ge=1024, le=16 << 20)
    rest_api_header_timeout_seconds: float = Field(10.0, gt=0, le=3600)
    rest_api_body_timeout_seconds: float = Field(30.0, gt=0, le=3600)
    rest_api_body_deadline_seconds: float = Field(120.0, gt=0, le=3600)
    max_connections_per_port: int = Field(1000, ge=0)
    grpc_request_message_timeout_seconds: float = Field(5.0, ge=0, le=3600)
    num_workers: int = Field(1, ge=0, le=64, description="serving processes; 0 = one per usable core")
    # TF Serving flags whose meaning is mapped onto this server: modelserver.process.tfs_flags says how.
    rest_api_num_threads: int = Field(0, ge=0, le=1024)
    rest_api_timeout_in_ms: int = Field(30000, ge=0)
    grpc_channel_arguments: str = ""
    grpc_max_threads: int = Field(0, ge=0)
    flush_filesystem_caches: bool = True
    tensorflow_session_config_file: str = ""
    remove_unused_fields_from_bundle_metagraph: bool = False
    prefer_tflite_model: bool = False
    num_tflite_pools: int = Field(0, ge=0, le=256, description="0 = one per usable core, as TF Serving")
    num_tflite_interpreters_per_pool: int = Field(1, ge=1, le=256)
    xla_cpu_compilation_enabled: bool = False
    enable_serialization_as_tensor_content: bool = False
    ssl_config_file: str = ""
    enable_per_model_batching_parameters: bool = False
    max_num_load_retries: int = Field(0, ge=0, le=1000, description="TF Serving's default is 5")
    load_retry_interval_micros: int = 60_000_000  # negative: no wait, as TF Serving
    skip_initialize_tpu: bool = False
    # request logging (models.config logging_config; modelserver.observe): each log's files and queue
    request_log_max_file_bytes: int = Field(16 << 20, ge=1024)
    request_log_max_file_age_seconds: float = Field(300.0, gt=0)
    request_log_max_total_bytes: int = Field(1 << 30, ge=1024, description="per filename_prefix")
    request_log_queue_size: int = Field(1024, ge=1, description="records waiting for the writer")
    # drift against each version's reference profile (modelserver.observe.drift)
    enable_drift_monitor: bool = True
    drift_psi_threshold: float = Field(0.25, gt=0, description="PSI at or above which a version drifts")
    drift_window_rows: int = Field(1000, ge=10)
    drift_min_rows: int = Field(200, ge=1)
    drift_sample_rate: float = Field(1.0, ge=0, le=1, description="share of requests observed")
    drift_rows_per_second: float = Field(100.0, gt=0, description="rows compared per version, at most")
    drift_interval_seconds: float = Field(1.0, gt=0, le=60, description="how often samples are compared")
    drift_cpu_budget: float = Field(0.03, gt=0, le=1, description="CPU seconds/s the drift thread may use")
    # OpenTelemetry traces (modelserver.observe.tracing); else OTEL_EXPORTER_OTLP_ENDPOINT; off when neither
    otlp_endpoint: str = Field("", description="OTLP/gRPC collector receiving traces (the otlp extra)")
    trace_sample_ratio: float | None = Field(
        None, ge=0, le=1, description="share of root calls traced (unset: OTEL_TRACES_SAMPLER, else 0.01)"
    )

    def validate_combination(self) -> None:
        if not self.model_base_path and not self.model_config_file:
            raise ConfigError(
                "Both server_options.model_base_path and server_options.model_config_file are empty! "
                "Set --model_base_path (with --model_name) or --model_config_file."
            )
        if self.batching_parameters_file and not self.enable_batching:
            raise ConfigError("--batching_parameters_file requires --enable_batching=true")
        if self.enable_per_model_batching_parameters and not self.enable_batching:
            raise ConfigError("--enable_per_model_batching_parameters requires --enable_batching=true")
        if self.port == 0 and not self.grpc_socket_path:
            raise ConfigError("--port=0 disables the gRPC port, which requires --grpc_socket_path")
        if self.model_control_token and len(self.model_control_token) < 16:
            raise ConfigError("--model_control_token must be at least 16 characters (openssl rand -hex 24)")
        if self.rest_api_port and self.rest_api_port == self.port:
            raise ConfigError(f"--rest_api_port ({self.rest_api_port}) must be different from --port")
        if (
            self.tensorflow_intra_op_parallelism > 0
            and self.tensorflow_inter_op_parallelism > 0
            and self.tensorflow_session_parallelism > 0
        ):  # TF Serving's server.cc refuses the same
            raise ConfigError(
                "Either configure --tensorflow_session_parallelism or (--tensorflow_intra_op_parallelism, "
                "--tensorflow_inter_op_parallelism) separately. You cannot configure all."
            )
        parse_channel_arguments(self.grpc_channel_arguments)
        if self.workers > 1 and self.grpc_socket_path:
            raise ConfigError(
                f"--grpc_socket_path cannot be shared by {self.workers} workers (--num_workers): "
                "serve the unix socket with --num_workers=1, or use --port"
            )

    @property
    def workers(self) -> int:
        """Serving processes: ``num_workers``, or one per usable core when it is 0 (``usable_cores``)."""
        return self.num_workers or usable_cores()

    @property
    def allowed_roots(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.allowed_model_base_paths.split(",") if p.strip())

    @property
    def tags(self) -> frozenset[str]:
        return frozenset(t.strip() for t in self.saved_model_tags.split(",") if t.strip())


def parse_channel_arguments(text: str) -> list[tuple[str, int | str]]:
    """``--grpc_channel_arguments``: ``key=value,...`` as TF Serving's parseGrpcChannelArgs splits it; a value
    that reads as an int32 is passed as an integer, any other as a string. ConfigError names a bad item."""
    arguments: list[tuple[str, int | str]] = []
    for item in text.split(",") if text else []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or "=" in value:
            raise ConfigError(
                f"--grpc_channel_arguments: {item!r} is not key=value (e.g. grpc.max_connection_age_ms=2000)"
            )
        try:
            number = int(value)
        except ValueError:
            arguments.append((key.strip(), value))
            continue
        arguments.append((key.strip(), number if -(2**31) <= number < 2**31 else value))
    return arguments


def usable_cores(cpu_max: str = "/sys/fs/cgroup/cpu.max") -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (a container limited to
    2 CPUs on a 64-core host gets 2, not 64), rounded up, at least 1."""
    cores = len(os.sched_getaffinity(0))
    try:
        with open(cpu_max, encoding="ascii") as limit:
            quota, period = limit.read().split()[:2]
        if quota != "max":
            cores = min(cores, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def default_ram_budget() -> int:
    """90% of MemAvailable (Linux), else of physical RAM."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(int(line.split()[1]) * 1024 * 0.9)
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.9)
