"""RecordFiles: one request log's TFRecord files under a path prefix, rotated and bounded.

Records are appended to ``<prefix>-<ms since epoch>-<pid>-<seq>.tfrecord.active``. A file is finished -
fsync'd, closed and renamed to ``... .tfrecord`` (then the folder fsync'd) - when it reaches ``max_file_bytes``
or ``max_file_records`` (default 1000: TF Serving's limit on warm-up records, so every finished file can be
copied to ``assets.extra/tf_serving_warmup_requests`` as it is), when it is ``max_file_age_seconds`` old, or
on ``close``. After each finished file, the oldest files of the prefix (the names sort by creation time,
whichever process wrote them) are deleted until all of them together hold at most ``max_total_bytes``.

Contract: not thread-safe - one writer thread owns it (``modelserver.observe.request_log``). ``append``
raises ``OSError`` when the disk refuses the record (full, read-only, gone); the record is then not in the
file: a partly written record is truncated away, so the file stays readable.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelserver.runtime.tfrecord import frame_record

__all__ = ["FINISHED_SUFFIX", "FileLimits", "RecordFiles"]

FINISHED_SUFFIX = ".tfrecord"
_ACTIVE_SUFFIX = ".tfrecord.active"


@dataclass(frozen=True)
class FileLimits:
    max_file_bytes: int = 16 << 20
    max_file_records: int = 1000
    max_file_age_seconds: float = 300.0
    max_total_bytes: int = 1 << 30


class RecordFiles:
    def __init__(self, prefix: Path, limits: FileLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.prefix = prefix
        self.limits = limits
        self._clock = clock
        self._fd = -1
        self._path: Path | None = None
        self._bytes = 0
        self._records = 0
        self._opened = 0.0
        self._seq = 0

    def append(self, record: bytes) -> None:
        """Write one record (serialised, not yet framed); rotate first if the file is full or old."""
        framed = frame_record(record)
        if self._fd >= 0 and (
            self._bytes + len(framed) > self.limits.max_file_bytes
            or self._records >= self.limits.max_file_records
        ):
            self.finish()
        if self._fd < 0:
            self._open()
        start = self._bytes
        try:
            view = memoryview(framed)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError:
            self._truncate(start)
            raise
        self._bytes += len(framed)
        self._records += 1

    def tick(self) -> None:
        """Finish the file once it is ``max_file_age_seconds`` old (called between records)."""
        if self._fd >= 0 and self._clock() - self._opened >= self.limits.max_file_age_seconds:
            self.finish()

    def finish(self) -> None:
        """fsync, close and rename the current file (if any), then bound the prefix's total size."""
        if self._fd < 0 or self._path is None:
            return
        fd, path, empty = self._fd, self._path, self._records == 0
        self._fd, self._path = -1, None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if empty:
            path.unlink(missing_ok=True)
            return
        path.rename(path.with_name(path.name.removesuffix(_ACTIVE_SUFFIX) + FINISHED_SUFFIX))
        self._fsync_folder()
        self._bound_total()

    close = finish

    def _open(self) -> None:
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        stamp = time.time_ns() // 1_000_000
        self._path = self.prefix.with_name(
            f"{self.prefix.name}-{stamp:013d}-{os.getpid()}-{self._seq:06d}{_ACTIVE_SUFFIX}"
        )
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self._bytes = self._records = 0
        self._opened = self._clock()

    def _truncate(self, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)
        except OSError:  # cannot even truncate: abandon the file rather than leave a torn record in it
            os.close(self._fd)
            if self._path is not None:
                self._path.unlink(missing_ok=True)
            self._fd, self._path = -1, None

    def _fsync_folder(self) -> None:
        fd = os.open(self.prefix.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def files(self) -> list[Path]:
        """This prefix's files (finished and active, of every process), oldest first."""
        pattern = f"{self.prefix.name}-*"
        found = [
            path
            for path in self.prefix.parent.glob(pattern)
            if path.name.endswith((FINISHED_SUFFIX, _ACTIVE_SUFFIX))
        ]
        return sorted(found, key=lambda path: path.name.removeprefix(self.prefix.name))

    def _bound_total(self) -> None:
        files = [(path, _size(path)) for path in self.files()]
        total = sum(size for _, size in files)
        for path, size in files:
            if total <= self.limits.max_total_bytes:
                break
            if path == self._path:
                continue
            path.unlink(missing_ok=True)
            total -= size


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
