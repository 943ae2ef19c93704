"""What watches served traffic (``modelserver.observe``), built from the server's options: the request log
(``logging_config`` of models.config), the drift monitor (reference profiles) and traces."""

from __future__ import annotations

from modelserver.metrics import METRICS
from modelserver.observe import tracing
from modelserver.observe.drift import DriftMonitor, DriftSettings
from modelserver.observe.log_files import FileLimits
from modelserver.observe.request_log import RequestLog
from modelserver.process.options import ServerOptions

__all__ = ["drift_monitor", "request_log", "start_tracing"]


def start_tracing(o: ServerOptions) -> None:
    """Traces (modelserver.observe.tracing): on when --otlp_endpoint, OTEL_EXPORTER_OTLP_ENDPOINT or
    MODELSERVER_TRACE_FILE is set; roots sampled at --trace_sample_ratio (else OTEL_TRACES_SAMPLER, else 1 %)."""
    tracing.configure(o.otlp_endpoint, sample_ratio=o.trace_sample_ratio)


def request_log(o: ServerOptions) -> RequestLog:
    limits = FileLimits(
        max_file_bytes=o.request_log_max_file_bytes,
        max_file_age_seconds=o.request_log_max_file_age_seconds,
        max_total_bytes=o.request_log_max_total_bytes,
    )
    return RequestLog(limits, queue_size=o.request_log_queue_size, registry=METRICS.registry)


def drift_monitor(o: ServerOptions) -> DriftMonitor | None:
    if not o.enable_drift_monitor:
        return None
    settings = DriftSettings(
        threshold=o.drift_psi_threshold,
        window_rows=o.drift_window_rows,
        min_rows=o.drift_min_rows,
        sample_rate=o.drift_sample_rate,
        rows_per_second=o.drift_rows_per_second,
        interval=o.drift_interval_seconds,
        cpu_budget=o.drift_cpu_budget,
    )
    return DriftMonitor(settings, registry=METRICS.registry)
