"""Atomic publishing into a TensorFlow Serving model repository (``models/<name>/<version>/``).

Contract (docs/architecture.md):
- A version is assembled in ``models/<name>/.tmp-<version>-<random>/`` - on the same filesystem, and not a
  number, so no server ever loads it - then fsynced and moved into place with one rename. Servers polling the
  base path therefore see either nothing or the complete, verified version.
- A published version is never overwritten: the rename refuses an existing target (``renameat2`` with
  ``RENAME_NOREPLACE`` where the kernel offers it, otherwise a check right before ``os.rename``, which also
  fails on a non-empty target).
- ``auto`` takes the next number after the highest existing version (1 for a new model).
- Any exception inside :func:`staging` removes the staging directory; a killed process leaves only a
  ``.tmp-*`` directory, which servers ignore and the next export of that model sweeps away once it is stale.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from export.errors import InvalidVersion, VersionExists

__all__ = ["Stage", "existing_versions", "fsync_tree", "resolve_version", "staging"]

STAGING_PREFIX = ".tmp-"
STALE_SECONDS = 24 * 3600


def existing_versions(model_root: Path) -> list[int]:
    if not model_root.is_dir():
        return []
    return sorted(int(p.name) for p in model_root.iterdir() if p.name.isdigit() and p.is_dir())


def parse_version(version: str | int) -> int | None:
    """None for ``auto``; otherwise a positive integer, or :class:`InvalidVersion`."""
    if isinstance(version, str) and version.strip().lower() == "auto":
        return None
    try:
        number = int(version)
    except (TypeError, ValueError):
        raise InvalidVersion(version) from None
    if (
        isinstance(version, bool)
        or number < 1
        or (isinstance(version, str) and not version.strip().isdigit())
    ):
        raise InvalidVersion(version)
    return number


def resolve_version(model_root: Path, version: str | int) -> int:
    """The version number to publish; raises :class:`VersionExists` before any work when it is taken."""
    number = parse_version(version)
    if number is None:
        versions = existing_versions(model_root)
        return versions[-1] + 1 if versions else 1
    if (model_root / str(number)).exists():
        raise VersionExists(model_root / str(number))
    return number


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file, then every directory bottom-up, so the rename publishes durable bytes."""
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            _fsync_path(Path(dirpath) / name)
        _fsync_path(Path(dirpath))


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _rename_noreplace(src: Path, dst: Path) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        renameat2 = None
    if renameat2 is not None:
        if renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise VersionExists(dst)
        if err not in (errno.EINVAL, errno.ENOSYS):  # filesystems without RENAME_NOREPLACE fall through
            raise OSError(err, os.strerror(err), str(dst))
    if dst.exists():
        raise VersionExists(dst)
    try:
        os.rename(src, dst)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise VersionExists(dst) from exc
        raise


def _sweep_stale(model_root: Path) -> None:
    cutoff = time.time() - STALE_SECONDS
    for path in model_root.glob(f"{STAGING_PREFIX}*"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)


@dataclass
class Stage:
    """A staging directory for one version; :meth:`commit` publishes it."""

    model_root: Path
    version: int
    path: Path
    published: Path | None = None

    @property
    def target(self) -> Path:
        return self.model_root / str(self.version)

    def commit(self) -> Path:
        fsync_tree(self.path)
        _rename_noreplace(self.path, self.target)
        _fsync_path(self.model_root)
        self.published = self.target
        return self.target


@contextlib.contextmanager
def staging(models_dir: Path, name: str, version: str | int) -> Iterator[Stage]:
    """Yield a :class:`Stage` for ``models_dir/name``; on any exception nothing is published and it is
    removed."""
    model_root = Path(models_dir) / name
    number = resolve_version(model_root, version)
    # Folders this call creates go again when nothing is published: a failed export leaves no trace.
    created = [p for p in (model_root, *model_root.parents) if not p.exists()]
    model_root.mkdir(parents=True, exist_ok=True)
    _sweep_stale(model_root)
    path = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{number}-", dir=model_root))
    path.chmod(0o755)  # mkdtemp makes 0700; a server running as another user must read the version
    stage = Stage(model_root, number, path)
    try:
        yield stage
    finally:
        if stage.published is None:
            shutil.rmtree(path, ignore_errors=True)
            for folder in created:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only if empty
