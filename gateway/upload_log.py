"""Raw-upload logging: sampled uploads (image bytes, texts, records) with their answers, written to rotated,
size-bounded JSON-lines files. Opt-in for privacy (issue 28): off unless ``GATEWAY_UPLOAD_LOG_DIR`` is set and
``GATEWAY_UPLOAD_LOG_SAMPLE_RATE`` > 0; its own sampling, apart from the model server's request log.

Files: ``<dir>/uploads-<ms since epoch>-<pid>-<seq>.jsonl.active`` while written, renamed to ``... .jsonl``
(after an fsync) when it reaches ``GATEWAY_UPLOAD_LOG_MAX_FILE_BYTES`` or at shutdown; after each finished
file the oldest finished files are deleted until they hold at most ``GATEWAY_UPLOAD_LOG_MAX_TOTAL_BYTES``.
One line per sampled request: ``{"time", "model", "route", "files": [{"name", "data" (base64)}] | "texts"
| "records", "reply"}``.

Never blocks a request: ``offer`` puts the record on a bounded queue for one writer thread; a full queue
or a disk error drops the record, counted in ``gateway_upload_log_dropped_total{reason}``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import random
import threading
import time
from pathlib import Path
from typing import Any

from gateway.metrics import Metrics
from gateway.settings import Settings

__all__ = ["UploadLog"]

SUFFIX = ".jsonl"
_ACTIVE = ".jsonl.active"


class UploadLog:
    def __init__(self, settings: Settings, metrics: Metrics, *, rng: random.Random | None = None) -> None:
        self._dir = Path(settings.upload_log_dir)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._rate = settings.upload_log_sample_rate
        self._max_file = settings.upload_log_max_file_bytes
        self._max_total = settings.upload_log_max_total_bytes
        self._metrics = metrics
        self._random = (rng or random.Random()).random
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(settings.upload_log_queue_size)
        self._seq = 0
        self._file: Any = None
        self._path: Path | None = None
        self._size = 0
        self._thread = threading.Thread(target=self._write_all, name="upload-log", daemon=True)
        self._thread.start()

    @staticmethod
    def enabled(settings: Settings) -> bool:
        return bool(settings.upload_log_dir) and settings.upload_log_sample_rate > 0

    def offer(
        self,
        model: str,
        route: str,
        files: list[tuple[str, bytes]],
        texts: list[str] | None,
        records: list[dict[str, Any]] | None,
        reply: Any,
    ) -> None:
        """Sample this request; queue its record, or count it dropped. Never blocks. ``reply``: the answer
        (a pydantic model is dumped by the writer thread, off the request path)."""
        if self._random() >= self._rate:
            return
        record: dict[str, Any] = {"time": time.time(), "model": model, "route": route, "reply": reply}
        if files:
            record["files"] = [{"name": n, "data": base64.b64encode(d).decode("ascii")} for n, d in files]
        elif texts is not None:
            record["texts"] = texts
        else:
            record["records"] = records
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self._metrics.upload_log_dropped.labels("queue_full").inc()

    def close(self) -> None:
        """Write what is queued, finish the open file, stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _write_all(self) -> None:
        while (record := self._queue.get()) is not None:
            try:
                self._write(json.dumps(record, default=_plain).encode() + b"\n")
                self._metrics.upload_log_written.inc()
            except (OSError, TypeError, ValueError):
                self._metrics.upload_log_dropped.labels("write_error").inc()
                self._abandon()
        with contextlib.suppress(OSError):
            self._finish()

    def _write(self, line: bytes) -> None:
        if self._file is None:
            self._seq += 1
            name = f"uploads-{int(time.time() * 1000):013d}-{os.getpid()}-{self._seq:06d}{_ACTIVE}"
            self._path = self._dir / name
            self._file = open(self._path, "ab")  # noqa: SIM115 - kept open across records
            self._size = 0
        self._file.write(line)
        self._file.flush()
        self._size += len(line)
        if self._size >= self._max_file:
            self._finish()

    def _finish(self) -> None:
        if self._file is None or self._path is None:
            return
        file, path, self._file, self._path = self._file, self._path, None, None
        os.fsync(file.fileno())
        file.close()
        path.rename(path.with_name(path.name.removesuffix(_ACTIVE) + SUFFIX))
        self._trim()

    def _abandon(self) -> None:
        file, self._file, self._path = self._file, None, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()

    def _trim(self) -> None:
        finished = sorted(self._dir.glob(f"uploads-*{SUFFIX}"))
        sizes = [p.stat().st_size for p in finished]
        total = sum(sizes)
        for path, size in zip(finished, sizes, strict=True):
            if total <= self._max_total:
                break
            path.unlink(missing_ok=True)
            total -= size


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if dump is not None else str(value)
