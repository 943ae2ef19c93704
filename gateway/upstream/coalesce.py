"""``Coalescer``: concurrent Predicts for one model version that reach the gateway's client in the same event
loop turn go to the model server as ONE Predict, and each caller gets its own rows of the reply.

Contract:
- ``run(key, inputs, send)``: ``inputs`` maps input names to tensors whose first dimension is the caller's
  row count (the same for every input); ``key`` holds everything else the call depends on (model, version or
  label, signature, output filter, deadline, address) and callers with equal keys and equal input layouts
  (names, dtypes, trailing dimensions) share a call. ``send(inputs)`` makes one Predict.
- Opportunistic: a batch leaves on the loop's next turn. A lone request waits for nothing but that turn, and
  its own tensors are sent unchanged. Only callers already running when the batch leaves join it; the model
  server's own batching (TF Serving's ``--enable_batching``) still works across connections as before.
- Bounded: at most ``max_rows`` rows per merged call (the gateway's ``max_files``, so a merged Predict is never
  larger than one multi-file upload sends anyway).
- Splitting: every output must hold the merged row count in its first dimension and spell out its values
  (``tensor_content`` or the typed field, not TF's one-value compact form); otherwise each caller's request is
  sent again on its own, so an answer is never split by guesswork. So is a merged call refused for what
  ``alone`` says a single request may not hit (the client: INVALID_ARGUMENT, e.g. a model server whose
  ``max_batch_size`` is below the merged rows): each caller then gets its own answer or error. Any other
  error of the merged call is every caller's (they share model version, signature, layout and deadline).
- Use it only for signatures whose inputs all have an unknown first dimension (``batchable``): a fixed batch
  size would make a merged call fail where the single ones succeed. Rows must not depend on each other, the
  same assumption TF Serving's batching makes.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field

from gateway.upstream.tensors import shape_of, shape_proto, value_field
from tfs_protos.tensorflow.core.framework import tensor_pb2
from tfs_protos.tensorflow_serving.apis import predict_pb2

__all__ = ["Coalescer", "batchable"]

Inputs = Mapping[str, tensor_pb2.TensorProto]
Send = Callable[[Inputs], Awaitable[predict_pb2.PredictResponse]]


def batchable(shapes: Mapping[str, list[int] | None]) -> bool:
    """True when every input has a known rank >= 1 and an unknown first dimension (-1)."""
    return bool(shapes) and all(shape is not None and shape and shape[0] == -1 for shape in shapes.values())


def _layout(inputs: Inputs) -> tuple[int, Hashable] | None:
    """(rows, what must match to merge), or None when these inputs cannot be merged."""
    rows = None
    layout = []
    for name in sorted(inputs):
        tensor = inputs[name]
        dims, repeated = shape_of(tensor), value_field(tensor.dtype)
        if not dims or dims[0] < 1 or (rows is not None and dims[0] != rows) or repeated is None:
            return None
        rows = dims[0]
        packed = bool(tensor.tensor_content)
        if not packed and len(getattr(tensor, repeated)) != math.prod(dims):
            return None
        layout.append((name, tensor.dtype, tuple(dims[1:]), packed))
    return (rows, tuple(layout)) if rows is not None else None


def _merge(parts: list[Inputs], rows: int) -> dict[str, tensor_pb2.TensorProto]:
    merged = {}
    for name, first in parts[0].items():
        tensor = tensor_pb2.TensorProto(
            dtype=first.dtype, tensor_shape=shape_proto([rows, *shape_of(first)[1:]])
        )
        if first.tensor_content:
            tensor.tensor_content = b"".join(part[name].tensor_content for part in parts)
        else:
            repeated = value_field(first.dtype)  # known: _layout checked every input
            assert repeated is not None
            values = getattr(tensor, repeated)
            for part in parts:
                values.extend(getattr(part[name], repeated))
        merged[name] = tensor
    return merged


def _split(reply: predict_pb2.PredictResponse, counts: list[int]) -> list[predict_pb2.PredictResponse] | None:
    """Each caller's rows of every output, or None when some output cannot be split by rows."""
    total = sum(counts)
    replies = [predict_pb2.PredictResponse(model_spec=reply.model_spec) for _ in counts]
    for name, tensor in reply.outputs.items():
        dims, repeated = shape_of(tensor), value_field(tensor.dtype)
        if not dims or dims[0] != total or repeated is None:
            return None
        per_row = math.prod(dims[1:])
        if tensor.tensor_content:
            data, unit = tensor.tensor_content, len(tensor.tensor_content) // total
            if unit * total != len(data):
                return None
        else:
            data, unit = getattr(tensor, repeated), per_row
            if len(data) != per_row * total:
                return None
        start = 0
        for out, rows in zip(replies, counts, strict=True):
            part = out.outputs[name]
            part.dtype = tensor.dtype
            part.tensor_shape.CopyFrom(shape_proto([rows, *dims[1:]]))
            chunk = data[start * unit : (start + rows) * unit]
            if tensor.tensor_content:
                part.tensor_content = chunk
            else:
                getattr(part, repeated).extend(chunk)
            start += rows
    return replies


@dataclass
class _Batch:
    send: Send
    parts: list[Inputs] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    waiters: list[asyncio.Future[predict_pb2.PredictResponse]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(self.counts)


class Coalescer:
    def __init__(
        self,
        max_rows: int,
        on_batch: Callable[[int], None] | None = None,
        alone: Callable[[BaseException], bool] = lambda exc: False,
    ) -> None:
        self.max_rows = max_rows
        self._alone = alone  # errors of a merged call that each caller's own request may not meet
        self._on_batch = on_batch  # called with the callers per upstream call (a metric)
        self._open: dict[Hashable, _Batch] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, key: Hashable, inputs: Inputs, send: Send) -> predict_pb2.PredictResponse:
        layout = _layout(inputs)
        if layout is None or layout[0] > self.max_rows:
            return await send(inputs)
        rows, shape = layout
        loop = asyncio.get_running_loop()
        batch_key = (key, shape)
        batch = self._open.get(batch_key)
        if batch is None or batch.rows + rows > self.max_rows:
            batch = self._open[batch_key] = _Batch(send)
            task = loop.create_task(self._leave(batch_key, batch))  # runs on the loop's next turn
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        waiter: asyncio.Future[predict_pb2.PredictResponse] = loop.create_future()
        batch.parts.append(inputs)
        batch.counts.append(rows)
        batch.waiters.append(waiter)
        return await waiter

    async def _leave(self, key: Hashable, batch: _Batch) -> None:
        if self._open.get(key) is batch:
            del self._open[key]
        if self._on_batch is not None:
            self._on_batch(len(batch.parts))
        try:
            if len(batch.parts) == 1:
                self._settle(batch.waiters[0], await batch.send(batch.parts[0]))
                return
            try:
                reply = await batch.send(_merge(batch.parts, batch.rows))
                replies = _split(reply, batch.counts)
            except Exception as exc:
                if not self._alone(exc):
                    raise
                replies = None
            if replies is None:  # refused or not split by rows: every caller asks on its own
                answers = await asyncio.gather(*(batch.send(p) for p in batch.parts), return_exceptions=True)
                for waiter, answer in zip(batch.waiters, answers, strict=True):
                    self._settle(waiter, answer)
                return
            for waiter, own in zip(batch.waiters, replies, strict=True):
                self._settle(waiter, own)
        except BaseException as exc:  # the merged call failed: every caller's error
            for waiter in batch.waiters:
                self._settle(waiter, exc)
            if not isinstance(exc, Exception):  # cancelled (shutdown): the waiters are told, then it goes on
                raise

    @staticmethod
    def _settle(
        waiter: asyncio.Future[predict_pb2.PredictResponse],
        answer: predict_pb2.PredictResponse | BaseException,
    ) -> None:
        if waiter.done():  # the caller went away (cancelled)
            return
        if isinstance(answer, BaseException):
            waiter.set_exception(answer)
        else:
            waiter.set_result(answer)
