"""Raw-upload logging (gateway.upload_log): opt-in, its sampling rate honoured, files rotated and bounded,
never blocking (drops counted)."""

from __future__ import annotations

import base64
import json
import math
import threading
from pathlib import Path

import pytest

from gateway.app import create_app
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.upload_log import UploadLog


def _lines(folder: Path) -> list[dict[str, object]]:
    return [json.loads(x) for p in sorted(folder.glob("uploads-*.jsonl")) for x in p.read_text().splitlines()]


def test_off_by_default(tmp_path: Path) -> None:
    settings = Settings()
    assert not UploadLog.enabled(settings)
    assert create_app(settings).state.services.upload_log is None
    # a folder alone is not consent to log: the rate must be set too
    assert not UploadLog.enabled(Settings(upload_log_dir=str(tmp_path)))


def test_sampling_rate_within_binomial_spread(tmp_path: Path) -> None:
    rate, n = 0.1, 3000
    metrics = Metrics()
    log = UploadLog(
        Settings(upload_log_dir=str(tmp_path), upload_log_sample_rate=rate, upload_log_queue_size=n), metrics
    )
    for i in range(n):
        log.offer("fashion", "predict", [(f"{i}.png", b"\x89PNG" + bytes([i % 256]))], None, None, {"i": i})
    log.close()
    written = _lines(tmp_path)
    spread = 4 * math.sqrt(n * rate * (1 - rate))  # 4 sigma: a false failure once in ~16,000 runs
    print(f"sampled {len(written)} of {n} at rate {rate} (expected {n * rate:.0f} +- {spread:.0f})")
    assert abs(len(written) - n * rate) <= spread
    assert metrics.upload_log_written._value.get() == len(written)
    first = written[0]
    files = first["files"]
    assert isinstance(files, list) and base64.b64decode(files[0]["data"]).startswith(b"\x89PNG")
    assert first["reply"] == {"i": int(str(files[0]["name"]).split(".")[0])}


def test_rotated_bounded_and_never_blocking(tmp_path: Path) -> None:
    metrics = Metrics()
    settings = Settings(
        upload_log_dir=str(tmp_path),
        upload_log_sample_rate=1.0,
        upload_log_max_file_bytes=4096,
        upload_log_max_total_bytes=16384,
        upload_log_queue_size=8,
    )
    log = UploadLog(settings, metrics)
    for i in range(
        2000
    ):  # far faster than the writer: the queue fills and records are dropped, not waited on
        log.offer("text", "predict", [], ["x" * 500], None, {"i": i})
    log.close()
    finished = list(tmp_path.glob("uploads-*.jsonl"))
    assert len(finished) >= 2
    assert sum(p.stat().st_size for p in finished) <= 16384
    dropped = metrics.upload_log_dropped.labels("queue_full")._value.get()
    assert dropped + metrics.upload_log_written._value.get() == 2000


def test_a_stuck_writer_never_blocks_a_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk that hangs (the writer stuck in a write): offers return, the overflow is counted as dropped."""
    metrics = Metrics()
    log = UploadLog(
        Settings(upload_log_dir=str(tmp_path), upload_log_sample_rate=1.0, upload_log_queue_size=4), metrics
    )
    stuck = threading.Event()
    release = threading.Event()
    write = log._write

    def hang(line: bytes) -> None:
        stuck.set()
        release.wait()
        write(line)

    monkeypatch.setattr(log, "_write", hang)
    log.offer("m", "predict", [], ["first"], None, {})
    assert stuck.wait(60)  # hang guard only
    for _ in range(100):
        log.offer("m", "predict", [], ["more"], None, {})
    assert metrics.upload_log_dropped.labels("queue_full")._value.get() == 100 - 4
    release.set()
    log.close()
    assert len(_lines(tmp_path)) == 1 + 4
