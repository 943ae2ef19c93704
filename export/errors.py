"""The export error hierarchy, mapped to an exit code and a one-line message in ``export.__main__``.

ExportError                    base: ``str(err)`` says what went wrong and what to do about it
├── UnknownModel               a model name that is not one of ``export.api.MODELS``
├── DataError                  the training data cannot be used
│   ├── DataNotFound           a data file is missing (names the DATA_DIR it looked in)
│   └── DataCorrupt            a checksum mismatch or a malformed file
├── VersionExists              the requested version is already published (never overwritten)
├── InvalidVersion             ``--version`` is neither ``auto`` nor a positive integer
├── VerificationFailed         the staged SavedModel did not reload, run, or match its frozen graph
├── InvalidSource              ``publish``: the SOURCE, a flag or a side file (labels, samples, eval) is unusable
└── Refused                    ``publish``: a model TensorFlow Serving could not run (names the cause)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "DataCorrupt",
    "DataError",
    "DataNotFound",
    "ExportError",
    "InvalidSource",
    "InvalidVersion",
    "Refused",
    "UnknownModel",
    "VerificationFailed",
    "VersionExists",
]


class ExportError(Exception):
    """Base of every error the export reports without a traceback."""

    exit_code: int = 1


class UnknownModel(ExportError):
    exit_code = 2

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(f"unknown model {name!r}; known models: {', '.join(self.known)} (or 'all')")


class DataError(ExportError):
    exit_code = 3


class DataNotFound(DataError):
    def __init__(self, dataset: str, path: Path, data_dir: Path | None) -> None:
        self.dataset = dataset
        self.path = path
        self.data_dir = data_dir
        where = f"DATA_DIR={data_dir}" if data_dir is not None else "DATA_DIR (unset)"
        super().__init__(
            f"{dataset} data not found: {path} does not exist (looked in {where}); "
            "set DATA_DIR or --data-dir to the folder holding fashion-mnist/, housing/ and sms-spam/"
        )


class DataCorrupt(DataError):
    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f"corrupt data file {path}: {reason}; restore it from the shared data or re-download it"
        )


class VersionExists(ExportError):
    exit_code = 4

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"version {path.name} of model {path.parent.name!r} already exists at {path}; published versions "
            "are never overwritten - use --version auto (the next free number) or another number"
        )


class InvalidVersion(ExportError):
    exit_code = 2

    def __init__(self, value: object) -> None:
        self.value = value
        super().__init__(f"invalid version {value!r}: use 'auto' or a positive integer such as 1")


class VerificationFailed(ExportError):
    exit_code = 5

    def __init__(self, model: str, reason: str) -> None:
        self.model = model
        self.reason = reason
        super().__init__(
            f"verification of the staged {model!r} export failed, nothing was published: {reason}"
        )


class InvalidSource(ExportError):
    exit_code = 2

    def __init__(self, what: object, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what}: {reason}")


class Refused(ExportError):
    exit_code = 6

    def __init__(self, source: object, cause: str) -> None:
        self.source = source
        self.cause = cause
        super().__init__(
            f"refused to publish {source}: {cause}; TensorFlow Serving could not serve it, nothing was published"
        )
