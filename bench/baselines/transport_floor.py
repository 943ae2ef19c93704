"""The transport floor: what grpc.aio and uvicorn cost on this machine when the handler does no work at all.

    python -m bench.baselines.transport_floor GRPC_PORT HTTP_PORT [SYNC_THREADS]   (binds 127.0.0.1 only)

One process, one asyncio event loop (like the modelserver's), two servers:

- grpc.aio answers ``/tensorflow.serving.PredictionService/Predict`` with a generic handler that takes the
  request as raw bytes and returns the same canned bytes every time (no (de)serializer, so no protobuf work
  per call): a real serialized ``PredictResponse`` shaped like the modelserver's fashion answer, built once
  at start from the generated protos (no TensorFlow import).
- uvicorn (httptools, no access log, lifespan off) runs a plain ASGI app that reads the body of
  ``POST /v1/models/fashion:predict`` and answers a canned ``{"predictions": [[10 floats]]}``;
  ``GET /healthz`` answers 200 once both servers listen.

With ``SYNC_THREADS`` the gRPC side is grpcio's synchronous server (a thread pool of that size) instead of
grpc.aio: the floor of the other gRPC server the modelserver could use (issue 30, lever "sync"; uvicorn
unchanged).

Any server of the model over these transports pays at least this per request; the bench records it in the
same run as the modelserver (scenario ``floor``).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import grpc

__all__ = ["LOOPBACK", "PREDICT_PATH", "PROBABILITIES", "create_rest_app", "predict_reply", "serve"]

LOOPBACK = "127.0.0.1"
PREDICT_PATH = "/v1/models/fashion:predict"
SERVICE, METHOD = "tensorflow.serving.PredictionService", "Predict"
# Ten class probabilities summing to 1, as the fashion model answers one image.
PROBABILITIES = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.55)


def predict_reply(version: int = 1) -> bytes:
    """A serialized ``PredictResponse`` like the modelserver's answer to one fashion image."""
    from tfs_protos.tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tfs_protos.tensorflow_serving.apis import predict_pb2

    reply = predict_pb2.PredictResponse()
    reply.model_spec.name = "fashion"
    reply.model_spec.version.value = version
    reply.model_spec.signature_name = "serving_default"
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1), tensor_shape_pb2.TensorShapeProto.Dim(size=10)]
    )
    reply.outputs["probabilities"].CopyFrom(
        tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=shape, float_val=PROBABILITIES)
    )
    return bytes(reply.SerializeToString())


def create_rest_app() -> Any:
    """The ASGI app: canned predictions for the predict path, 200 on /healthz, 404 elsewhere."""
    predictions = json.dumps({"predictions": [list(PROBABILITIES)]}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(predictions)).encode())]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:  # read the whole body, as a server of the model must
            message = await receive()
            more = message.get("more_body", False)
        if scope["method"] == "POST" and scope["path"] == PREDICT_PATH:
            status, body, head = 200, predictions, headers
        elif scope["path"] == "/healthz":
            status, body, head = 200, b"ok", [(b"content-type", b"text/plain")]
        else:
            status, body, head = 404, b"not found", [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": status, "headers": head})
        await send({"type": "http.response.body", "body": body})

    return app


async def serve(grpc_port: int, http_port: int, sync_threads: int = 0) -> None:
    reply = predict_reply()
    if sync_threads:
        from concurrent.futures import ThreadPoolExecutor

        sync = grpc.server(ThreadPoolExecutor(max_workers=sync_threads))
        sync.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    SERVICE, {METHOD: grpc.unary_unary_rpc_method_handler(lambda request, context: reply)}
                ),
            )
        )
        sync.add_insecure_port(f"{LOOPBACK}:{grpc_port}")
        sync.start()
        try:
            await _serve_rest(http_port)
        finally:
            sync.stop(0)
        return

    async def predict(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        del request, context
        return reply

    handler = grpc.method_handlers_generic_handler(
        SERVICE, {METHOD: grpc.unary_unary_rpc_method_handler(predict)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"{LOOPBACK}:{grpc_port}")
    await server.start()
    try:
        await _serve_rest(http_port)
    finally:
        await server.stop(0)


async def _serve_rest(http_port: int) -> None:
    import uvicorn

    config = uvicorn.Config(
        create_rest_app(),
        host=LOOPBACK,
        port=http_port,
        http="httptools",
        lifespan="off",
        log_level="warning",
        access_log=False,
    )
    await uvicorn.Server(config).serve()  # returns on SIGINT / SIGTERM


if __name__ == "__main__":
    asyncio.run(serve(*(int(arg) for arg in sys.argv[1:4])))
