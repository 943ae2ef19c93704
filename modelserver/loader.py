"""Loader: one per model version. Estimates the RAM the version needs, loads the SavedModel, replays its
warm-up requests, and unloads it.

Contract (the manager is the only caller):
- ``estimate_ram_bytes()`` is cheap (file sizes only) and is called before ``load()`` so the manager can
  refuse a version that does not fit the RAM budget without touching TensorFlow.
- ``load()`` blocks (the manager runs it in a worker thread) and either returns a ready ``Servable`` -
  loaded and, if enabled, warmed - or raises ``ServingError``; it never leaves a half-loaded servable behind.
- ``unload()`` drops every reference to the TensorFlow objects; only called once no handle is held.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from modelserver.errors import FailedPrecondition, ServingError
from modelserver.servable import Servable, serving_error_from_tf
from modelserver.warmup import WarmupOptions, replay_warmup

__all__ = ["Loader", "estimate_ram_bytes"]

log = logging.getLogger("modelserver.loader")

# Loaded graphs and runtime structures take more than their files (TF Serving's estimate is file based too).
# Calibrated with bench/ (RSS growth per loaded version, TF 2.21, CPU): a version costs its files x 1.2 plus
# ~8 MiB of Python/TF objects; the first load in a process also pays ~24 MiB of one-time runtime set-up.
_RAM_FACTOR = 1.2
_RAM_OVERHEAD = 8 * 1024 * 1024
_RUNTIME_RAM = 24 * 1024 * 1024
_runtime_loaded = False


def _dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:
                pass
    return total


def estimate_ram_bytes(path: Path) -> int:
    """RAM a version needs once loaded: graph + variables sizes times a safety factor, plus overhead."""
    graph = (path / "saved_model.pb").stat().st_size if (path / "saved_model.pb").exists() else 0
    return int((graph + _dir_size(path / "variables")) * _RAM_FACTOR) + _RAM_OVERHEAD


def _read_signature_defs(path: Path, tags: frozenset[str]) -> dict[str, meta_graph_pb2.SignatureDef]:
    try:
        saved_model = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())
    except (OSError, DecodeError) as exc:
        raise ServingError(
            f"Could not parse {path / 'saved_model.pb'}: {exc}", code=grpc.StatusCode.DATA_LOSS
        ) from None
    for meta_graph in saved_model.meta_graphs:
        if tags <= set(meta_graph.meta_info_def.tags):
            return dict(meta_graph.signature_def)
    raise FailedPrecondition(
        f"Could not find meta graph def matching supplied tags: {{ {' '.join(sorted(tags))} }}. "
        f"To inspect available tag-sets in the SavedModel, use the SavedModel CLI: `saved_model_cli`"
    )


@dataclass
class Loader:
    name: str
    version: int
    path: Path
    warmup: WarmupOptions
    tags: frozenset[str] = frozenset({"serve"})

    def estimate_ram_bytes(self) -> int:
        return estimate_ram_bytes(self.path) + (0 if _runtime_loaded else _RUNTIME_RAM)

    def load(self) -> Servable:
        global _runtime_loaded
        started = time.perf_counter()
        ram_bytes = self.estimate_ram_bytes()
        signature_defs = _read_signature_defs(self.path, self.tags)
        try:
            model = tf.saved_model.load(str(self.path), tags=list(self.tags))
        except Exception as exc:
            raise serving_error_from_tf(exc) from None
        functions = dict(getattr(model, "signatures", {}))
        servable = Servable(
            name=self.name,
            version=self.version,
            path=self.path,
            signature_defs={k: v for k, v in signature_defs.items() if k in functions},
            functions=functions,
            model=model,
            ram_bytes=ram_bytes,
        )
        _runtime_loaded = True
        log.info(
            "model %s version %d: loaded in %d ms (%s)",
            self.name,
            self.version,
            (time.perf_counter() - started) * 1000,
            ", ".join(sorted(functions)),
        )
        if self.warmup.enabled:
            warmed = replay_warmup(servable, self.warmup)
            if warmed:
                log.info("model %s version %d: warmed up with %d requests", self.name, self.version, warmed)
        _freeze_heap()
        return servable

    @staticmethod
    def unload(servable: Servable) -> None:
        servable.functions.clear()
        servable.model = None
        gc.unfreeze()  # the version's objects were frozen after its load: make them collectable again
        _freeze_heap()


def _freeze_heap() -> None:
    """Collect, then move every surviving object to the permanent generation (``gc.freeze``).

    A loaded SavedModel adds hundreds of thousands of long-lived Python objects; without the freeze every
    full collection triggered by request traffic rescans them all (measured by bench/: 1.4-1.7 ms of GC per
    REST request at concurrency 64, 0.12 ms with the freeze). Unload unfreezes first, so nothing leaks.
    """
    gc.collect()
    gc.freeze()
