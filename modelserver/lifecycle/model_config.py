"""The model config file (``ModelServerConfig``, TF Serving's ``model_server_config.proto`` shipped with
tensorflow-serving-api): parsed, validated and turned into one ``ModelEntry`` per configured model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from modelserver.errors import ConfigError
from modelserver.lifecycle.source import ModelSource
from modelserver.lifecycle.version_policy import VersionPolicy, policy_from_proto
from modelserver.textproto import parse_text, read_text_file
from tfs_protos.tensorflow_serving.config import model_server_config_pb2

__all__ = ["ModelEntry", "RequestLogging", "model_entries", "parse_model_config", "read_model_config_file"]


@dataclass(frozen=True)
class RequestLogging:
    """A model's ``logging_config``: the fraction of its requests logged (``sampling_config.sampling_rate``)
    and the path prefix of the log files (``log_collector_config.filename_prefix``; relative to the cwd).
    Written by ``modelserver.observe.request_log``."""

    sampling_rate: float
    filename_prefix: Path


@dataclass(frozen=True)
class ModelEntry:
    name: str
    base_path: Path
    policy: VersionPolicy
    labels: dict[str, int] = field(default_factory=dict)
    logging: RequestLogging | None = None

    @property
    def source(self) -> ModelSource:
        return ModelSource(self.name, self.base_path, self.policy)


def parse_model_config(text: str, source: str = "<text>") -> model_server_config_pb2.ModelServerConfig:
    return parse_text(text, model_server_config_pb2.ModelServerConfig(), "model config", source)


def read_model_config_file(path: str | Path) -> model_server_config_pb2.ModelServerConfig:
    return parse_model_config(read_text_file(path, "model config file"), str(path))


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
            model.name,
            base,
            policy,
            {k: int(v) for k, v in model.version_labels.items()},
            _request_logging(model, base_dir),
        )
    return entries


def _request_logging(
    model: model_server_config_pb2.ModelConfig, base_dir: Path | None
) -> RequestLogging | None:
    """The model's ``logging_config``, checked; None when absent or sampling nothing."""
    if not model.HasField("logging_config"):
        return None
    config = model.logging_config
    rate = config.sampling_config.sampling_rate
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"model {model.name}: logging_config sampling_rate {rate} is not within [0, 1]")
    if config.HasField("custom_logging_config"):
        raise ConfigError(f"model {model.name}: logging_config custom_logging_config is not supported")
    collector = config.log_collector_config
    if collector.type and collector.type != "tfrecord":
        raise ConfigError(
            f"model {model.name}: log_collector_config type {collector.type!r} is not supported "
            "(only 'tfrecord' or empty)"
        )
    if rate == 0.0:
        return None
    if not collector.filename_prefix:
        raise ConfigError(f"model {model.name}: logging_config needs log_collector_config.filename_prefix")
    prefix = Path(collector.filename_prefix)
    if not prefix.is_absolute() and base_dir is not None:
        prefix = base_dir / prefix
    return RequestLogging(rate, prefix)
