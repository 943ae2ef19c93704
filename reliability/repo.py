"""Private copies of a model repository for scenarios that change it (publish, corrupt, hide), and the
atomic publish of a new version (hidden staging name, one rename - as the export does)."""

from __future__ import annotations

import shutil
from pathlib import Path

from devtools.exported import MODEL_NAMES, models_config
from devtools.tiny_models import publish

__all__ = ["copy_repo", "latest_version", "publish", "publish_next"]


def copy_repo(source: Path, target: Path, names: tuple[str, ...] = MODEL_NAMES) -> Path:
    """Copy ``source``'s models into ``target`` (fresh) and write a models.config with absolute paths."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in names:
        shutil.copytree(source / name, target / name, symlinks=False)
    (target / "models.config").write_text(models_config(target, names), encoding="utf-8")
    return target


def latest_version(base: Path) -> int:
    return max((int(p.name) for p in base.iterdir() if p.name.isdigit()), default=0)


def publish_next(source_version: Path, base: Path) -> int:
    """Publish a copy of ``source_version`` as the next version under ``base``; returns its number."""
    version = latest_version(base) + 1
    publish(source_version, base, version)
    return version
