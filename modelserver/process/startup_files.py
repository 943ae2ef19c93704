"""The files a server starts from, read and validated before TensorFlow is imported so bad ones fail fast:
the model config (or ``--model_name``/``--model_base_path``), the batching parameters, the monitoring config
the session config (``--tensorflow_session_config_file``, a text ConfigProto, kept serialized) and the gRPC
port's TLS (``--ssl_config_file``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelserver.lifecycle.model_config import ModelEntry, model_entries, parse_model_config
from modelserver.lifecycle.version_policy import LatestVersions
from modelserver.process.monitoring_config import MonitoringConfig, parse_monitoring_config
from modelserver.process.options import ServerOptions
from modelserver.process.ssl_config import SslConfig, parse_ssl_config
from modelserver.runtime.batching_config import BatchingConfig, parse_batching_config
from modelserver.textproto import parse_text, read_text_file
from tfs_protos.tensorflow.core.protobuf import config_pb2

__all__ = ["StartupFiles", "read_startup_files"]


@dataclass(frozen=True)
class StartupFiles:
    """The parsed files a server starts from (read before TensorFlow is imported, so bad ones fail fast)."""

    entries: dict[str, ModelEntry]
    model_config_text: str
    batching: BatchingConfig | None
    monitoring: MonitoringConfig
    session_config: bytes = b""
    ssl: SslConfig | None = None


def read_startup_files(options: ServerOptions, cwd: Path | None = None) -> StartupFiles:
    cwd = cwd or Path.cwd()
    batching: BatchingConfig | None = None
    if options.enable_batching:
        path = options.batching_parameters_file
        batching = (
            parse_batching_config(read_text_file(path, "batching parameters file"), path)
            if path
            else BatchingConfig()
        )
    monitoring = MonitoringConfig()
    if options.monitoring_config_file:
        path = options.monitoring_config_file
        monitoring = parse_monitoring_config(read_text_file(path, "monitoring config file"), path)
    if options.model_config_file:
        text = read_text_file(options.model_config_file, "model config file")
        entries = model_entries(parse_model_config(text, options.model_config_file), base_dir=cwd)
    else:
        text = ""
        base = Path(options.model_base_path)
        entry = ModelEntry(options.model_name, base if base.is_absolute() else cwd / base, LatestVersions(1))
        entries = {options.model_name: entry}
    session_config = b""
    if options.tensorflow_session_config_file:
        path = options.tensorflow_session_config_file
        what = "TensorFlow session config file"
        session_config = parse_text(read_text_file(path, what), config_pb2.ConfigProto(), what, path)
        session_config = session_config.SerializeToString()
    ssl = None
    if options.ssl_config_file:
        path = options.ssl_config_file
        ssl = parse_ssl_config(read_text_file(path, "SSL config file"), path)
    return StartupFiles(entries, text, batching, monitoring, session_config, ssl)
