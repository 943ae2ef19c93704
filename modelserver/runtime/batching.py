"""Dynamic batching (``--enable_batching``): concurrent calls to the same model version and signature are
merged along dimension 0 into one TensorFlow call and the outputs split back, as TF Serving's shared batch
scheduler does.

Contract: ``Batcher.run(servable, signature, inputs, output_filter)`` behaves exactly like
``servable.run(...)`` (same outputs for the same rows). Scheduling, per queue (model, version, signature,
output filter, non-batch input shapes):
- a batch is cut when it holds ``max_batch_size`` rows, or ``batch_timeout_micros`` after its first task,
  and while every batch thread is busy the waiting batch keeps growing (timeout 0: as soon as a thread
  frees);
- tasks are never split across batches; a task larger than ``max_batch_size`` is INVALID_ARGUMENT, unless
  ``enable_large_batch_splitting`` cuts it into chunks of ``max_execution_batch_size`` rows;
- with ``allowed_batch_sizes`` a batch is padded (copies of its first row) up to the next allowed size;
- more than ``max_enqueued_batches`` batches' worth of waiting rows -> UNAVAILABLE, like TF Serving.
- a task whose call was cancelled, or whose deadline (``limits.DEADLINE``) passed while it waited, is not
  run: its rows are left out of the batch (DEADLINE_EXCEEDED for the latter).
``num_batch_threads`` threads (shared by all queues) run the batches.

One departure, on by default (``dispatch_when_idle``; ``--batching_dispatch_when_idle=false`` restores TF
Serving's exact scheduling): when no batch is running on any batch thread, the waiting batch is cut at once
instead of ``batch_timeout_micros`` after its first task. A lone request then pays no timeout; under load
some batch is always running, so batches still form (requests that arrive together share the batch). A lone
client (the last batch held one task, nothing running or waiting) skips the queue altogether: its request is
the batch, run from its own task, which saves the dispatcher's and the batch task's hops on the event loop.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import time
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field

import numpy as np
from prometheus_client import Gauge

from modelserver.errors import DeadlineExceeded, Internal, InvalidArgument, ServingError, Unavailable
from modelserver.metrics import METRICS, Metrics
from modelserver.runtime.batching_config import BatchingConfig
from modelserver.runtime.limits import DEADLINE, check_deadline
from modelserver.runtime.servable import Servable, serving_error_from_tf

__all__ = ["Batcher"]

# A traced request's session runs (modelserver.observe.tracing): a list only while a traced request runs; each
# run appends (queued, batch size or 0 when not batched, run start, run end), wall-clock ns.
RunTrace = list[tuple[int, int, int, int]]
RUN_TRACE: ContextVar[RunTrace | None] = ContextVar("RUN_TRACE", default=None)

QueueKey = tuple[str, int, str, tuple[str, ...], tuple[tuple[str, tuple[int, ...], str], ...]]


@dataclass
class _Task:
    inputs: Mapping[str, np.ndarray]
    rows: int
    future: asyncio.Future[dict[str, np.ndarray]]
    deadline: float | None = None  # the caller's (limits.DEADLINE); past it, the task is dropped unrun
    trace: RunTrace | None = None  # the caller's RUN_TRACE
    queued: int = 0  # when it was queued (time.time_ns), traced tasks only


@dataclass
class _Queue:
    servable: Servable
    signature: str
    output_filter: tuple[str, ...]
    tasks: deque[_Task] = field(default_factory=deque)
    rows: int = 0
    first_at: float = 0.0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dispatcher: asyncio.Task[None] | None = None
    depth: Gauge | None = None  # its queue-depth series, found once (labels() locks on every call)


class Batcher:
    def __init__(
        self, config: BatchingConfig, metrics: Metrics = METRICS, *, dispatch_when_idle: bool = True
    ) -> None:
        self.config = config
        self._metrics = metrics
        self._dispatch_when_idle = dispatch_when_idle
        threads = config.num_batch_threads or os.cpu_count() or 1
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="batch")
        self._threads = asyncio.Semaphore(threads)
        self._running = 0  # batches cut and not yet finished, over all queues
        self._queues: dict[QueueKey, _Queue] = {}
        self._batches: set[asyncio.Task[None]] = set()  # running batches (the loop keeps weak refs only)
        self._lone = dispatch_when_idle  # the last batch held one task (dispatch_when_idle only)

    def params(self, servable: Servable) -> BatchingConfig:
        """The version's own batching parameters (--enable_per_model_batching_parameters: its
        batching_params.pbtxt) or the server's; the batch threads are always the server's."""
        return servable.batching or self.config

    def queued_rows(self) -> int:
        """Rows waiting in every queue (not yet cut into a batch)."""
        return sum(queue.rows for queue in self._queues.values())

    @staticmethod
    def batchable(inputs: Mapping[str, np.ndarray]) -> int | None:
        """Rows of a request if every input shares a dim 0, else None (run unbatched)."""
        rows = {a.shape[0] if a.ndim else -1 for a in inputs.values()}
        if len(rows) != 1 or -1 in rows:
            return None
        return rows.pop()

    async def run(
        self,
        servable: Servable,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: Sequence[str] = (),
    ) -> dict[str, np.ndarray]:
        rows = self.batchable(inputs)
        loop = asyncio.get_running_loop()
        if rows is None or rows == 0:
            return await loop.run_in_executor(self._executor, servable.run, signature, inputs, output_filter)
        params = self.params(servable)
        if rows > params.max_batch_size:
            if not params.enable_large_batch_splitting:
                raise InvalidArgument(
                    f"Task size {rows} is larger than maximum input batch size {params.max_batch_size}"
                )
            return await self._run_split(servable, signature, inputs, output_filter, rows)
        key = _queue_key(servable, signature, inputs, output_filter)
        queue = self._queues.get(key)
        task = _Task(inputs, rows, loop.create_future(), DEADLINE.get(), RUN_TRACE.get())
        if task.trace is not None:
            task.queued = time.time_ns()
        if self._lone and self._running == 0 and (queue is None or not queue.tasks):
            # Idle, nothing waiting, and the last batch was one task too (a lone client): this request is
            # the batch, run from the caller's own task without the dispatcher and batch-task hops. Under
            # load the last batch held several tasks, so arrivals still go through the queue and coalesce.
            await self._claim_thread()  # free: nothing is running
            await self._execute(_Queue(servable, signature, tuple(output_filter)), [task])
            return task.future.result()
        if queue is None or queue.servable is not servable:  # none yet, or an unloaded version's
            queue = self._queues[key] = _Queue(servable, signature, tuple(output_filter))
        self._enqueue(key, queue, task)
        return await task.future

    def _enqueue(self, key: QueueKey, queue: _Queue, task: _Task) -> None:
        """Add a task to its queue and make sure a dispatcher cuts it; UNAVAILABLE when the queue is full."""
        params = self.params(queue.servable)
        limit = params.max_enqueued_batches * params.max_batch_size
        if queue.rows + task.rows > limit:
            raise Unavailable("The batch scheduling queue to which this task was submitted is full")
        if not queue.tasks:
            queue.first_at = time.monotonic()
        queue.tasks.append(task)
        queue.rows += task.rows
        self._gauge(queue).set(queue.rows)
        if queue.rows >= params.max_batch_size:
            queue.wake.set()
        if queue.dispatcher is None or queue.dispatcher.done():
            queue.dispatcher = asyncio.create_task(self._dispatch(key, queue))

    async def _run_split(
        self,
        servable: Servable,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: Sequence[str],
        rows: int,
    ) -> dict[str, np.ndarray]:
        """enable_large_batch_splitting: run an oversize task as chunks of max_execution_batch_size rows."""
        params = self.params(servable)
        chunk = min(params.max_execution_batch_size or params.max_batch_size, params.max_batch_size)
        parts = await asyncio.gather(
            *(
                self.run(
                    servable,
                    signature,
                    {n: a[start : start + chunk] for n, a in inputs.items()},
                    output_filter,
                )
                for start in range(0, rows, chunk)
            )
        )
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

    def _gauge(self, queue: _Queue) -> Gauge:
        if queue.depth is None:
            queue.depth = self._metrics.queue_depth.labels(queue.servable.name, queue.signature)
        return queue.depth

    async def _dispatch(self, key: QueueKey, queue: _Queue) -> None:
        """Cut batches from one queue until it is empty."""
        params = self.params(queue.servable)
        while queue.tasks:
            wait = queue.first_at + params.batch_timeout_micros / 1e6 - time.monotonic()
            idle = self._dispatch_when_idle and self._running == 0
            if wait > 0 and queue.rows < params.max_batch_size and not idle:
                queue.wake.clear()
                with contextlib.suppress(TimeoutError):  # the batch timeout: cut what is there
                    await asyncio.wait_for(queue.wake.wait(), wait)
            await self._claim_thread()  # the batch keeps growing while every thread is busy
            running = asyncio.create_task(self._execute(queue, self._cut(queue)))
            self._batches.add(running)
            running.add_done_callback(self._batches.discard)
        if self._queues.get(key) is queue and not queue.tasks:
            del self._queues[key]

    def _cut(self, queue: _Queue) -> list[_Task]:
        """The waiting tasks that fit in one batch, oldest first (a task is never split)."""
        batch: list[_Task] = []
        size = 0
        limit = self.params(queue.servable).max_batch_size
        while queue.tasks and size + queue.tasks[0].rows <= limit:
            task = queue.tasks.popleft()
            batch.append(task)
            size += task.rows
        queue.rows -= size
        queue.first_at = time.monotonic()
        self._gauge(queue).set(queue.rows)
        return batch

    async def _claim_thread(self) -> None:
        """Wait for a free batch thread and count a batch as running; ``_execute`` gives both back."""
        await self._threads.acquire()
        self._running += 1

    def _padded_size(self, size: int, params: BatchingConfig) -> int:
        sizes = params.allowed_batch_sizes
        if not sizes:
            return size
        return sizes[bisect.bisect_left(sizes, size)]

    async def _execute(self, queue: _Queue, batch: list[_Task]) -> None:
        """Run one batch on the thread ``_claim_thread`` claimed, settle every task's future, give the thread
        back."""
        try:
            live = _live(batch)
            if live:
                self._lone = self._dispatch_when_idle and len(live) == 1
                await self._run_batch(queue, live)
        except Exception as exc:
            error = exc if isinstance(exc, ServingError) else serving_error_from_tf(exc)
            for task in batch:
                if not task.future.done():
                    task.future.set_exception(error)
        finally:
            self._running -= 1
            self._threads.release()
            if self._dispatch_when_idle and self._running == 0:
                for waiting in self._queues.values():  # idle now: cut what is waiting
                    waiting.wake.set()

    async def _run_batch(self, queue: _Queue, live: list[_Task]) -> None:
        """Merge the tasks' rows (padded to an allowed size), run them as one call, hand each its rows."""
        size = sum(t.rows for t in live)
        padded = self._padded_size(size, self.params(queue.servable))
        labels = (queue.servable.name, queue.signature)
        self._metrics.batch_size.labels(*labels).observe(padded)
        if padded > size:
            self._metrics.batch_padding.labels(*labels).inc(padded - size)
        loop = asyncio.get_running_loop()
        began = time.time_ns()
        outputs = await loop.run_in_executor(
            self._executor, _run_merged, queue, [t.inputs for t in live], size, padded
        )
        ended = time.time_ns()
        _check_batched(outputs, padded, queue.signature)
        start = 0
        for task in live:
            if task.trace is not None:
                task.trace.append((task.queued, padded, began, ended))
            end = start + task.rows
            if not task.future.done():
                task.future.set_result({n: v[start:end] for n, v in outputs.items()})
            start = end

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _queue_key(
    servable: Servable, signature: str, inputs: Mapping[str, np.ndarray], output_filter: Sequence[str]
) -> QueueKey:
    """Calls that may share a batch: one version, signature and output filter, the same non-batch shapes."""
    return (
        servable.name,
        servable.version,
        signature,
        tuple(output_filter),
        tuple(sorted((n, a.shape[1:], a.dtype.str) for n, a in inputs.items())),
    )


def _live(batch: list[_Task]) -> list[_Task]:
    """The tasks still waited for: a cancelled call's are done, a passed deadline's fail DEADLINE_EXCEEDED."""
    for task in batch:
        if not task.future.done() and task.deadline is not None:
            try:
                check_deadline(task.deadline)
            except DeadlineExceeded as exc:
                task.future.set_exception(exc)
    return [t for t in batch if not t.future.done()]


def _run_merged(
    queue: _Queue, inputs: list[Mapping[str, np.ndarray]], size: int, padded: int
) -> dict[str, np.ndarray]:
    """One batch's call, in a batch thread: the merge's copies too stay off the event loop."""
    return queue.servable.run(queue.signature, _merged(inputs, size, padded), queue.output_filter)


def _merged(inputs: list[Mapping[str, np.ndarray]], size: int, padded: int) -> dict[str, np.ndarray]:
    """Every input's rows of all tasks along dimension 0, padded with copies of the first row."""
    merged: dict[str, np.ndarray] = {}
    for name in inputs[0]:
        parts = [i[name] for i in inputs]
        if padded > size:
            parts.append(np.repeat(parts[0][:1], padded - size, axis=0))
        merged[name] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
    return merged


def _check_batched(outputs: Mapping[str, np.ndarray], padded: int, signature: str) -> None:
    for name, value in outputs.items():
        if value.ndim == 0 or value.shape[0] != padded:
            raise Internal(
                f"Batched output tensor {name}'s 0th dimension does not equal the sum of the 0th "
                f"dimension sizes of the input tensors (signature {signature} cannot be batched)"
            )
