"""RequestLog: TF Serving's request logging (``logging_config`` in the model config) - a sampled share of a
model's requests, with their responses, written as ``PredictionLog`` records to TFRecord files.

Contract:
- The data plane calls ``sampled(logging)`` then ``submit(...)`` on the request path, for every protocol
  (gRPC, REST, OIP) and API (predict, classify, regress, multi-inference), after a successful reply. Both
  are cheap and never block or raise: ``submit`` puts a closure on a bounded queue; when the queue is full
  the record is dropped and counted (``modelserver_request_log_dropped_total{reason="queue_full"}``).
- One writer thread drains the queue: it builds the ``PredictionLog`` (tensors converted there, not on the
  request path), stamps its ``log_metadata`` (model spec that answered, sampling config, time) and appends
  it to the files of the model's ``filename_prefix`` (``modelserver.observe.log_files``: rotated by size,
  record count, age; total bounded; fsync'd on rotation). A write the disk refuses (full, read-only) drops
  the record (``reason="write_error"``); inference is never affected.
- ``close()`` (at shutdown) drains what is queued and finishes every file.
- Each process has its own writer and files (``<prefix>-<ms>-<pid>-<seq>.tfrecord``), so workers never
  share a file; ``max_total_bytes`` bounds each prefix's files of all processes.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry, Counter

from modelserver.lifecycle.model_config import RequestLogging
from modelserver.observe.log_files import FileLimits, RecordFiles
from modelserver.runtime.tensors import to_tensor_proto
from tfs_protos.tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

__all__ = ["RecordBuilder", "RequestLog", "predict_record"]

log = logging.getLogger("modelserver.request_log")

RecordBuilder = Callable[[], prediction_log_pb2.PredictionLog]
_DEFAULT_LIMITS = FileLimits()


@dataclass(frozen=True)
class _Pending:
    logging: RequestLogging
    model: str
    spec: model_pb2.ModelSpec
    build: RecordBuilder
    timestamp: int


def predict_record(
    spec: model_pb2.ModelSpec,
    inputs: Mapping[str, np.ndarray],
    outputs: Mapping[str, np.ndarray],
    output_filter: Sequence[str],
) -> prediction_log_pb2.PredictionLog:
    """A Predict call as TF Serving logs it, from the arrays any adapter ran (gRPC, REST JSON, OIP)."""
    request = predict_pb2.PredictRequest(output_filter=list(output_filter))
    request.model_spec.CopyFrom(spec)
    for name, array in inputs.items():
        request.inputs[name].CopyFrom(to_tensor_proto(array))
    response = predict_pb2.PredictResponse(model_spec=spec)
    for name, array in outputs.items():
        response.outputs[name].CopyFrom(to_tensor_proto(array))
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request, response=response)
    )


class RequestLog:
    def __init__(
        self,
        limits: FileLimits = _DEFAULT_LIMITS,
        *,
        queue_size: int = 1024,
        registry: CollectorRegistry | None = None,
        start: bool = True,
    ) -> None:
        """``start=False`` leaves the queue undrained until ``start()`` (tests fill it)."""
        self.limits = limits
        self._queue: queue.Queue[_Pending | None] = queue.Queue(maxsize=queue_size)
        self._files: dict[Path, RecordFiles] = {}
        self._random = random.Random()
        self._stopping = threading.Event()
        self._failing: set[Path] = set()  # prefixes whose last write failed (logged once until it recovers)
        self.dropped = Counter(
            "modelserver_request_log_dropped",
            "Sampled requests not logged: queue_full (the writer is behind) or write_error (disk refused).",
            ["model", "reason"],
            registry=registry,
        )
        self.written = Counter(
            "modelserver_request_log_records", "PredictionLog records written.", ["model"], registry=registry
        )
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        if start:
            self.start()

    def start(self) -> None:
        self._thread.start()

    # ---- request path ----------------------------------------------------------------------------------
    def sampled(self, logging: RequestLogging | None) -> bool:
        return logging is not None and self._random.random() < logging.sampling_rate

    def submit(
        self, logging: RequestLogging, model: str, spec: model_pb2.ModelSpec, build: RecordBuilder
    ) -> None:
        """Queue one record; ``build`` runs later on the writer thread. Never blocks, never raises."""
        try:
            self._queue.put_nowait(_Pending(logging, model, spec, build, int(time.time())))
        except queue.Full:
            self.dropped.labels(model, "queue_full").inc()

    # ---- writer thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        tick = min(1.0, self.limits.max_file_age_seconds)
        while True:
            try:
                item = self._queue.get(timeout=tick)
            except queue.Empty:
                if self._stopping.is_set():
                    break
                item = None
            if item is not None:
                self._write(item)
            for files in self._files.values():
                self._guarded(files, files.tick)
        for files in self._files.values():
            self._guarded(files, files.finish)

    def _write(self, item: _Pending) -> None:
        prefix = item.logging.filename_prefix
        files = self._files.get(prefix)
        if files is None:
            files = self._files[prefix] = RecordFiles(prefix, self.limits)
        try:
            record = item.build()
            metadata = record.log_metadata
            metadata.model_spec.CopyFrom(item.spec)
            metadata.sampling_config.sampling_rate = item.logging.sampling_rate
            metadata.saved_model_tags.append("serve")
            metadata.timestamp_secs = item.timestamp
            data = record.SerializeToString()
        except Exception:  # a bug in a builder must not stop the writer
            log.exception("model %s: could not build a request log record", item.model)
            self.dropped.labels(item.model, "encode_error").inc()
            return
        if self._guarded(files, lambda: files.append(data)):
            self.written.labels(item.model).inc()
        else:
            self.dropped.labels(item.model, "write_error").inc()

    def _guarded(self, files: RecordFiles, action: Callable[[], None]) -> bool:
        try:
            action()
        except OSError as exc:
            if files.prefix not in self._failing:
                log.warning("request log %s: %s (records are dropped and counted)", files.prefix, exc)
                self._failing.add(files.prefix)
            return False
        if files.prefix in self._failing:
            log.info("request log %s: writing again", files.prefix)
            self._failing.discard(files.prefix)
        return True

    def close(self) -> None:
        """Write what is queued, finish every file, stop the writer (at shutdown)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
