"""Data loaders: published checksums, formats, and clear errors for missing or corrupt files."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from export.data import (
    FASHION_FILES,
    HOUSING_FEATURES,
    load_fashion,
    load_housing,
    load_sms,
    read_idx,
    resolve_data_dir,
)
from export.errors import DataCorrupt, DataNotFound


def test_fashion_loads_with_published_shapes_and_balanced_classes(data_dir: Path) -> None:
    data = load_fashion(data_dir)
    assert data.x_train.shape == (60000, 28, 28) and data.x_test.shape == (10000, 28, 28)
    assert data.x_train.dtype == np.uint8
    assert np.bincount(data.y_train).tolist() == [6000] * 10
    assert np.bincount(data.y_test).tolist() == [1000] * 10
    assert {f["sha256"] for f in data.files} == {spec.sha256 for spec in FASHION_FILES.values()}


def test_housing_loads_every_row_with_empty_cells_as_nan(data_dir: Path) -> None:
    data = load_housing(data_dir)
    assert len(data.target) == 20640
    assert set(data.features) == set(HOUSING_FEATURES)
    assert int(np.isnan(data.features["total_bedrooms"]).sum()) == 207
    assert data.target.min() >= 14_999 and data.target.max() <= 500_001


def test_sms_loads_quoted_lines_without_merging(data_dir: Path) -> None:
    data = load_sms(data_dir)
    assert len(data.texts) == 5574
    assert np.bincount(data.labels).tolist() == [4827, 747]
    assert sum(text.startswith('"') for text in data.texts) == 54


def test_missing_data_names_the_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DataNotFound) as info:
        load_housing(tmp_path)
    message = str(info.value)
    assert f"DATA_DIR={tmp_path}" in message and "housing/housing.csv" in message


def test_data_dir_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    with pytest.raises(DataNotFound, match="DATA_DIR"):
        load_sms()


def _copy_dataset(data_dir: Path, tmp_path: Path, folder: str) -> Path:
    shutil.copytree(data_dir / folder, tmp_path / folder)
    for path in (tmp_path / folder).iterdir():
        path.chmod(0o644)
    return tmp_path / folder


@pytest.mark.parametrize(
    ("folder", "filename", "loader"),
    [("housing", "housing.csv", load_housing), ("sms-spam", "SMSSpamCollection", load_sms)],
)
def test_a_changed_byte_fails_the_checksum(
    data_dir: Path, tmp_path: Path, folder: str, filename: str, loader: object
) -> None:
    target = _copy_dataset(data_dir, tmp_path, folder) / filename
    raw = bytearray(target.read_bytes())
    raw[100] ^= 0x01
    target.write_bytes(bytes(raw))
    with pytest.raises(DataCorrupt, match=r"sha256 is [0-9a-f]{64}, expected"):
        loader(tmp_path)  # type: ignore[operator]


def test_a_truncated_fashion_file_fails_the_checksum(data_dir: Path, tmp_path: Path) -> None:
    target = _copy_dataset(data_dir, tmp_path, "fashion-mnist") / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:1000])
    with pytest.raises(DataCorrupt, match="t10k-labels"):
        load_fashion(tmp_path)


def _gz(path: Path, payload: bytes) -> Path:
    path.write_bytes(gzip.compress(payload))
    return path


def test_read_idx_parses_a_valid_file(tmp_path: Path) -> None:
    payload = struct.pack(">BBBBIII", 0, 0, 8, 3, 2, 2, 3) + bytes(range(12))
    array = read_idx(_gz(tmp_path / "ok.gz", payload))
    assert array.shape == (2, 2, 3) and array[1, 1, 2] == 11


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x00\x00\x0d\x01" + struct.pack(">I", 1) + b"\x00", "bad IDX magic"),
        (struct.pack(">BBBBI", 0, 0, 8, 1, 10) + b"\x00" * 3, "promises"),
        (struct.pack(">BBBB", 0, 0, 8, 3) + b"\x00", "truncated IDX header"),
        (b"", "bad IDX magic"),
    ],
)
def test_read_idx_rejects_malformed_files(tmp_path: Path, payload: bytes, message: str) -> None:
    with pytest.raises(DataCorrupt, match=message):
        read_idx(_gz(tmp_path / "bad.gz", payload))


def test_read_idx_rejects_a_file_that_is_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / "plain.gz"
    path.write_bytes(b"this is not gzip at all")
    with pytest.raises(DataCorrupt, match="gzip"):
        read_idx(path)
