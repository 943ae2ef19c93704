"""The bench's own model repository: a copy of the latest published version of each model, so the hot swap
can publish new versions without touching the project's ``models/``.

Publishing follows the repository contract (docs/architecture.md): stage in ``<name>/.tmp-<version>-<rand>``,
then one ``os.rename`` to ``<name>/<version>``. Config files are written atomically.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path

from devtools.files import write_atomic

__all__ = ["latest_version", "prepare_repo", "publish_copy", "write_atomic", "write_models_config"]


def latest_version(model_dir: Path) -> int | None:
    versions = (
        [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
        if model_dir.is_dir()
        else []
    )
    return max(versions, default=None)


def write_models_config(path: Path, root: Path, names: Iterable[str]) -> Path:
    """TF Serving ``model_config_list`` with absolute base paths (may be empty: a server with no models)."""
    entries = "".join(
        f'  config {{\n    name: "{name}"\n    base_path: "{(root / name).resolve()}"\n'
        f'    model_platform: "tensorflow"\n'
        "    model_version_policy { latest { num_versions: 1 } }\n  }\n"
        for name in names
    )
    write_atomic(path, "model_config_list {\n" + entries + "}\n")
    return path


def prepare_repo(source: Path, target: Path, names: Iterable[str]) -> dict[str, int]:
    """Copy the latest version of each of ``names`` from ``source`` to ``target``; return name -> version.
    A model without a published version is left out (its scenarios are skipped)."""
    copied: dict[str, int] = {}
    for name in names:
        version = latest_version(source / name)
        if version is None:
            continue
        shutil.copytree(source / name / str(version), target / name / str(version), symlinks=True)
        copied[name] = version
    return copied


def publish_copy(root: Path, name: str) -> int:
    """Publish a new version of ``name`` (a copy of its latest) by staging + one rename; return it."""
    current = latest_version(root / name)
    if current is None:
        raise FileNotFoundError(f"no version of {name} under {root}")
    new = current + 1
    stage = root / name / f".tmp-{new}-{secrets.token_hex(4)}"
    shutil.copytree(root / name / str(current), stage, symlinks=True)
    os.rename(stage, root / name / str(new))
    return new
