"""HTTP plumbing shared by the REST adapters (TF Serving's REST API and the Open Inference Protocol's, served
on one port): the request body read with its size bound and gzip inflation, and the offload of large parse and
encode work from the event loop."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from starlette.requests import Request

from modelserver.errors import InvalidArgument, PayloadTooLarge

__all__ = ["DEFAULT_MAX_BODY_BYTES", "offload", "read_body"]

# The largest body, after gzip inflation (--rest_api_max_body_bytes): a bounded answer to decompression bombs.
DEFAULT_MAX_BODY_BYTES = 64 << 20
# Bodies above this size are parsed and written off the event loop so small requests keep flowing.
_OFFLOAD_BYTES = 256 * 1024
_INFLATE_STEP = 1 << 20


async def offload(function: Callable[[], Any], size: int) -> Any:
    if size < _OFFLOAD_BYTES:
        return function()
    return await anyio.to_thread.run_sync(function)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, inflated while it streams in when gzip/deflate-encoded; over ``limit`` bytes (declared,
    received or inflated) it is 413 at once, so a request never holds more than ``limit`` bytes."""
    too_large = PayloadTooLarge(
        f"Request body is over {limit} bytes (--rest_api_max_body_bytes, counted after decompression);"
        " send a smaller batch or use gRPC"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
        raise InvalidArgument(f"Unsupported Content-Encoding: {encoding}; send identity or gzip")
    inflater = (
        zlib.decompressobj(wbits=47 if encoding != "deflate" else 15)  # 47: gzip or zlib header
        if encoding not in ("", "identity")
        else None
    )
    body = bytearray()
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise too_large
            if inflater is None:
                body += chunk
                continue
            while chunk:  # 1 MiB at a time, yielding between pieces: other requests keep flowing
                body += inflater.decompress(chunk, _INFLATE_STEP)
                if len(body) > limit:
                    raise too_large
                chunk = inflater.unconsumed_tail
                await asyncio.sleep(0)
        if inflater is not None:
            body += inflater.flush()
            if len(body) > limit:
                raise too_large
    except zlib.error as exc:
        raise InvalidArgument(f"Failed to decompress the {encoding} request body: {exc}") from None
    if inflater is not None and not inflater.eof:
        raise InvalidArgument(f"Failed to decompress the {encoding} request body: it is truncated")
    return body  # type: ignore[return-value]  # a bytearray: no second copy of a large body
