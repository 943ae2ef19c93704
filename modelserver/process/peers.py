"""Peers: what one serving worker knows about its siblings when ``--num_workers`` > 1 (the supervisor,
``modelserver.process.supervisor``, starts them; each is a full model server holding every model).

Contract:
- ``WorkerContext`` (``modelserver.process.supervisor``) tells a process it is worker ``index`` of ``count``.
- Each worker serves ``modelserver.Peers/ApplyConfig`` on ``<folder>/worker-<index>.sock`` (its own grpc.aio
  server on the same event loop; unix socket only, never a TCP port). It applies a ``ModelServerConfig``
  exactly as a reload does, without the token and allowed-roots checks: those ran once, in the worker the
  call came in to.
- ``apply_everywhere(config, apply_here)`` is how a config change reaches every worker: under the cluster
  lock (``flock`` on ``<folder>/config.lock``) the config is applied here and on every sibling at once, and
  it returns only when all are done, so changes are applied in one order on every worker; a change once started
  completes everywhere even if its caller goes away (a client's deadline: no deadline is sent on). Used by
  HandleReloadConfigRequest (``modelserver.protocols.tfs.grpc_service``) and by worker 0's config-file polling.
- ``wait_for_siblings()`` is the start barrier: a worker opens its public ports only once every sibling has
  loaded the start config and listens on its control socket, so a reload can always reach all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc

from modelserver.dataplane import DataPlane
from modelserver.errors import ConfigError, InvalidArgument, ServingError, Unavailable
from modelserver.lifecycle.model_config import ModelEntry, model_entries
from modelserver.process.supervisor import WorkerContext
from modelserver.protocols.tfs.grpc_service import Reload
from tfs_protos.tensorflow_serving.apis import model_management_pb2
from tfs_protos.tensorflow_serving.config import model_server_config_pb2

__all__ = ["Peers", "absolute_paths", "entries_or_error", "reload_everywhere"]

log = logging.getLogger("modelserver.peers")

T = TypeVar("T")
APPLY_METHOD = "/modelserver.Peers/ApplyConfig"
ApplyConfig = Callable[[dict[str, ModelEntry]], Awaitable[None]]


def parse_config(raw: bytes) -> dict[str, ModelEntry]:
    try:
        config = model_server_config_pb2.ModelServerConfig.FromString(raw)
        return model_entries(config, base_dir=None)
    except Exception as exc:  # DecodeError or ConfigError: a sibling sent something this worker cannot use
        raise InvalidArgument(f"config from a sibling worker not applied: {exc}") from None


class Peers:
    def __init__(self, context: WorkerContext, apply: ApplyConfig) -> None:
        self.context = context
        self._apply = apply
        self._server: grpc.aio.Server | None = None
        self._channels: dict[int, grpc.aio.Channel] = {}
        self._unfinished: set[asyncio.Future[Any]] = set()

    @property
    def siblings(self) -> list[int]:
        return [i for i in range(self.context.count) if i != self.context.index]

    # ---- this worker's control socket ------------------------------------------------------------------
    async def start(self) -> None:
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 256 << 20)])
        handler = grpc.unary_unary_rpc_method_handler(self._serve_apply)  # bytes in, bytes out
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("modelserver.Peers", {"ApplyConfig": handler}),)
        )
        path = self.context.socket_path(self.context.index)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        server.add_insecure_port(f"unix:{path}")
        await server.start()
        self._server = server
        self._listening(self.context.index).touch()  # the start barrier's sign: loaded and listening

    def _listening(self, index: int) -> Path:
        return self.context.directory / f"worker-{index}.listening"

    async def _serve_apply(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        try:
            await self._finish(self._apply(parse_config(raw)))
        except ServingError as exc:
            await context.abort(exc.code, exc.message)
        except Exception as exc:
            log.exception("a config from a sibling worker failed")
            await context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        return b""

    async def stop(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        if self._server is not None:
            await self._server.stop(1.0)

    # ---- start barrier ---------------------------------------------------------------------------------
    async def wait_for_siblings(self, stopping: asyncio.Event) -> bool:
        """Until every sibling listens on its control socket (True) or ``stopping`` is set (False); the
        supervisor stops every worker when one fails to start."""
        waiting = self.siblings
        while waiting:
            waiting = [i for i in waiting if not self._listening(i).exists()]
            if waiting:
                if stopping.is_set():
                    return False
                await asyncio.sleep(0.05)
        return True

    # ---- one config on every worker --------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def cluster_lock(self) -> AsyncIterator[None]:
        """Exclusive across the workers: every config change holds it while it reaches all of them."""
        fd = os.open(self.context.directory / "config.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.02)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _channel(self, index: int) -> grpc.aio.Channel:
        channel = self._channels.get(index)
        if channel is None:
            target = f"unix:{self.context.socket_path(index)}"
            channel = grpc.aio.insecure_channel(target, options=[("grpc.max_send_message_length", 256 << 20)])
            self._channels[index] = channel
        return channel

    async def _finish(self, work: Awaitable[T]) -> T:
        """Await ``work`` in a task that runs to its end even if the caller is cancelled (a client's
        deadline, a dropped connection): a config change, once started, completes on every worker."""
        task = asyncio.ensure_future(work)
        self._unfinished.add(task)
        task.add_done_callback(self._unfinished.discard)
        return await asyncio.shield(task)

    async def _send(self, index: int, raw: bytes) -> None:
        call = self._channel(index).unary_unary(APPLY_METHOD)
        try:
            await call(raw)  # no deadline: a sibling finishes what it started; one that is gone fails at once
        except grpc.aio.AioRpcError as exc:
            code, details = exc.code(), exc.details() or ""
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise Unavailable(
                    f"worker {index} did not confirm the config ({code.name}: {details}); the workers may "
                    "serve different configs until it is applied again"
                ) from None
            raise ServingError(f"worker {index}: {details}", code=code) from None

    async def apply_everywhere(
        self,
        config: model_server_config_pb2.ModelServerConfig,
        apply_here: Callable[[], Awaitable[T]],
    ) -> T:
        """``apply_here()`` in this worker and ``config`` on every sibling, at once; the first error wins
        (this worker's, else a sibling's). If the caller goes away (a client's deadline), the change still
        completes everywhere, under the lock."""
        raw = config.SerializeToString()

        async def locked() -> list[Any]:
            async with self.cluster_lock():
                return await asyncio.gather(
                    apply_here(), *(self._send(i, raw) for i in self.siblings), return_exceptions=True
                )

        results = await self._finish(locked())
        for result in results:
            if isinstance(result, BaseException):
                raise result
        here: T = results[0]
        return here


def entries_or_error(config: model_server_config_pb2.ModelServerConfig) -> dict[str, ModelEntry]:
    """The entries of a reloaded config, or the InvalidArgument the data plane would answer."""
    try:
        return model_entries(config, base_dir=None)
    except ConfigError as exc:
        raise InvalidArgument(str(exc)) from None


def absolute_paths(
    config: model_server_config_pb2.ModelServerConfig, base_dir: Path
) -> model_server_config_pb2.ModelServerConfig:
    """A copy whose relative base paths are resolved against ``base_dir`` (a config file's models, sent to
    siblings that apply configs as reloads do)."""
    copy = model_server_config_pb2.ModelServerConfig()
    copy.CopyFrom(config)
    for model in copy.model_config_list.config:
        if model.base_path and not Path(model.base_path).is_absolute():
            model.base_path = str(base_dir / model.base_path)
    return copy


def reload_everywhere(peers: Peers, dataplane: DataPlane) -> Reload:
    """A ModelService reload checked here, once, then applied on every worker before it answers; a config the
    data plane would refuse is answered (and counted) by the data plane, before anything changes."""

    async def reload(
        request: model_management_pb2.ReloadConfigRequest,
    ) -> model_management_pb2.ReloadConfigResponse:
        try:
            dataplane.control.check_entries(entries_or_error(request.config))
        except ServingError:
            return await dataplane.reload_config(request)
        return await peers.apply_everywhere(request.config, lambda: dataplane.reload_config(request))

    return reload
