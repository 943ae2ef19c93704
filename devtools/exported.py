"""Build a small but real model repository (fashion/1, text/1, housing/1 and a models.config) with the export
code itself, on small slices of the shared data and one epoch each. Used by the root ``model_repo`` fixture
and callable outside pytest::

    python -m devtools.exported /tmp/repo [DATA_DIR]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["LIMITS", "MODEL_NAMES", "build_model_repo", "models_config"]

MODEL_NAMES: tuple[str, ...] = ("fashion", "text", "housing")
# Rows per model: small enough to keep the whole repository build well under a minute on 2 cores.
LIMITS: dict[str, int] = {"fashion": 1000, "text": 800, "housing": 1000}


def models_config(root: Path, names: tuple[str, ...] = MODEL_NAMES) -> str:
    """TF Serving's ``model_config_list`` text format with ABSOLUTE base paths under ``root``."""
    entries = "".join(
        "  config {\n"
        f'    name: "{name}"\n'
        f'    base_path: "{(root / name).resolve()}"\n'
        '    model_platform: "tensorflow"\n'
        "    model_version_policy { latest { num_versions: 1 } }\n"
        "  }\n"
        for name in names
    )
    return "model_config_list {\n" + entries + "}\n"


def build_model_repo(root: Path, data_dir: Path, *, epochs: int = 1) -> Path:
    """Export every model as version 1 under ``root`` and write ``root/models.config``; return ``root``."""
    from export.api import export_model  # TensorFlow loads here, not at collection time

    root.mkdir(parents=True, exist_ok=True)
    for name in MODEL_NAMES:
        if not (root / name / "1").is_dir():
            export_model(name, root, version=1, epochs=epochs, limit=LIMITS[name], data_dir=data_dir)
    (root / "models.config").write_text(models_config(root), encoding="utf-8")
    return root


if __name__ == "__main__":
    target = Path(sys.argv[1])
    data = Path(sys.argv[2] if len(sys.argv) > 2 else os.environ.get("DATA_DIR", "../shared/data"))
    print(build_model_repo(target, data))
