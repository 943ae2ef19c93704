"""The model client's channels: ``GATEWAY_CHANNELS_PER_SERVER`` connections per model server address, taking
turns call by call (``gateway.upstream.client``'s docstring, Channels)."""

from __future__ import annotations

import itertools

import grpc
from grpc_health.v1 import health_pb2_grpc

from oip_protos import grpc_predict_v2_pb2_grpc
from tfs_protos.tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

__all__ = ["Connection", "Server"]

_READY = grpc.ChannelConnectivity.READY


class Connection:
    """One channel (its own HTTP/2 connection) and its stubs."""

    def __init__(self, address: str, max_bytes: int) -> None:
        self.channel = grpc.aio.insecure_channel(
            address,
            options=[
                ("grpc.max_send_message_length", max_bytes),
                ("grpc.max_receive_message_length", max_bytes),
                # Reconnect quickly after a model server restart (default max backoff is 120 s).
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 2000),
                ("grpc.enable_retries", 0),
                # Spread calls over every address a name resolves to (k8s headless Service: all replicas).
                ("grpc.lb_policy_name", "round_robin"),
                # A connection of its own: channels with equal options would share one from gRPC's global
                # subchannel pool.
                ("grpc.use_local_subchannel_pool", 1),
            ],
        )
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.oip = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)


class Server:
    """``count`` connections to one address, taking turns call by call: a model server with several
    processes on one port (``--num_workers``, SO_REUSEPORT) gets each connection on one of its workers."""

    def __init__(self, address: str, max_bytes: int, count: int = 1) -> None:
        self.address = address
        self.connections = [Connection(address, max_bytes) for _ in range(count)]
        self._turns = itertools.cycle(self.connections)

    def _next(self) -> Connection:
        """The next connection in turn that is READY. After a model server restart the connections
        reconnect one by one (each with its own backoff): calls go to those already back instead of failing
        on the others. None ready (start, or the server is down): the next in turn, and every idle one is
        asked to connect."""
        chosen = next(self._turns)
        if len(self.connections) == 1 or chosen.channel.get_state(try_to_connect=True) is _READY:
            return chosen
        for _ in range(len(self.connections) - 1):
            other = next(self._turns)
            if other.channel.get_state(try_to_connect=True) is _READY:
                return other
        return chosen

    @property
    def prediction(self) -> prediction_service_pb2_grpc.PredictionServiceStub:
        return self._next().prediction

    @property
    def models(self) -> model_service_pb2_grpc.ModelServiceStub:
        return self._next().models

    @property
    def oip(self) -> grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub:
        return self._next().oip

    @property
    def health(self) -> health_pb2_grpc.HealthStub:
        return self._next().health

    async def close(self) -> None:
        for connection in self.connections:
            await connection.channel.close(grace=None)
