"""The programmatic API: train one model and publish it as the next (or a given) version.

``export_model`` is what the CLI and other parts' tests call. It trains on the real data (``limit`` rows for
fast tests), then in a staging directory writes the SavedModel, rewrites and verifies method names, freezes
the graph and checks it against the SavedModel, writes warm-up records, labels, curves and the card, reloads
and runs every signature - in Python and under TensorFlow's C++ loader (``export.gate``) - and only then
renames the directory into place (see ``export.publish``). ``model.tflite`` (and with ``tflite_quantize`` the
int8 ``model.int8.tflite``) is written beside the SavedModel when TF Lite's converter takes ``serving_default``
and agrees with it on the held-out rows (``export.tflite``), by ``write_version``: built-in and published
models alike.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from export import card, fashion, frozen, gate, housing, profile, signatures, text, tflite, verify, warmup
from export.errors import UnknownModel
from export.publish import staging
from export.servable import Servable

__all__ = ["MODELS", "export_model", "write_version"]

Trainer = Callable[..., Servable]
MODELS: dict[str, Trainer] = {"fashion": fashion.train, "text": text.train, "housing": housing.train}
DEFAULT_EPOCHS: dict[str, int] = {
    "fashion": fashion.DEFAULT_EPOCHS,
    "text": text.DEFAULT_EPOCHS,
    "housing": housing.DEFAULT_EPOCHS,
}


def write_version(
    servable: Servable, directory: Path, version: int, *, tflite_quantize: bool = False
) -> dict[str, object]:
    """Write and verify every file of one version into ``directory`` (a staging directory); return the
    card."""
    if servable.write_saved_model is not None:
        servable.write_saved_model(directory)
    else:
        signatures.save(servable, directory)
    if servable.labels:
        (directory / "labels.txt").write_text("\n".join(servable.labels) + "\n", encoding="utf-8")
    frozen_names = frozen.write(servable, directory)
    records = warmup.write(servable, directory)
    profile.write(servable, directory)  # built-in models' training sample, or a published model's --eval data
    loaded = None if servable.write_saved_model else verify.reload_and_run(servable, directory)
    if frozen_names["file"]:
        try:
            frozen_names["max_abs_difference"] = frozen.check_equivalence(
                servable, directory, frozen_names, loaded
            )
        except Exception as err:  # a user's graph TF1 tools cannot run as frozen: say why, publish the rest
            if not servable.frozen_optional:
                raise
            (directory / frozen_names["file"]).unlink()
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            frozen_names = {
                "file": None,
                "note": f"no frozen graph: the frozen copy fails its check ({reason})",
            }
    # The gate TF Serving itself would be: TensorFlow's C++ loader must load and run every signature.
    serving_check = gate.check_cpp_loader(servable, directory)
    if servable.history:
        card.write_curves(servable, directory)
    for name, content in servable.files.items():
        (directory / name).write_bytes(content)
    written = card.write(
        servable,
        directory,
        version=version,
        signatures=signatures.describe(directory),
        frozen=frozen_names,
        warmup_records=records,
        serving_check=serving_check,
    )
    # model.tflite beside the SavedModel, checked, in the card (rewritten); never fails the export
    return tflite.write(servable, directory, written, quantize=tflite_quantize)


def export_model(
    name: str,
    models_dir: str | os.PathLike[str],
    *,
    version: str | int = "auto",
    epochs: int | None = None,
    limit: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    tflite_quantize: bool = False,
) -> Path:
    """Train ``name`` and publish it under ``models_dir/name/<version>``; return the published directory.

    Raises an :class:`export.errors.ExportError` subclass for bad input (unknown model, missing or corrupt
    data, an existing version); nothing is published unless every check passed.
    """
    if name not in MODELS:
        raise UnknownModel(name, MODELS)
    models_dir = Path(models_dir)
    # Validate the version before the (long) training, and again at the rename.
    with staging(models_dir, name, version) as stage:
        servable = MODELS[name](data_dir=data_dir, epochs=epochs, limit=limit)
        write_version(servable, stage.path, stage.version, tflite_quantize=tflite_quantize)
        published = stage.commit()
    print(servable.summary())
    print(f"   published {published}")
    return published
