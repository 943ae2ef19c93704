"""Training data: the shared real datasets, verified against the checksums their README publishes.

Every loader takes ``data_dir`` (explicit argument, else the ``DATA_DIR`` environment variable). Only when
neither is set does it fall back to the usual public download (cached by Keras under ``~/.keras/datasets``);
tests always pass a ``data_dir`` and never reach that path. A missing file raises :class:`DataNotFound` naming
the DATA_DIR it looked in; a checksum mismatch or a malformed file raises :class:`DataCorrupt`.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from export.errors import DataCorrupt, DataNotFound

__all__ = [
    "FASHION_FILES",
    "FASHION_LABELS",
    "HOUSING_FEATURES",
    "HOUSING_FILE",
    "SMS_FILE",
    "DataFile",
    "FashionData",
    "HousingData",
    "SmsData",
    "load_fashion",
    "load_housing",
    "load_sms",
    "read_idx",
    "resolve_data_dir",
    "sha256_of",
]


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: where it sits under DATA_DIR, its published checksum and its public origin."""

    dataset: str
    relpath: str
    sha256: str
    origin: str

    def describe(self) -> dict[str, str]:
        return {"file": self.relpath, "sha256": self.sha256, "origin": self.origin}


_KERAS_FASHION = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
FASHION_FILES: dict[str, DataFile] = {
    key: DataFile("fashion-mnist", f"fashion-mnist/{fname}", digest, _KERAS_FASHION + fname)
    for key, fname, digest in [
        (
            "train_images",
            "train-images-idx3-ubyte.gz",
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        ),
        (
            "train_labels",
            "train-labels-idx1-ubyte.gz",
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        ),
        (
            "test_images",
            "t10k-images-idx3-ubyte.gz",
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        ),
        (
            "test_labels",
            "t10k-labels-idx1-ubyte.gz",
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        ),
    ]
}
HOUSING_FILE = DataFile(
    "housing",
    "housing/housing.csv",
    "8a3727f4cf54ac1a327f69b1d5b4db54c5834ea81c6e4efc0d163300022a685e",
    "https://raw.githubusercontent.com/ageron/handson-ml2/master/datasets/housing/housing.csv",
)
SMS_FILE = DataFile(
    "sms-spam",
    "sms-spam/SMSSpamCollection",
    "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d",
    "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
)

# Fashion-MNIST's class names, in label order (Zalando's README).
FASHION_LABELS: list[str] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

HOUSING_FEATURES: tuple[str, ...] = (
    "longitude",
    "latitude",
    "housing_median_age",
    "total_rooms",
    "total_bedrooms",
    "population",
    "households",
    "median_income",
)
HOUSING_TARGET = "median_house_value"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """The explicit ``data_dir``, else ``$DATA_DIR``, else None (meaning: download)."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir)
    env = os.environ.get("DATA_DIR", "")
    return Path(env) if env else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def locate(spec: DataFile, data_dir: Path | None) -> Path:
    """The verified local path of ``spec``: under ``data_dir``, or downloaded when there is no data dir."""
    if data_dir is None:
        path = _download(spec)
    else:
        path = data_dir / spec.relpath
        if not path.is_file():
            raise DataNotFound(spec.dataset, path, data_dir)
    actual = sha256_of(path)
    if actual != spec.sha256:
        raise DataCorrupt(path, f"sha256 is {actual}, expected {spec.sha256}")
    return path


def _download(spec: DataFile) -> Path:
    import keras  # deferred: only the fallback path needs it

    subdir = f"tfserve-stack/{spec.dataset}"
    if spec.origin.endswith(".zip"):
        extracted = Path(keras.utils.get_file(origin=spec.origin, extract=True, cache_subdir=subdir))
        folder = extracted if extracted.is_dir() else extracted.parent  # Keras versions differ here
        matches = list(folder.rglob(Path(spec.relpath).name))
        if not matches:
            raise DataNotFound(spec.dataset, extracted / Path(spec.relpath).name, None)
        return matches[0]
    fname = Path(spec.relpath).name
    return Path(keras.utils.get_file(fname, origin=spec.origin, file_hash=spec.sha256, cache_subdir=subdir))


# --------------------------------------------------------------------------------------------- Fashion-MNIST
_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """Parse a gzip-compressed IDX file (big-endian header, uint8 payload) into an array of its declared
    shape."""
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as err:
        raise DataCorrupt(path, f"not a readable gzip file ({err})") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or not 1 <= raw[3] <= 4:
        raise DataCorrupt(
            path, f"bad IDX magic number {raw[:4].hex() or '(empty)'}, expected 0x0801 or 0x0803"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataCorrupt(path, "truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape)) + header
    if len(raw) != expected:
        raise DataCorrupt(
            path, f"IDX payload is {len(raw) - header} bytes, header {shape} promises {expected - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


@dataclass
class FashionData:
    x_train: np.ndarray  # uint8 [N, 28, 28]
    y_train: np.ndarray  # uint8 [N]
    x_test: np.ndarray
    y_test: np.ndarray
    files: list[dict[str, str]] = field(default_factory=list)


def load_fashion(data_dir: str | os.PathLike[str] | None = None) -> FashionData:
    root = resolve_data_dir(data_dir)
    arrays = {key: read_idx(locate(spec, root)) for key, spec in FASHION_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
            raise DataCorrupt(
                Path(FASHION_FILES[f"{split}_images"].relpath),
                f"{split} images {images.shape} do not match labels {labels.shape}",
            )
    return FashionData(
        arrays["train_images"],
        arrays["train_labels"],
        arrays["test_images"],
        arrays["test_labels"],
        [spec.describe() for spec in FASHION_FILES.values()],
    )


# --------------------------------------------------------------------------------------------- California
# housing
@dataclass
class HousingData:
    features: dict[str, np.ndarray]  # float32 [N] each, NaN where the cell is empty
    target: np.ndarray  # float32 [N], US dollars
    files: list[dict[str, str]] = field(default_factory=list)


def load_housing(data_dir: str | os.PathLike[str] | None = None) -> HousingData:
    path = locate(HOUSING_FILE, resolve_data_dir(data_dir))
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {*HOUSING_FEATURES, HOUSING_TARGET} - set(reader.fieldnames or ())
        if missing:
            raise DataCorrupt(path, f"header lacks the columns {sorted(missing)}")
        columns: dict[str, list[float]] = {name: [] for name in (*HOUSING_FEATURES, HOUSING_TARGET)}
        for line, row in enumerate(reader, start=2):
            for name, values in columns.items():
                cell = row[name]
                try:
                    values.append(float(cell) if cell not in ("", None) else float("nan"))
                except ValueError as err:
                    raise DataCorrupt(path, f"line {line}: {name}={cell!r} is not a number") from err
    target = np.asarray(columns.pop(HOUSING_TARGET), dtype=np.float32)
    if not len(target) or np.isnan(target).any():
        raise DataCorrupt(path, "no rows, or rows without median_house_value")
    return HousingData(
        {k: np.asarray(v, dtype=np.float32) for k, v in columns.items()}, target, [HOUSING_FILE.describe()]
    )


# --------------------------------------------------------------------------------------------- SMS spam
SMS_LABELS: tuple[str, ...] = ("ham", "spam")


@dataclass
class SmsData:
    texts: list[str]
    labels: np.ndarray  # int64 [N], index into SMS_LABELS
    files: list[dict[str, str]] = field(default_factory=list)


def load_sms(data_dir: str | os.PathLike[str] | None = None) -> SmsData:
    path = locate(SMS_FILE, resolve_data_dir(data_dir))
    texts: list[str] = []
    labels: list[int] = []
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataCorrupt(path, f"not UTF-8 ({err})") from err
    # Quoting off: 54 messages start with '"' and a default CSV reader would merge lines (see the data
    # README).
    for line, row in enumerate(
        csv.reader(io.StringIO(content), delimiter="\t", quoting=csv.QUOTE_NONE), start=1
    ):
        if len(row) != 2 or row[0] not in SMS_LABELS:
            raise DataCorrupt(path, f"line {line} is not '<ham|spam><TAB><text>'")
        labels.append(SMS_LABELS.index(row[0]))
        texts.append(row[1])
    return SmsData(texts, np.asarray(labels, dtype=np.int64), [SMS_FILE.describe()])
