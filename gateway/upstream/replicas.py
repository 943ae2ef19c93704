"""The model client's replica rotation: which replica of a model answers next, passive health (a failed call
ejects its replica) and active health (``watch()`` probes), and replica discovery (``replicas()``); routing
is ``gateway.upstream.client``'s docstring. ``ModelClient`` extends ``Rotation``; its ``_call`` makes the
attempts.

Failover (a model with two or more replicas in ``GATEWAY_MODEL_REPLICAS``; calls not sent to a given
``address``). While another replica is in rotation, an attempt gets ``GATEWAY_FAILOVER_TIMEOUT_SECONDS`` (the
rest of the call's deadline otherwise); an attempt cut by it (a hung or partitioned replica) or failing
UNAVAILABLE is retried at once on another replica - Predict, Classify, Regress and metadata are idempotent -
and its replica leaves the rotation (passive health) for ``GATEWAY_EJECT_SECONDS``. NOT_FOUND is retried on
another replica in rotation too (one still converging may not have the version yet; the replica stays in
rotation). ``watch()`` (run by the app) probes every listed replica each ``GATEWAY_HEALTH_INTERVAL_SECONDS``
with ``grpc.health.v1.Health/Check`` under ``GATEWAY_REPLICA_STATUS_TIMEOUT_SECONDS`` (active health): one
that answers (SERVING, or UNIMPLEMENTED from a server without the health service, e.g. TF Serving) is back in
rotation (after a call failed on it: once a hold of 1 s, doubling per failure in a row, has passed), one that
does not (or NOT_SERVING) is taken out. With every replica out, calls still go to them in turn (better a try
than a refusal). A model behind one DNS name relies on gRPC's round_robin, which drops addresses whose
connection fails, not hung ones: list the replicas for failover.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
from collections.abc import Callable, Collection

import grpc
from grpc_health.v1 import health_pb2

from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.upstream.channels import Server

__all__ = ["EJECT_HOLD_SECONDS", "Rotation", "split_address"]

log = logging.getLogger("gateway.client")
_LOST = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
EJECT_HOLD_SECONDS = 1.0  # the first hold of a passive ejection (doubles per failure in a row)


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class Rotation:
    """The replicas of each model listed in ``GATEWAY_MODEL_REPLICAS``: their turns and who is in rotation."""

    def __init__(
        self, settings: Settings, metrics: Metrics, targets: Callable[[str], list[str]] | None = None
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._targets = targets or settings.replica_targets
        self._turns = {m: itertools.cycle(range(len(a))) for m, a in settings.model_replicas.items()}
        self._out_until: dict[str, float] = {}  # replica address -> monotonic time it may return
        self._hold_until: dict[str, float] = {}  # ... before which a health probe may not bring it back
        self._strikes: dict[str, int] = {}  # passive ejections since its last answered call

    def _server(self, address: str) -> Server:
        raise NotImplementedError  # the client's channels to ``address``

    def address_for(self, model: str, avoid: Collection[str] = ()) -> str:
        """The model's next replica in turn that is in rotation and not in ``avoid`` (failing that, one not
        in ``avoid``, then the next in turn), or its one server address."""
        turns = self._turns.get(model)
        if turns is None:
            return self._settings.server_for(model)
        replicas = self._settings.model_replicas[model]
        first = next(turns)  # one step per call: calls take turns over the replicas
        order = replicas[first:] + replicas[:first]
        for address in order:
            if address not in avoid and self.in_rotation(address):
                return address
        return next((a for a in order if a not in avoid), order[0])

    def _failover(self, model: str) -> bool:
        return len(self._settings.model_replicas.get(model) or ()) > 1

    def in_rotation(self, address: str) -> bool:
        return time.monotonic() >= self._out_until.get(address, 0.0)

    def _spare(self, model: str, tried: Collection[str]) -> bool:
        """Another replica of ``model`` in rotation that this call has not tried."""
        return any(a not in tried and self.in_rotation(a) for a in self._settings.model_replicas[model])

    def _eject(self, address: str, reason: str) -> None:
        """Out of rotation for ``GATEWAY_EJECT_SECONDS``. A call that failed (passive health) also holds it
        out of the probes' reach for 1, 2, 4 ... s (up to that) per failure in a row, so a replica that
        answers probes but not calls costs one short attempt per hold, not one per probe."""
        now = time.monotonic()
        if self.in_rotation(address):
            log.warning("replica %s out of rotation (%s)", address, reason)
            self._metrics.replica_ejections.labels(address, reason).inc()
        self._out_until[address] = now + self._settings.eject_seconds
        if reason != "health":
            strikes = self._strikes[address] = self._strikes.get(address, 0) + 1
            hold = min(self._settings.eject_seconds, EJECT_HOLD_SECONDS * 2 ** min(strikes - 1, 16))
            self._hold_until[address] = now + hold
        self._metrics.replica_in_rotation.labels(address).set(0)

    def _readmit(self, address: str) -> None:
        if time.monotonic() < self._hold_until.get(address, 0.0):
            return
        if not self.in_rotation(address):
            log.warning("replica %s back in rotation (health check answered)", address)
        self._out_until.pop(address, None)
        self._metrics.replica_in_rotation.labels(address).set(1)

    @property
    def watched(self) -> list[str]:
        """The replicas ``watch()`` probes: those of every model listed with two or more."""
        if self._settings.health_interval_seconds <= 0:
            return []
        return sorted(
            {
                a
                for m, addresses in self._settings.model_replicas.items()
                for a in addresses
                if self._failover(m)
            }
        )

    async def watch(self) -> None:
        """Active health (module docstring): probe every watched replica until cancelled."""
        addresses = self.watched
        while addresses:
            await asyncio.gather(*(self._probe(a) for a in addresses))
            await asyncio.sleep(self._settings.health_interval_seconds)

    async def _probe(self, address: str) -> None:
        try:
            reply = await self._server(address).health.Check(
                health_pb2.HealthCheckRequest(), timeout=self._settings.replica_status_timeout_seconds
            )
        except grpc.aio.AioRpcError as exc:
            serving = exc.code() not in _LOST  # it answered: a server without the health service
        else:
            serving = reply.status == health_pb2.HealthCheckResponse.SERVING
        if serving:
            self._readmit(address)
        else:
            self._eject(address, "health")

    async def replicas(self, model: str) -> list[str]:
        """Every replica of ``model`` as ``ip:port`` (names resolved to all their addresses), sorted."""
        loop = asyncio.get_running_loop()
        found: set[str] = set()
        for target in self._targets(model):
            host, port = split_address(target)
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError:  # unresolvable now (e.g. no ready pod): report the name itself as unreachable
                found.add(target)
                continue
            for family, _, _, _, sockaddr in infos:
                ip = str(sockaddr[0])
                found.add(f"[{ip}]:{port}" if family == socket.AF_INET6 else f"{ip}:{port}")
        return sorted(found)
