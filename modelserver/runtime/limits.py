"""Per-request bounds: how much work one request may ask for, checked from what it *declares* before anything
is allocated (TF Serving has no such bounds; a 44-byte Predict declaring ``[20000,28,28,1]`` must not cost
gigabytes).

Contract:
- ``RequestLimits.check_tensor(name, dims, itemsize)`` raises ``InvalidArgument`` naming the input, the bound
  and the flag that sets it when a declared shape is malformed (negative or unknown dimensions, rank over
  ``MAX_RANK``) or asks for more than ``max_elements`` / ``max_bytes`` / ``max_batch_size`` rows.
- ``RequestBudget`` sums the inputs of one request against the same bounds (the limits are per request, not
  per tensor). Both are cheap (Python integers, no allocation) and thread-safe (immutable / per request).
- Bytes are what the server will hold, not what the wire carried: a string element costs
  ``STRING_ELEMENT_BYTES`` (its Python object, array slot, TensorFlow tstring and the protobuf view; measured
  at 200-500 bytes per tiny string on the REST path) on top of nothing - its characters are already counted
  by the message or body size (``--max_request_bytes`` / ``--rest_api_max_body_bytes``), so the check stays
  O(1) per tensor. Before a JSON body is parsed, ``check_json_body`` estimates the Python objects it will
  become from its quotes and commas (two ``bytes.count`` passes); ``check_examples`` bounds a tf.Example
  input by count (``max_batch_size``) and by the bytes it will be serialized into, the context counted once
  per example (TF Serving merges it into every one). Issue 25: 1.5 M tiny strings in a 15 KiB gzip body
  built +750 MiB; 250,000 empty examples +164 MiB; a 1 MiB context with 200 examples +195 MiB.
"""

from __future__ import annotations

import contextvars
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from guard.trim import trim_soon
from modelserver.errors import DeadlineExceeded, InvalidArgument

__all__ = [
    "DEADLINE",
    "DEFAULT_LIMITS",
    "EXAMPLE_BYTES",
    "JSON_VALUE_BYTES",
    "MAX_RANK",
    "STRING_ELEMENT_BYTES",
    "RequestBudget",
    "RequestLimits",
    "check_deadline",
]

# The caller's deadline (time.monotonic()), set by the gRPC adapter from the call's deadline: work whose
# deadline passed while it waited (for a worker thread, in a batch queue) is not run - nobody waits for it.
DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("modelserver_deadline", default=None)


def check_deadline(deadline: float | None = None) -> None:
    """DeadlineExceeded when ``deadline`` (default: the current call's) has passed."""
    deadline = DEADLINE.get() if deadline is None else deadline
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlineExceeded("Deadline Exceeded: the call's deadline passed before the model ran")


# numpy stops at 64 dimensions; no model here has more than a handful.
MAX_RANK = 32
# What the server holds per element beyond the wire bytes (see the module docstring).
STRING_ELEMENT_BYTES = 256
EXAMPLE_BYTES = 256  # per tf.Example: its serialized bytes object, array slot and tstring
JSON_VALUE_BYTES = 32  # per parsed JSON value: a Python float/int and its list slot
_WHAT_TO_SEND = (
    "send fewer strings or examples per request (split the batch), or numeric tensors in tensor_content"
)


@dataclass(frozen=True)
class RequestLimits:
    """Bounds per request (flags ``--max_request_elements``, ``--max_request_bytes``,
    ``--max_request_batch_size``; 0 = no bound)."""

    max_elements: int = 1 << 26
    max_bytes: int = 256 << 20
    max_batch_size: int = 1 << 16

    def check_tensor(self, name: str, dims: Sequence[int], itemsize: int) -> int:
        """The element count of a declared shape, or InvalidArgument; ``itemsize`` is what one element costs
        the server (``STRING_ELEMENT_BYTES`` for strings)."""
        if len(dims) > MAX_RANK:
            raise InvalidArgument(f"input {name}: rank {len(dims)} is over {MAX_RANK}; send fewer dimensions")
        for size in dims:
            if size < 0:
                raise InvalidArgument(
                    f"input {name}: dimension {size} in shape {list(dims)}; every dimension of a request "
                    "tensor must be known (>= 0)"
                )
        if dims and self.max_batch_size and dims[0] > self.max_batch_size:
            trim_soon()  # a refused request's parsed message is freed on return: give its pages back
            raise InvalidArgument(
                f"input {name}: batch of {dims[0]} rows is over this server's limit of {self.max_batch_size}"
                " per request (--max_request_batch_size); split it into smaller requests"
            )
        elements = math.prod(dims)
        self._check_totals(name, elements, elements * itemsize)
        return elements

    def _check_totals(self, name: str, elements: int, nbytes: int) -> None:
        if self.max_elements and elements > self.max_elements:
            trim_soon()
            raise InvalidArgument(
                f"input {name}: {elements} elements is over this server's limit of {self.max_elements} per "
                "request (--max_request_elements); send smaller or fewer tensors"
            )
        if self.max_bytes and nbytes > self.max_bytes:
            trim_soon()
            raise InvalidArgument(
                f"input {name}: {nbytes} bytes is over this server's limit of {self.max_bytes} per request "
                f"(--max_request_bytes; a string element counts {STRING_ELEMENT_BYTES} bytes); send smaller "
                "or fewer tensors"
            )

    def check_json_body(self, body: bytes | bytearray, end: int | None = None) -> None:
        """Before parsing: the Python objects a JSON body (up to ``end``) would become (strings from its
        quotes, other values from its commas) must fit ``max_bytes``; InvalidArgument saying what to send
        otherwise."""
        end = len(body) if end is None else end
        # at most one string per 2 bytes and one value per byte: small bodies cannot be over, skip the scan
        if (
            not self.max_bytes
            or end * (STRING_ELEMENT_BYTES // 2 + JSON_VALUE_BYTES) + JSON_VALUE_BYTES <= self.max_bytes
        ):
            return
        strings = body.count(b'"', 0, end) // 2
        values = body.count(b",", 0, end) + 1
        cost = strings * STRING_ELEMENT_BYTES + values * JSON_VALUE_BYTES
        if cost > self.max_bytes:
            trim_soon()
            raise InvalidArgument(
                f"the request body holds about {strings} strings and {values} values, which would take "
                f"about {cost >> 20} MiB of server memory (a string counts {STRING_ELEMENT_BYTES} bytes, a "
                f"value {JSON_VALUE_BYTES}): over this server's limit of {self.max_bytes} bytes per request "
                f"(--max_request_bytes); {_WHAT_TO_SEND}, or use gRPC"
            )

    def check_examples(self, count: int, example_bytes: int, context_bytes: int = 0) -> None:
        """A tf.Example input of ``count`` examples (``example_bytes`` serialized in all) with a context of
        ``context_bytes`` merged into each: InvalidArgument unless its rows and bytes fit."""
        if self.max_batch_size and count > self.max_batch_size:
            trim_soon()
            raise InvalidArgument(
                f"{count} examples is over this server's limit of {self.max_batch_size} per request "
                "(--max_request_batch_size); split them into smaller requests"
            )
        # held twice: the serialized examples, and TensorFlow's copy of them as its string tensor
        cost = count * EXAMPLE_BYTES + 2 * (count * context_bytes + example_bytes)
        if self.max_bytes and cost > self.max_bytes:
            trim_soon()
            raise InvalidArgument(
                f"{count} examples of {example_bytes} bytes with a {context_bytes}-byte context (merged into "
                f"every example) would take {cost} bytes: over this server's limit of {self.max_bytes} per "
                "request (--max_request_bytes); send fewer examples or a smaller context per request"
            )


DEFAULT_LIMITS = RequestLimits()


class RequestBudget:
    """The running totals of one request's inputs against ``limits``."""

    def __init__(self, limits: RequestLimits) -> None:
        self.limits = limits
        self.elements = 0
        self.nbytes = 0

    def spend(self, name: str, dims: Sequence[int], itemsize: int) -> int:
        elements = self.limits.check_tensor(name, dims, itemsize)
        self.elements += elements
        self.nbytes += elements * itemsize
        self.limits._check_totals(name, self.elements, self.nbytes)
        return elements
