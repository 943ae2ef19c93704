"""Config files in TF Serving's text-proto formats: the model config (``ModelServerConfig``), the batching
parameters (``BatchingParameters``) and the monitoring config (``MonitoringConfig``).

The model config uses the ``tensorflow_serving.config`` protos shipped with tensorflow-serving-api. The other
two messages are not shipped as Python modules, so their descriptors are declared here with TF Serving's field
names and numbers (``session_bundle_config.proto``, ``monitoring_config.proto``); the same files therefore
parse here and in ``tensorflow_model_server``. Any malformed file raises ``ConfigError`` naming the file and
the problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2

from modelserver.errors import ConfigError
from modelserver.options import ServerOptions
from modelserver.policy import LatestVersions, VersionPolicy, policy_from_proto
from modelserver.source import ModelSource
from tfs_protos.tensorflow_serving.config import model_server_config_pb2

__all__ = [
    "DEFAULT_PROMETHEUS_PATH",
    "BatchingConfig",
    "ModelEntry",
    "MonitoringConfig",
    "StartupFiles",
    "model_entries",
    "parse_batching_config",
    "parse_model_config",
    "parse_monitoring_config",
    "read_model_config_file",
    "read_startup_files",
]

DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


def _declare_messages() -> tuple[type[Any], type[Any]]:
    T = descriptor_pb2.FieldDescriptorProto
    f = descriptor_pb2.FileDescriptorProto(
        name="modelserver/tf_serving_config_subset.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )

    def add(
        message: descriptor_pb2.DescriptorProto,
        name: str,
        number: int,
        kind: int,
        type_name: str = "",
        repeated: bool = False,
    ) -> None:
        added = message.field.add(
            name=name, number=number, type=kind, label=T.LABEL_REPEATED if repeated else T.LABEL_OPTIONAL
        )
        if type_name:
            added.type_name = type_name

    batching = f.message_type.add(name="BatchingParameters")
    for name, number in (
        ("max_batch_size", 1),
        ("batch_timeout_micros", 2),
        ("max_enqueued_batches", 3),
        ("num_batch_threads", 4),
        ("max_execution_batch_size", 9),
    ):
        add(batching, name, number, T.TYPE_MESSAGE, ".google.protobuf.Int64Value")
    add(batching, "thread_pool_name", 5, T.TYPE_MESSAGE, ".google.protobuf.StringValue")
    add(batching, "allowed_batch_sizes", 6, T.TYPE_INT64, repeated=True)
    add(batching, "pad_variable_length_inputs", 7, T.TYPE_BOOL)
    add(batching, "enable_large_batch_splitting", 8, T.TYPE_MESSAGE, ".google.protobuf.BoolValue")

    prometheus = f.message_type.add(name="PrometheusConfig")
    add(prometheus, "enable", 1, T.TYPE_BOOL)
    add(prometheus, "path", 2, T.TYPE_STRING)
    monitoring = f.message_type.add(name="MonitoringConfig")
    add(monitoring, "prometheus_config", 1, T.TYPE_MESSAGE, ".tensorflow.serving.PrometheusConfig")

    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(f)
    return (
        message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")),
        message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig")),
    )


BatchingParametersProto, MonitoringConfigProto = _declare_messages()


def _parse_text(text: str, message: Any, what: str, source: str) -> Any:
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as exc:
        # Worded as the C++ protobuf parser that tensorflow_model_server uses words it:
        # "Error parsing text-format <message type>: <line>:<column>: <what is wrong>".
        detail = re.sub(r"^\d+:\d+ : ", "", str(exc))
        where = f"{exc.GetLine()}:{exc.GetColumn()}: " if exc.GetLine() is not None else ""
        raise ConfigError(
            f"{what} {source} is not a valid text proto: Error parsing text-format "
            f"{message.DESCRIPTOR.full_name}: {where}{detail}"
        ) from None


def _read(path: str | Path, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from None


# ---- model config ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelEntry:
    name: str
    base_path: Path
    policy: VersionPolicy
    labels: dict[str, int] = field(default_factory=dict)

    @property
    def source(self) -> ModelSource:
        return ModelSource(self.name, self.base_path, self.policy)


def parse_model_config(text: str, source: str = "<text>") -> model_server_config_pb2.ModelServerConfig:
    return _parse_text(text, model_server_config_pb2.ModelServerConfig(), "model config", source)


def read_model_config_file(path: str | Path) -> model_server_config_pb2.ModelServerConfig:
    return parse_model_config(_read(path, "model config file"), str(path))


def model_entries(
    config: model_server_config_pb2.ModelServerConfig, *, base_dir: Path | None = None
) -> dict[str, ModelEntry]:
    """Validated models of a ModelServerConfig; relative base paths resolve against ``base_dir`` (cwd)."""
    kind = config.WhichOneof("config")
    if kind == "custom_model_config":
        raise ConfigError("custom_model_config is not supported; use model_config_list")
    entries: dict[str, ModelEntry] = {}
    for model in config.model_config_list.config:
        if not model.name:
            raise ConfigError("a model in model_config_list has no name")
        if not model.base_path:
            raise ConfigError(f"model {model.name} has no base_path")
        if model.name in entries:
            raise ConfigError(f"model name {model.name} appears twice in model_config_list")
        if model.model_platform and model.model_platform != "tensorflow":
            raise ConfigError(
                f"model {model.name}: model_platform {model.model_platform!r} is not supported "
                "(only 'tensorflow')"
            )
        base = Path(model.base_path)
        if not base.is_absolute() and base_dir is not None:
            base = base_dir / base
        policy = policy_from_proto(model.model_version_policy)
        entries[model.name] = ModelEntry(
            model.name, base, policy, {k: int(v) for k, v in model.version_labels.items()}
        )
    return entries


# ---- batching parameters ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchingConfig:
    """Batching parameters with defaults where the file leaves a field unset (TF's shared batch scheduler:
    max_batch_size 1000, timeout 0, max_enqueued_batches 10, threads = CPUs)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = 0  # 0 = number of CPUs
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int = 0

    def __post_init__(self) -> None:
        if self.max_batch_size <= 0:
            raise ConfigError("batching parameters: max_batch_size must be positive")
        if self.batch_timeout_micros < 0:
            raise ConfigError("batching parameters: batch_timeout_micros must be >= 0")
        if self.max_enqueued_batches <= 0:
            raise ConfigError("batching parameters: max_enqueued_batches must be positive")
        if self.num_batch_threads < 0:
            raise ConfigError("batching parameters: num_batch_threads must be >= 0")
        sizes = self.allowed_batch_sizes
        if sizes:
            if any(s <= 0 for s in sizes) or list(sizes) != sorted(set(sizes)):
                raise ConfigError("batching parameters: allowed_batch_sizes must be positive and increasing")
            if sizes[-1] != self.max_batch_size:
                raise ConfigError(
                    f"batching parameters: the last entry in allowed_batch_sizes ({sizes[-1]}) must equal "
                    f"max_batch_size ({self.max_batch_size})"
                )


def parse_batching_config(text: str, source: str = "<text>") -> BatchingConfig:
    proto = _parse_text(text, BatchingParametersProto(), "batching parameters file", source)
    values: dict[str, Any] = {}
    for name in (
        "max_batch_size",
        "batch_timeout_micros",
        "max_enqueued_batches",
        "num_batch_threads",
        "max_execution_batch_size",
    ):
        if proto.HasField(name):
            values[name] = int(getattr(proto, name).value)
    if proto.HasField("enable_large_batch_splitting"):
        values["enable_large_batch_splitting"] = bool(proto.enable_large_batch_splitting.value)
    values["allowed_batch_sizes"] = tuple(int(s) for s in proto.allowed_batch_sizes)
    values["pad_variable_length_inputs"] = bool(proto.pad_variable_length_inputs)
    try:
        return BatchingConfig(**values)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


# ---- monitoring config -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MonitoringConfig:
    prometheus_enabled: bool = False
    prometheus_path: str = DEFAULT_PROMETHEUS_PATH


def parse_monitoring_config(text: str, source: str = "<text>") -> MonitoringConfig:
    proto = _parse_text(text, MonitoringConfigProto(), "monitoring config file", source)
    path = proto.prometheus_config.path or DEFAULT_PROMETHEUS_PATH
    if not path.startswith("/"):
        raise ConfigError(f"monitoring config file {source}: prometheus_config.path must start with '/'")
    return MonitoringConfig(bool(proto.prometheus_config.enable), path)


# ---- everything read at start ----------------------------------------------------------------------------
@dataclass(frozen=True)
class StartupFiles:
    """The parsed files a server starts from (read before TensorFlow is imported, so bad ones fail fast)."""

    entries: dict[str, ModelEntry]
    model_config_text: str
    batching: BatchingConfig | None
    monitoring: MonitoringConfig


def read_startup_files(options: ServerOptions, cwd: Path | None = None) -> StartupFiles:
    cwd = cwd or Path.cwd()
    batching: BatchingConfig | None = None
    if options.enable_batching:
        path = options.batching_parameters_file
        batching = (
            parse_batching_config(_read(path, "batching parameters file"), path) if path else BatchingConfig()
        )
    monitoring = MonitoringConfig()
    if options.monitoring_config_file:
        path = options.monitoring_config_file
        monitoring = parse_monitoring_config(_read(path, "monitoring config file"), path)
    if options.model_config_file:
        text = _read(options.model_config_file, "model config file")
        entries = model_entries(parse_model_config(text, options.model_config_file), base_dir=cwd)
    else:
        text = ""
        base = Path(options.model_base_path)
        entry = ModelEntry(options.model_name, base if base.is_absolute() else cwd / base, LatestVersions(1))
        entries = {options.model_name: entry}
    return StartupFiles(entries, text, batching, monitoring)
