"""modelserver.runtime.tfrecord: reads what TensorFlow's TFRecordWriter writes; refuses corrupt or truncated files."""

from __future__ import annotations

from pathlib import Path

import pytest
import tensorflow as tf

from modelserver.runtime.tfrecord import TFRecordError, TooManyRecords, read_records

RECORDS = [b"first", b"", b"\x00\xff" * 1000]


@pytest.fixture
def written(tmp_path: Path) -> Path:
    path = tmp_path / "records"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in RECORDS:
            writer.write(record)
    return path


def test_reads_tensorflow_records(written: Path) -> None:
    assert list(read_records(written, max_records=10)) == RECORDS


def test_more_records_than_allowed(written: Path) -> None:
    with pytest.raises(TooManyRecords):
        list(read_records(written, max_records=2))


@pytest.mark.parametrize(
    ("offset", "match"),
    [(0, "corrupted length"), (13, "corrupted data"), (-1, "corrupted data")],  # length, data, data's crc
)
def test_a_flipped_byte_is_caught(written: Path, offset: int, match: str) -> None:
    data = bytearray(written.read_bytes())
    data[offset] ^= 0x01
    written.write_bytes(bytes(data))
    with pytest.raises(TFRecordError, match=match):
        list(read_records(written, max_records=10))


@pytest.mark.parametrize("keep", [5, 20, -3])
def test_a_truncated_file_is_refused(written: Path, keep: int) -> None:
    written.write_bytes(written.read_bytes()[:keep])
    with pytest.raises(TFRecordError, match="truncated"):
        list(read_records(written, max_records=10))
