"""Loader: one per model version. Estimates the RAM the version needs, loads the SavedModel with
TensorFlow's C++ loader (``modelserver.runtime.session``: the restore op, the init op / main_op / legacy_init_op with
the asset paths - TF1 and TF2 SavedModels alike, exactly as TF Serving's SavedModelBundle), replays its
warm-up requests, and unloads it.

Contract (the manager is the only caller):
- ``estimate_ram_bytes()`` is cheap (file sizes only) and is called before ``load()`` so the manager can
  refuse a version that does not fit the RAM budget without touching TensorFlow.
- ``load()`` blocks (the manager runs it in a worker thread) and either returns a ready ``Servable`` -
  loaded and, if enabled, warmed - or raises ``ServingError``; it never leaves a half-loaded servable behind.
- ``unload()`` closes the version's TensorFlow session; only called once no handle is held.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import grpc

from guard.pages import release_file_pages
from modelserver.errors import ConfigError, InvalidArgument, ServingError
from modelserver.runtime.batching_config import parse_batching_config
from modelserver.runtime.servable import Servable, serving_error_from_tf
from modelserver.runtime.session import IN_CALLING_THREAD, Session, SessionError
from modelserver.runtime.tflite import TFLITE_FILE, load_tflite, tflite_ram_bytes
from modelserver.runtime.warmup import WARMUP_FILE, WarmupOptions, replay_warmup
from tfs_protos.tensorflow.core.protobuf import meta_graph_pb2

__all__ = ["BATCHING_FILE", "Loader", "estimate_ram_bytes"]

BATCHING_FILE = "batching_params.pbtxt"  # TF Serving's per-model batching parameters, in the version dir

log = logging.getLogger("modelserver.loader")

# Loaded graphs and runtime structures take more than their files (TF Serving's estimate is file based too).
# Calibrated with bench/ on the C++ session path (RSS growth per loaded version, TF 2.21, CPU, two runs of
# 2026-12-01: 3.9-5.4 MiB for the small models): a version costs its files x 1.2 plus ~4.25 MiB (graph,
# session, kernels); the first load in a process also pays ~16 MiB of one-time runtime set-up (thread pools,
# allocator arenas), though the shared libraries are loaded at start (modelserver.process.server). Since the library
# pages a load touches are released after it (guard.pages) that share was re-measured: fashion's first load
# grew RSS by 21 MiB, of which ~6 MiB is the version's own (bench memory scenario, 2026-12-01).
_RAM_FACTOR = 1.2
_RAM_OVERHEAD = 4352 * 1024
_RUNTIME_RAM = 16 * 1024 * 1024
_runtime_loaded = False
# What the files cannot tell: RSS that a version's warm-up replay left behind (measured around the replay,
# after the library pages it touched are released), by model name. An ``explain`` signature (integrated
# gradients) builds its gradient executor and TensorFlow's allocator keeps the activations of its batches:
# fashion grew 81 MiB in the bench of 2026-12-06 against a 23 MiB file-based estimate (-72%); its warm-up
# alone measured +65 MiB in process (load with and without it). Each load's estimate adds its own measured
# warm-up cost after the replay (``Servable.ram_bytes``, TF Serving's post-load re-estimate), and the next
# version of the same model adds it up front (its files do not show it either).
_warmup_ram: dict[str, int] = {}
# The niceness of the thread loading versions after the first (see background_thread).
LOAD_NICE = 10


def _dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).stat().st_size
    return total


def anonymous_rss_bytes() -> int:
    """This process's anonymous resident memory (RssAnon: heap and TensorFlow's allocations, not the pages
    of mapped files, which the kernel can drop and read again); 0 where /proc is unavailable."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"RssAnon:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def estimate_ram_bytes(path: Path) -> int:
    """RAM a version needs once loaded: graph + variables sizes times a safety factor, plus overhead."""
    graph = (path / "saved_model.pb").stat().st_size if (path / "saved_model.pb").exists() else 0
    return int((graph + _dir_size(path / "variables")) * _RAM_FACTOR) + _RAM_OVERHEAD


_VARIABLE_OPS = frozenset({"VarHandleOp", "VariableV2", "Variable"})


def _check_variables_restored(path: Path, meta_graph: meta_graph_pb2.MetaGraphDef) -> None:
    """Refuse a version whose graph has variables but whose checkpoint is gone.

    TensorFlow's loader treats a missing ``variables/variables.index`` as "a SavedModel without variables"
    and loads it; every request that reads a variable then fails. TF Serving serves such a version; we report
    the load as failed instead (state END, the serving version keeps serving), which is what its users expect.
    """
    if (path / "variables" / "variables.index").is_file():
        return
    count = sum(1 for node in meta_graph.graph_def.node if node.op in _VARIABLE_OPS)
    if count:
        raise ServingError(
            f"the SavedModel graph at {path} has {count} variables but "
            f"{path / 'variables' / 'variables.index'} does not exist: no checkpoint can be restored "
            "(copy the version's variables/ folder with it)",
            code=grpc.StatusCode.DATA_LOSS,
        )


def background_thread() -> None:
    """Lower the calling worker thread's CPU priority to ``LOAD_NICE`` (Linux: niceness is per thread), so
    that a hot swap's load and warm-up lose to the threads serving requests when they compete for cores.

    Only after the process's first load: TensorFlow creates its thread pools (shared by every session) in
    the thread of the first session, and threads inherit their creator's niceness - inference must not run
    niced. Per thread: each of the manager's load threads (one, or ``--num_load_threads``) nices itself on
    its first load after the process's first, and unload threads on their first unload; they stay niced
    (raising niceness back needs privileges). Loads running concurrently with the process's first load are
    not niced either (it may still be making the pools). Never the main thread; a no-op where the OS
    refuses."""
    if threading.current_thread() is threading.main_thread():
        return
    with contextlib.suppress(OSError, AttributeError):
        thread = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, thread) < LOAD_NICE:
            os.setpriority(os.PRIO_PROCESS, thread, LOAD_NICE)


@dataclass
class Loader:
    name: str
    version: int
    path: Path
    warmup: WarmupOptions
    tags: frozenset[str] = frozenset({"serve"})
    intra_op_threads: int = 0  # 0 = TensorFlow's choice (--tensorflow_intra_op_parallelism)
    inter_op_threads: int = 0
    session_config: bytes = b""  # a serialized ConfigProto (--tensorflow_session_config_file)
    keep_meta_graph: bool = True  # False: --remove_unused_fields_from_bundle_metagraph
    release_pages: bool = True  # --flush_filesystem_caches
    prefer_tflite: bool = False  # --prefer_tflite_model: model.tflite, when present, runs in LiteRT
    tflite_interpreters: int = 1  # --num_tflite_pools x --num_tflite_interpreters_per_pool
    per_model_batching: bool = (
        False  # --enable_per_model_batching_parameters: <version>/batching_params.pbtxt
    )
    max_load_retries: int = 0  # --max_num_load_retries (TF Serving's default is 5)
    load_retry_interval_s: float = 0.0  # --load_retry_interval_micros

    @property
    def is_tflite(self) -> bool:
        """TF Serving's --prefer_tflite_model: model.tflite when the version holds one, else the SavedModel."""
        return self.prefer_tflite and (self.path / TFLITE_FILE).is_file()

    def estimate_ram_bytes(self) -> int:
        """Before the load: the files' estimate, plus the warm-up cost measured on this model's previous
        version when this one has a warm-up file to replay."""
        if self.is_tflite:
            return tflite_ram_bytes(self.path, self.tflite_interpreters)
        estimate = estimate_ram_bytes(self.path) + (0 if _runtime_loaded else _RUNTIME_RAM)
        if self.warmup.enabled and (self.path / WARMUP_FILE).is_file():
            estimate += _warmup_ram.get(self.name, 0)
        return estimate

    def load(self) -> Servable:
        """``load_once``, retried ``max_load_retries`` times ``load_retry_interval_s`` apart when it fails
        (TF Serving's --max_num_load_retries / --load_retry_interval_micros; the wait is in the load thread)."""
        for attempt in range(self.max_load_retries + 1):
            try:
                return self.load_once()
            except ServingError as exc:
                if attempt == self.max_load_retries:
                    raise
                log.warning(
                    "model %s version %d: load failed (%s); retry %d of %d in %.1f s",
                    self.name,
                    self.version,
                    exc.message,
                    attempt + 1,
                    self.max_load_retries,
                    self.load_retry_interval_s,
                )
                time.sleep(self.load_retry_interval_s)
        raise AssertionError("unreachable")

    def load_once(self) -> Servable:
        if not _runtime_loaded:
            return self._load_once()
        background_thread()
        calling_thread = IN_CALLING_THREAD.set(True)  # restore and warm-up ops in this niced thread
        try:
            return self._load_once()
        finally:
            IN_CALLING_THREAD.reset(calling_thread)

    def _load_once(self) -> Servable:
        started = time.perf_counter()
        ram_bytes = self.estimate_ram_bytes()
        servable = self._load_tflite(ram_bytes) if self.is_tflite else self._load_saved_model(ram_bytes)
        if self.per_model_batching and (self.path / BATCHING_FILE).is_file():
            try:
                servable.batching = parse_batching_config(
                    (self.path / BATCHING_FILE).read_text(encoding="utf-8"), str(self.path / BATCHING_FILE)
                )
            except (ConfigError, OSError, UnicodeDecodeError) as exc:
                servable.close()
                raise InvalidArgument(f"model {self.name} version {self.version}: {exc}") from None
        log.info(
            "model %s version %d: loaded in %d ms (%s%s)",
            self.name,
            self.version,
            (time.perf_counter() - started) * 1000,
            ", ".join(sorted(servable.signature_defs)),
            "; TF Lite" if self.is_tflite else "",
        )
        warms = self.warmup.enabled and not self.is_tflite and (self.path / WARMUP_FILE).is_file()
        # anonymous memory only: the library pages the replay touches are file pages, released below, so no
        # release (a read of all of smaps) is needed before the replay to keep them out of the figure
        before = anonymous_rss_bytes() if warms else 0
        warmed = 0
        if self.warmup.enabled:
            options = replace(self.warmup, skip_unknown_signatures=True) if self.is_tflite else self.warmup
            try:
                warmed = replay_warmup(servable, options)
            except BaseException:
                servable.close()  # never leave a half-loaded version behind
                raise
            if warmed:
                log.info("model %s version %d: warmed up with %d requests", self.name, self.version, warmed)
        if self.release_pages:
            release_file_pages()  # what the load touched of TensorFlow's libraries and serving will not use
        if warmed and before:
            self._count_warmup(servable, max(0, anonymous_rss_bytes() - before))
        return servable

    def _count_warmup(self, servable: Servable, growth: int) -> None:
        """Re-estimate after the replay: the files' estimate plus what the warm-up left in RSS (process-wide,
        so requests served meanwhile may add to it: an over-estimate, the safe side), this version's own
        figure replacing the previous version's."""
        servable.ram_bytes += growth - _warmup_ram.get(self.name, 0)
        _warmup_ram[self.name] = growth
        log.info(
            "model %s version %d: estimated RAM %.1f MiB after warm-up (the replay kept %.1f MiB)",
            self.name,
            self.version,
            servable.ram_bytes / 2**20,
            growth / 2**20,
        )

    def _load_tflite(self, ram_bytes: int) -> Servable:
        try:
            return load_tflite(self.name, self.version, self.path, self.tflite_interpreters, ram_bytes)
        except OSError as exc:
            raise serving_error_from_tf(exc) from None

    def _load_saved_model(self, ram_bytes: int) -> Servable:
        global _runtime_loaded
        try:
            session = Session.load(
                self.path,
                self.tags,
                intra_op_threads=self.intra_op_threads,
                inter_op_threads=self.inter_op_threads,
                session_config=self.session_config,
            )
        except (SessionError, OSError) as exc:
            raise serving_error_from_tf(exc) from None
        meta_graph = meta_graph_pb2.MetaGraphDef.FromString(session.meta_graph_def)
        if not self.keep_meta_graph:
            session.meta_graph_def = (
                b""  # the graph is TensorFlow's now; the servable keeps its SignatureDefs
            )
        try:
            _check_variables_restored(self.path, meta_graph)
        except ServingError:
            session.close()
            raise
        servable = Servable(
            name=self.name,
            version=self.version,
            path=self.path,
            signature_defs=dict(meta_graph.signature_def),
            session=session,
            ram_bytes=ram_bytes,
        )
        _runtime_loaded = True
        return servable

    @staticmethod
    def unload(servable: Servable) -> None:
        background_thread()  # after a load, never the thread making TensorFlow's pools
        servable.close()
