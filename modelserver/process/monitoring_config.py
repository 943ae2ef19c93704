"""The monitoring config (``--monitoring_config_file``, TF Serving's ``MonitoringConfig`` text proto from
``monitoring_config.proto``): whether and where Prometheus metrics are served on the REST port."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelserver.errors import ConfigError
from modelserver.textproto import Field, declare_message, parse_text

__all__ = ["DEFAULT_PROMETHEUS_PATH", "MonitoringConfig", "parse_monitoring_config"]

DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


def _declare(f: Any, add: Any) -> None:
    prometheus = f.message_type.add(name="PrometheusConfig")
    add(prometheus, "enable", 1, Field.TYPE_BOOL)
    add(prometheus, "path", 2, Field.TYPE_STRING)
    monitoring = f.message_type.add(name="MonitoringConfig")
    add(monitoring, "prometheus_config", 1, Field.TYPE_MESSAGE, ".tensorflow.serving.PrometheusConfig")


MonitoringConfigProto = declare_message("MonitoringConfig", _declare)


@dataclass(frozen=True)
class MonitoringConfig:
    prometheus_enabled: bool = False
    prometheus_path: str = DEFAULT_PROMETHEUS_PATH


def parse_monitoring_config(text: str, source: str = "<text>") -> MonitoringConfig:
    proto = parse_text(text, MonitoringConfigProto(), "monitoring config file", source)
    path = proto.prometheus_config.path or DEFAULT_PROMETHEUS_PATH
    if not path.startswith("/"):
        raise ConfigError(f"monitoring config file {source}: prometheus_config.path must start with '/'")
    return MonitoringConfig(bool(proto.prometheus_config.enable), path)
