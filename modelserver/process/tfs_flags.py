"""Every ``tensorflow_model_server`` flag and what this server does with it: the one table behind ``--help``,
the command-line parser (``cli.parse_flags``) and docs/flags.md (``flags_markdown``).

Source: ``tensorflow_serving/model_servers/main.cc`` at commit ``9d981c5c`` (the 2.21 line), 48 flags, in its
order. Each flag is

- ``implemented``: a ``ServerOptions`` field of the same name, with TF Serving's meaning;
- ``differently``: a ``ServerOptions`` field, same name, its meaning mapped onto this server (the note says how);
- ``refused``: setting it fails at start with the note as the message, except to the values in ``accepts``,
  which ask for what this server does anyway (``--enable_profiler=false``, an empty ``--ssl_config_file``).

No flag is accepted and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["TFS_FLAGS", "TfsFlag", "flags_markdown", "refusal"]

Status = Literal["implemented", "differently", "refused"]


@dataclass(frozen=True)
class TfsFlag:
    status: Status
    note: str = ""
    accepts: tuple[str, ...] = ()  # refused flags: values accepted anyway (lower case)


def _refused(note: str, *accepts: str) -> TfsFlag:
    return TfsFlag("refused", note, accepts)


_FALSE = ("false", "0")

TFS_FLAGS: dict[str, TfsFlag] = {
    "port": TfsFlag("implemented"),
    "grpc_socket_path": TfsFlag("implemented"),
    "rest_api_port": TfsFlag("implemented"),
    "rest_api_num_threads": TfsFlag(
        "differently",
        "REST runs on an event loop; this sizes the thread pool that parses and writes large bodies "
        "(0 = the default, 40)",
    ),
    "rest_api_timeout_in_ms": TfsFlag(
        "differently",
        "the deadline of each REST call (default 30000, as TF Serving): work still queued when it passes is "
        "not run and the call answers DEADLINE_EXCEEDED; 0 = none",
    ),
    "rest_api_enable_cors_support": TfsFlag("implemented"),
    "enable_batching": TfsFlag("implemented"),
    "allow_version_labels_for_unavailable_models": TfsFlag("implemented"),
    "batching_parameters_file": TfsFlag("implemented"),
    "enable_per_model_batching_parameters": TfsFlag(
        "implemented",
        "a version's batching_params.pbtxt replaces --batching_parameters_file for it, batch threads aside "
        "(needs --enable_batching)",
    ),
    "model_config_file": TfsFlag("implemented"),
    "model_config_file_poll_wait_seconds": TfsFlag("implemented"),
    "model_name": TfsFlag("implemented"),
    "model_base_path": TfsFlag("implemented"),
    "num_load_threads": TfsFlag("implemented"),
    "num_unload_threads": TfsFlag("implemented"),
    "max_num_load_retries": TfsFlag(
        "differently",
        "default 0 here (TF Serving: 5): a version that fails to load fails at once and is loaded again when "
        "its directory changes; N > 0 retries a failed load N times in the load thread",
    ),
    "load_retry_interval_micros": TfsFlag(
        "implemented", "the wait between retries (default 1 minute; negative: no wait), in the load thread"
    ),
    "file_system_poll_wait_seconds": TfsFlag("implemented"),
    "flush_filesystem_caches": TfsFlag(
        "differently",
        "true (default): after the start-up loads and after each load, the pages of TensorFlow's libraries "
        "that only loading used are released (guard.pages); TF Serving flushes its file systems' caches at "
        "those moments (a no-op for local paths)",
    ),
    "tensorflow_session_parallelism": TfsFlag(
        "implemented",
        "both pools, unless the intra-op or inter-op flag is above 0 (then both of those, as given)",
    ),
    "tensorflow_session_config_file": TfsFlag(
        "implemented",
        "a text ConfigProto; its thread-pool sizes are always replaced by the parallelism flags' (0: "
        "TensorFlow's choice), as TF Serving's server.cc does",
    ),
    "tensorflow_intra_op_parallelism": TfsFlag(
        "implemented", "with the other two all above 0: refused at start, as in TF Serving"
    ),
    "tensorflow_inter_op_parallelism": TfsFlag(
        "implemented", "negative (with the intra-op flag above 0): every op in the caller's thread"
    ),
    "use_alts_credentials": _refused("ALTS (Google Cloud's mutual authentication) is not available", *_FALSE),
    "ssl_config_file": TfsFlag(
        "implemented",
        "TLS on the gRPC port and socket (SSLConfig: server_key, server_cert, custom_ca, client_verify)",
    ),
    "platform_config_file": _refused(
        "only the TensorFlow platform (SavedModel, and TF Lite with --prefer_tflite_model) is served", ""
    ),
    "per_process_gpu_memory_fraction": _refused("this server runs on CPUs only", "0", "0.0"),
    "saved_model_tags": TfsFlag("implemented"),
    "grpc_channel_arguments": TfsFlag(
        "implemented", "key=value,...; an integer value is passed as an integer, any other as a string"
    ),
    "grpc_max_threads": TfsFlag(
        "differently",
        "the gRPC server is asynchronous: this caps the RPCs served at once, beyond which a call is refused "
        "RESOURCE_EXHAUSTED, as TF Serving's thread quota does (0 = the default, 2,000; TF Serving: 4 x cores). "
        "A call counts once its request message has arrived: calls still waiting for it are bounded by "
        "`--grpc_request_message_timeout_seconds` (ours, default 5 s) and 500 at once, the oldest ended first "
        "(issue 25)",
    ),
    "enable_model_warmup": TfsFlag("implemented"),
    "num_request_iterations_for_warmup": TfsFlag("implemented"),
    "version": TfsFlag("implemented"),
    "monitoring_config_file": TfsFlag("implemented"),
    "remove_unused_fields_from_bundle_metagraph": TfsFlag(
        "implemented", "true: a loaded version keeps its SignatureDefs, not the whole MetaGraphDef"
    ),
    "prefer_tflite_model": TfsFlag(
        "implemented", "model.tflite runs in LiteRT's interpreter (ai-edge-litert)"
    ),
    "num_tflite_pools": TfsFlag(
        "differently", "with num_tflite_interpreters_per_pool, the number of interpreters per TF Lite version"
    ),
    "num_tflite_interpreters_per_pool": TfsFlag(
        "differently",
        "interpreters per TF Lite version = num_tflite_pools x this (each runs one call at a time)",
    ),
    "enable_signature_method_name_check": TfsFlag("implemented"),
    "xla_cpu_compilation_enabled": TfsFlag(
        "differently",
        "functions compiled with XLA (jit_compile=True) always run, as in TensorFlow; TF Serving fails them "
        "unless this is true",
    ),
    "xla_gpu_compilation_enabled": _refused("this server runs on CPUs only", *_FALSE),
    "enable_profiler": _refused(
        "TensorFlow's profiler service is not hosted on the gRPC port (TF Serving's default is true)", *_FALSE
    ),
    "thread_pool_factory_config_file": _refused(
        "custom thread-pool factories are not supported; use the --tensorflow_*_parallelism flags", ""
    ),
    "mixed_precision": _refused("models run in the precision they were saved in", ""),
    "skip_initialize_tpu": TfsFlag(
        "implemented", "as in TF Serving's CPU build: there is no TPU to initialize, either value"
    ),
    "enable_grpc_healthcheck_service": TfsFlag("implemented"),
    "enable_serialization_as_tensor_content": TfsFlag(
        "implemented",
        "Predict replies carry tensor_content (raw bytes) instead of float_val, ...; strings stay",
    ),
}


def refusal(name: str, raw: str) -> str | None:
    """The start-up error for ``--name=raw`` when the flag is refused at that value, else None."""
    flag = TFS_FLAGS.get(name)
    if flag is None or flag.status != "refused" or raw.strip().lower() in flag.accepts:
        return None
    accepted = " (accepted: " + ", ".join(f"--{name}={a}" for a in flag.accepts) + ")" if flag.accepts else ""
    return f"--{name} is not supported by this model server: {flag.note}{accepted}"


def flags_markdown() -> str:
    """The table of docs/flags.md."""
    rows = ["| flag | here | how / why |", "|---|---|---|"]
    for name, flag in TFS_FLAGS.items():
        label = {"implemented": "implemented", "differently": "implemented differently"}.get(flag.status)
        if label is None:
            accepts = ", ".join(f"`{a}`" if a else "an empty value" for a in flag.accepts)
            label = "refused at start" + (f" (accepts {accepts})" if accepts else "")
        rows.append(f"| `--{name}` | {label} | {flag.note} |")
    return "\n".join(rows) + "\n"
