"""Per-request bounds: how much work one request may ask for, checked from what it *declares* before anything
is allocated (TF Serving has no such bounds; a 44-byte Predict declaring ``[20000,28,28,1]`` must not cost
gigabytes).

Contract:
- ``RequestLimits.check_tensor(name, dims, itemsize)`` raises ``InvalidArgument`` naming the input, the bound
  and the flag that sets it when a declared shape is malformed (negative or unknown dimensions, rank over
  ``MAX_RANK``) or asks for more than ``max_elements`` / ``max_bytes`` / ``max_batch_size`` rows.
- ``RequestBudget`` sums the inputs of one request against the same bounds (the limits are per request, not
  per tensor). Both are cheap (Python integers, no allocation) and thread-safe (immutable / per request).
"""

from __future__ import annotations

import contextvars
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from modelserver.errors import DeadlineExceeded, InvalidArgument

__all__ = ["DEADLINE", "DEFAULT_LIMITS", "MAX_RANK", "RequestBudget", "RequestLimits", "check_deadline"]

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


@dataclass(frozen=True)
class RequestLimits:
    """Bounds per request (flags ``--max_request_elements``, ``--max_request_bytes``,
    ``--max_request_batch_size``; 0 = no bound)."""

    max_elements: int = 1 << 26
    max_bytes: int = 256 << 20
    max_batch_size: int = 1 << 16

    def check_tensor(self, name: str, dims: Sequence[int], itemsize: int) -> int:
        """The element count of a declared shape, or InvalidArgument; ``itemsize`` 0 for strings."""
        if len(dims) > MAX_RANK:
            raise InvalidArgument(f"input {name}: rank {len(dims)} is over {MAX_RANK}; send fewer dimensions")
        for size in dims:
            if size < 0:
                raise InvalidArgument(
                    f"input {name}: dimension {size} in shape {list(dims)}; every dimension of a request "
                    "tensor must be known (>= 0)"
                )
        if dims and self.max_batch_size and dims[0] > self.max_batch_size:
            raise InvalidArgument(
                f"input {name}: batch of {dims[0]} rows is over this server's limit of {self.max_batch_size}"
                " per request (--max_request_batch_size); split it into smaller requests"
            )
        elements = math.prod(dims)
        self._check_totals(name, elements, elements * itemsize)
        return elements

    def _check_totals(self, name: str, elements: int, nbytes: int) -> None:
        if self.max_elements and elements > self.max_elements:
            raise InvalidArgument(
                f"input {name}: {elements} elements is over this server's limit of {self.max_elements} per "
                "request (--max_request_elements); send smaller or fewer tensors"
            )
        if self.max_bytes and nbytes > self.max_bytes:
            raise InvalidArgument(
                f"input {name}: {nbytes} bytes is over this server's limit of {self.max_bytes} per request "
                "(--max_request_bytes); send smaller or fewer tensors"
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
