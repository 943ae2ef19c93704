"""TFRecord files (the format of SavedModel warm-up files and request logs), read and framed without TensorFlow.

Each record is ``uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)``, little
endian, as ``tensorflow/core/lib/io/record_writer.cc`` writes them; both checksums are verified. Reading is
bounded: at most ``max_records`` records, and no length is trusted beyond the bytes left in the file.
Compressed TFRecord files (GZIP/ZLIB) are not read: TF Serving's warm-up reader does not read them either.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import google_crc32c

__all__ = ["TFRecordError", "TooManyRecords", "frame_record", "masked_crc32c", "read_records"]

_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")


class TFRecordError(ValueError):
    """The file is not a well-formed, uncompressed TFRecord file."""


class TooManyRecords(TFRecordError):
    """The file holds more records than the caller allows."""


def masked_crc32c(data: bytes) -> int:
    """TFRecord's checksum: crc32c rotated right by 15 bits plus a constant (``crc32c::Mask``)."""
    crc: int = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    """``data`` as one TFRecord record (header, data, footer), ready to append to a file."""
    length = struct.pack("<Q", len(data))
    return length + _FOOTER.pack(masked_crc32c(length)) + data + _FOOTER.pack(masked_crc32c(data))


def _read_exact(stream: BinaryIO, size: int, what: str, index: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise TFRecordError(f"record {index}: truncated {what} ({len(data)} of {size} bytes)")
    return data


def read_records(path: Path, *, max_records: int) -> Iterator[bytes]:
    """Yield the records of ``path`` in order; raise ``TFRecordError`` on a bad checksum, a truncated record
    or more than ``max_records`` records."""
    with path.open("rb") as stream:
        size = path.stat().st_size
        index = 0
        while header := stream.read(_HEADER.size):
            if len(header) != _HEADER.size:
                raise TFRecordError(
                    f"record {index}: truncated header ({len(header)} of {_HEADER.size} bytes)"
                )
            length, length_crc = _HEADER.unpack(header)
            if masked_crc32c(header[:8]) != length_crc:
                raise TFRecordError(f"record {index}: corrupted length (checksum mismatch)")
            if index >= max_records:
                raise TooManyRecords(f"more than {max_records} records")
            if length > size - stream.tell():
                raise TFRecordError(
                    f"record {index}: truncated data (length {length} past the end of the file)"
                )
            data = _read_exact(stream, length, "data", index)
            (data_crc,) = _FOOTER.unpack(_read_exact(stream, _FOOTER.size, "checksum", index))
            if masked_crc32c(data) != data_crc:
                raise TFRecordError(f"record {index}: corrupted data (checksum mismatch)")
            yield data
            index += 1
