"""Wires one modelserver process: options -> config files -> manager/core -> data plane -> gRPC (grpc.aio)
and, with ``--rest_api_port``, the REST app under uvicorn on the same event loop.

Start-up order follows TF Serving: every config file is parsed first (a bad one fails the start), the
configured models are loaded, then the ports open - so a client that can connect finds the models loaded.
SIGTERM/SIGINT stop it gracefully: health goes NOT_SERVING, in-flight calls get a grace
period, versions unload.

As one of ``--num_workers`` workers (``worker`` given, started by ``modelserver.process.supervisor``) it also serves
its control socket to its siblings (``modelserver.process.peers``), waits for all of them to load the start config
before opening its ports, shares both ports with them (SO_REUSEPORT), holds 1/N of the RAM budget, polls the
config file only as worker 0 (a change is applied on every worker), and stops when the supervisor is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
from functools import partial
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health

from guard.descriptors import AcceptGuard, connection_budget
from guard.heap import freeze_heap
from guard.pages import release_file_pages
from modelserver.control import ModelControl, default_roots
from modelserver.dataplane import DataPlane
from modelserver.errors import ConfigError
from modelserver.lifecycle.aspired_version_policy import POLICIES
from modelserver.lifecycle.core import ServerCore
from modelserver.lifecycle.manager import AspiredVersionsManager
from modelserver.lifecycle.model_config import model_entries, read_model_config_file
from modelserver.process.grpc_port import grpc_server, listen
from modelserver.process.observers import drift_monitor, request_log, start_tracing
from modelserver.process.options import (
    ServerOptions,
    default_ram_budget,
    usable_cores,
)
from modelserver.process.peers import Peers, absolute_paths, reload_everywhere
from modelserver.process.rest_server import ASGIApp, Uvicorn, start_rest
from modelserver.process.startup_files import StartupFiles, read_startup_files
from modelserver.process.supervisor import WorkerContext
from modelserver.protocols.admission import CallAdmission
from modelserver.protocols.drift_rest import with_drift_rest
from modelserver.protocols.oip.grpc_service import add_oip_service
from modelserver.protocols.oip.service import OipDataPlane
from modelserver.protocols.tfs.grpc_service import add_services, set_health
from modelserver.protocols.tfs.rest import create_rest_app
from modelserver.runtime import session
from modelserver.runtime.batching import Batcher
from modelserver.runtime.limits import RequestLimits
from modelserver.runtime.loader import Loader
from modelserver.runtime.warmup import WarmupOptions

__all__ = ["ModelServer", "run"]

log = logging.getLogger("modelserver")

GRACE_SECONDS = 5.0


class ModelServer:
    def __init__(
        self, options: ServerOptions, files: StartupFiles | None = None, worker: WorkerContext | None = None
    ) -> None:
        self.options = options
        self.worker = worker
        self.peers: Peers | None = None
        files = files or read_startup_files(options)
        self.batching = files.batching
        self.monitoring = files.monitoring
        self.entries = files.entries
        self.session_config = files.session_config
        self.ssl = files.ssl
        self._config_text = files.model_config_text
        self._stopping = asyncio.Event()
        self._orphaned = False
        self._tasks: list[asyncio.Task[Any]] = []
        self.batcher: Batcher | None = None
        self._connections = 0  # per port, set at start (guard.descriptors.connection_budget)
        self.admission: CallAdmission | None = None  # gRPC calls' admission, set at start

    def control(self) -> ModelControl:
        o = self.options
        roots = o.allowed_roots
        allowed = (
            tuple(Path(r).resolve() for r in roots)
            if roots
            else default_roots(e.base_path for e in self.entries.values())
        )
        if o.enable_model_config_reload and not o.model_control_token:
            log.warning(
                "HandleReloadConfigRequest needs no token (set MODELSERVER_MODEL_CONTROL_TOKEN): anyone who "
                "reaches the gRPC port can change the served models; never expose it publicly"
            )
        log.info("HandleReloadConfigRequest accepts base paths under %s", [str(r) for r in allowed])
        return ModelControl(o.model_control_token, o.enable_model_config_reload, allowed)

    def _loader(self, name: str, version: int, path: Path) -> Loader:
        o = self.options
        warmup = WarmupOptions(
            enabled=o.enable_model_warmup,
            num_request_iterations=o.num_request_iterations_for_warmup,
            method_name_check=o.enable_signature_method_name_check,
        )
        intra, inter = self._thread_pools()
        return Loader(
            name,
            version,
            path,
            warmup,
            o.tags,
            intra_op_threads=intra,
            inter_op_threads=inter,
            session_config=self.session_config,
            keep_meta_graph=not o.remove_unused_fields_from_bundle_metagraph,
            release_pages=o.flush_filesystem_caches,
            prefer_tflite=o.prefer_tflite_model,
            tflite_interpreters=(o.num_tflite_pools or usable_cores()) * o.num_tflite_interpreters_per_pool,
            per_model_batching=o.enable_per_model_batching_parameters,
            max_load_retries=o.max_num_load_retries,
            load_retry_interval_s=max(0, o.load_retry_interval_micros) / 1e6,
        )

    def _thread_pools(self) -> tuple[int, int]:
        """(intra-op, inter-op) pool sizes, by TF Serving's rule (server.cc): when either specific flag is
        above 0 both specific flags are used as given (0: TensorFlow's choice; a negative inter-op size: the
        caller's thread), else --tensorflow_session_parallelism sets both. A size left at 0 becomes this
        worker's share of the cores when there are several workers (--num_workers, ours)."""
        o, share = self.options, self._worker_share_of_cores()
        if o.tensorflow_intra_op_parallelism > 0 or o.tensorflow_inter_op_parallelism > 0:
            return o.tensorflow_intra_op_parallelism or share, o.tensorflow_inter_op_parallelism or share
        both = o.tensorflow_session_parallelism or share
        return both, both

    def _worker_share_of_cores(self) -> int:
        """0 (TensorFlow's choice: every core) for one process; with N workers each gets its share of the
        usable cores for TensorFlow's thread pools, so N workers do not run N x cores threads."""
        if self.worker is None or self.worker.count <= 1:
            return 0
        return max(1, usable_cores() // self.worker.count)

    async def _poll_config_file(self) -> None:
        path = self.options.model_config_file
        while True:
            await asyncio.sleep(self.options.model_config_file_poll_wait_seconds)
            try:
                text = await asyncio.to_thread(Path(path).read_text, encoding="utf-8")
                if text == self._config_text:
                    continue
                config = read_model_config_file(path)
                entries = model_entries(config, base_dir=Path.cwd())
                self._config_text = text
                log.info("model config file %s changed, applying it", path)
                if self.peers is None:
                    await self.core.apply_config(entries)
                else:  # on every worker, in the same order as reloads
                    config = absolute_paths(config, Path.cwd())
                    await self.peers.apply_everywhere(config, partial(self.core.apply_config, entries))
            except Exception as exc:  # keep serving the last good config
                log.error("model config file %s not applied: %s", path, exc)

    def _watch_supervisor(self, fd: int) -> None:
        """The supervisor holds the pipe's write end: EOF means it is gone, and so must this worker be."""
        loop = asyncio.get_running_loop()

        def gone() -> None:
            loop.remove_reader(fd)
            log.error("the supervisor process is gone: stopping")
            self._orphaned = True
            self._stopping.set()

        loop.add_reader(fd, gone)

    def _ram_budget(self) -> int:
        total = self.options.total_model_memory_limit_bytes or default_ram_budget()
        if self.worker is None:
            log.info("RAM budget for loaded versions: %.1f MiB", total / 2**20)
            return total
        budget = total // self.worker.count  # every worker holds every model
        log.info(
            "RAM budget for loaded versions: %.1f MiB (1/%d of %.1f MiB: each worker holds every model)",
            budget / 2**20,
            self.worker.count,
            total / 2**20,
        )
        return budget

    async def serve(self) -> int:
        """Start (runtime, start-up loads, siblings, ports), serve until a signal or the supervisor's loss,
        drain, release."""
        if self.worker is not None:
            self._watch_supervisor(self.worker.parent_fd)
        start_tracing(self.options)
        await self._load_runtime()
        self._build()
        await self._load_start_config()
        _release_start_up_memory(self.options.flush_filesystem_caches)
        if not await self._join_siblings():
            await self._release()
            return 0
        grpc_server, health_service = await self._start_grpc()
        rest = await self._start_rest() if self.options.rest_api_port else None
        await set_health(health_service, True)
        self._start_polling()
        self._handle_signals()
        if self.worker is not None:
            self.worker.ready_path.touch()
        await self._stopping.wait()
        await self._drain(grpc_server, health_service, rest)
        await self._release()
        return 0

    async def _load_runtime(self) -> None:
        """The runtime every version runs on, loaded at start: a missing wheel fails here, not per load."""
        try:
            await asyncio.to_thread(session.library)
        except (session.SessionError, OSError) as exc:
            raise ConfigError(f"TensorFlow's C API could not be loaded: {exc}") from None

    def _build(self) -> None:
        """Manager, core, batcher, data plane: everything requests need, before any model loads."""
        o = self.options
        budget = self._ram_budget()
        log.info("aspired version policy: %s", o.aspired_version_policy)
        log.info(
            "num_load_threads=%d, num_unload_threads=%d (0: serially in the manager thread)",
            o.num_load_threads,
            o.num_unload_threads,
        )
        manager = AspiredVersionsManager(
            self._loader,
            ram_budget_bytes=budget,
            policy=POLICIES[o.aspired_version_policy](),
            num_load_threads=o.num_load_threads,
            num_unload_threads=o.num_unload_threads,
        )
        self.core = ServerCore(
            manager,
            file_system_poll_wait_seconds=o.file_system_poll_wait_seconds,
            allow_version_labels_for_unavailable_models=o.allow_version_labels_for_unavailable_models,
        )
        self.batcher = (
            Batcher(self.batching, dispatch_when_idle=o.batching_dispatch_when_idle)
            if self.batching
            else None
        )
        self.dataplane = DataPlane(
            self.core,
            batcher=self.batcher,
            method_name_check=o.enable_signature_method_name_check,
            threads=max(8, 2 * (os.cpu_count() or 1)),
            limits=RequestLimits(o.max_request_elements, o.max_request_bytes, o.max_request_batch_size),
            control=self.control(),
            tensor_content=o.enable_serialization_as_tensor_content,
            request_log=request_log(o),
            drift=drift_monitor(o),
        )
        self.oip = OipDataPlane(self.dataplane)

    async def _load_start_config(self) -> None:
        """The configured models, loaded before any port opens (TF Serving's order)."""
        try:
            await self.core.apply_config(self.entries)
        except Exception as exc:
            await self.core.stop()
            raise ConfigError(f"could not apply the model config at start: {exc}") from None

    async def _join_siblings(self) -> bool:
        """As a worker: serve the control socket, then wait until every sibling has loaded the start config
        (the start barrier). False when stopped while waiting."""
        if self.worker is None:
            return True
        self.peers = Peers(self.worker, self.core.apply_config)
        await self.peers.start()
        return await self.peers.wait_for_siblings(self._stopping)

    async def _start_grpc(self) -> tuple[grpc.aio.Server, health.aio.HealthServicer | None]:
        """TF Serving's services and the OIP's on the gRPC port (and socket); health still NOT_SERVING."""
        o = self.options
        AcceptGuard(asyncio.get_running_loop())  # accept() out of descriptors: one line, no traceback storm
        ports = (1 if o.port else 0) + (1 if o.grpc_socket_path else 0) + (1 if o.rest_api_port else 0)
        self._connections = connection_budget(o.max_connections_per_port, ports)  # logged there
        server, self.admission = grpc_server(
            o, reuse_port=self.worker is not None, max_connections=self._connections
        )
        health_service = add_services(
            server,
            self.dataplane,
            healthcheck=o.enable_grpc_healthcheck_service,
            reload=None if self.peers is None else reload_everywhere(self.peers, self.dataplane),
        )
        add_oip_service(server, self.oip)  # KServe v2 beside PredictionService
        addresses = listen(server, o, self.ssl)  # --ssl_config_file
        await server.start()
        log.info("Running gRPC ModelServer at %s ...", ", ".join(addresses))
        return server, health_service

    def _start_polling(self) -> None:
        """The source's polls, and (worker 0 or the only process) the model config file's."""
        o = self.options
        self.core.start_polling()
        first = self.worker is None or self.worker.index == 0
        if o.model_config_file and o.model_config_file_poll_wait_seconds > 0 and first:
            self._tasks.append(asyncio.create_task(self._poll_config_file()))

    async def _start_rest(self) -> tuple[Uvicorn, asyncio.Task[Any]]:
        """TF Serving's REST API with the OIP's ``/v2`` beside it (``modelserver.process.rest_server``)."""
        o = self.options
        monitoring_path = self.monitoring.prometheus_path if self.monitoring.prometheus_enabled else None
        app = create_rest_app(
            self.dataplane,
            monitoring_path=monitoring_path,
            enable_cors=o.rest_api_enable_cors_support,
            max_body_bytes=o.rest_api_max_body_bytes,
            limits=self.dataplane.limits,
        )
        served: ASGIApp = app
        if self.dataplane.drift is not None:
            served = with_drift_rest(app, self.dataplane.drift, self.dataplane.manager.is_known)
        shared, budget = self.worker is not None, self._connections
        return await start_rest(
            o, served, self.oip, shared_port=shared, grace_seconds=GRACE_SECONDS, max_connections=budget
        )

    def _handle_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)

    async def _drain(
        self,
        grpc_server: grpc.aio.Server,
        health_service: health.aio.HealthServicer | None,
        rest: tuple[Uvicorn, asyncio.Task[Any]] | None,
    ) -> None:
        """Health NOT_SERVING, then in-flight calls get ``GRACE_SECONDS`` on both ports."""
        log.info("stopping: draining requests for up to %.0f s", GRACE_SECONDS)
        await set_health(health_service, False)
        if rest is not None:
            rest[0].should_exit = True
        await grpc_server.stop(GRACE_SECONDS)
        if rest is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(rest[1], GRACE_SECONDS)

    async def _release(self) -> None:
        """Everything after the ports: tasks, sibling channels, versions, threads."""
        for task in self._tasks:
            task.cancel()
        if self.peers is not None:
            await self.peers.stop()
        await self.core.stop()
        if self.batcher is not None:
            self.batcher.shutdown()
        self.dataplane.shutdown()
        if self.worker is not None and self._orphaned:  # nobody else will remove the workers' folder
            shutil.rmtree(self.worker.directory, ignore_errors=True)
        log.info("stopped")


def _release_start_up_memory(release_pages: bool) -> None:
    """Once, after the start-up loads; not per load (a version is a C++ session with few Python objects, and a
    full collection during a hot swap would hold the GIL while requests wait)."""
    freeze_heap()
    # TensorFlow's op and kernel registration: start-up only (--flush_filesystem_caches)
    released = release_file_pages() if release_pages else 0
    if released:
        log.info("released %.0f MiB of TensorFlow library pages only start-up used", released / 2**20)


def run(
    options: ServerOptions, files: StartupFiles | None = None, worker: WorkerContext | None = None
) -> int:
    """Serve until SIGTERM/SIGINT; ConfigError for anything wrong at start."""
    server = ModelServer(options, files, worker)
    return asyncio.run(server.serve())
