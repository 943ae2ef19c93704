"""``model_card.json`` and ``training_curves.png`` (fields as in docs/architecture.md)."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt

from export.servable import Servable

__all__ = ["CARD_FILE", "CURVES_FILE", "sizes", "write", "write_curves"]

CARD_FILE = "model_card.json"
CURVES_FILE = "training_curves.png"


def write_curves(servable: Servable, directory: Path) -> Path:
    panels = servable.curves or {"loss": ("loss", "val_loss")}
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels.items(), strict=True):
        for key in keys:
            values = servable.history.get(key, [])
            ax.plot(range(1, len(values) + 1), values, marker="o", label=key)
        ax.set_title(f"{servable.name}: {title}")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = directory / CURVES_FILE
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _tree_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def sizes(directory: Path) -> dict[str, int]:
    return {
        "saved_model_pb": _tree_bytes(directory / "saved_model.pb"),
        "variables": _tree_bytes(directory / "variables"),
        "assets": _tree_bytes(directory / "assets") if (directory / "assets").exists() else 0,
        "frozen_graph": _tree_bytes(directory / "frozen_graph.pb"),
        "version_total": _tree_bytes(directory),
    }


def _finite(value: Any) -> Any:
    return value if not isinstance(value, float) or math.isfinite(value) else None


def write(
    servable: Servable,
    directory: Path,
    *,
    version: int,
    signatures: dict[str, Any],
    frozen: dict[str, Any],
    warmup_records: int,
    serving_check: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the card last, so that ``sizes`` covers every other file of the version (the card itself
    aside)."""
    card: dict[str, Any] = {
        "name": servable.name,
        "version": version,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "task": servable.task,
        "labels": servable.labels,
        "data": servable.data,
        "metrics": {key: _finite(round(value, 6)) for key, value in servable.metrics.items()},
        "parameters": servable.parameters,
        "sizes": sizes(directory),
        "signatures": signatures,
        "contract": servable.contract,
        "frozen_graph": frozen,
        "warmup": {"file": "assets.extra/tf_serving_warmup_requests", "records": warmup_records},
        "serving_check": serving_check or {},
        "training": {
            **servable.training,
            "history": {k: [_finite(round(v, 6)) for v in vs] for k, vs in servable.history.items()},
        },
        "curves": [CURVES_FILE] if servable.history else [],
        **servable.card_fields,
    }
    (directory / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card
