"""``assets.extra/reference_profile.json``: a profile of the version's reference data (a sample of its
training split) and of the model's ``serving_default`` outputs on it, which the model server compares served
traffic with (drift; the statistics are ``modelserver.observe.profile``'s, so both sides compute the same
features the same way)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from export.servable import Servable
from modelserver.observe.profile import PROFILE_FILE, build_profile

__all__ = ["PROFILE_FILE", "profile", "write"]

BATCH = 512


def _outputs(servable: Servable, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    function = servable.signatures["serving_default"]
    rows = len(next(iter(inputs.values())))
    parts: list[dict[str, Any]] = []
    for start in range(0, rows, BATCH):
        batch = {name: tf.constant(values[start : start + BATCH]) for name, values in inputs.items()}
        parts.append({name: tensor.numpy() for name, tensor in function(**batch).items()})
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def profile(servable: Servable) -> dict[str, Any] | None:
    """The profile of ``servable.reference`` (None when the trainer gave no reference rows)."""
    if not servable.reference:
        return None
    inputs = servable.reference
    split = "eval (--eval)" if "eval" in servable.data else "train (sample)"
    extra: dict[str, Any] = {"source": servable.data.get("source", ""), "reference_split": split}
    for name, values in inputs.items():
        if values.ndim == 4:  # what the gateway's preprocessing produces: the source size the model sees
            extra.setdefault("image_sizes", {})[name] = {"height": values.shape[1], "width": values.shape[2]}
    return build_profile(
        servable.name, servable.task, servable.labels, inputs, _outputs(servable, inputs), extra
    )


def write(servable: Servable, version_dir: Path) -> bool:
    """Write the profile into the version; False when there is no reference data."""
    data = profile(servable)
    if data is None:
        return False
    path = version_dir / PROFILE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
    return True
