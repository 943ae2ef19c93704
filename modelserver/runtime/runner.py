"""Runner: how a signature of a held version runs - the one place that decides it, for clients' requests and
warm-up alike (``modelserver.runtime.execution`` is handed one).

Contract: ``await runner.run(servable, signature, inputs, output_filter)`` returns what
``servable.run(signature, inputs, output_filter)`` returns, and raises what it raises.
- Requests (``Runner(threads, batcher)``, built by the data plane): the call's deadline (``limits.DEADLINE``)
  is checked first, then calls with inputs go through the batcher with ``--enable_batching``, anything else
  to one of ``threads`` worker threads; the event loop never runs TensorFlow.
- Warm-up (``Runner.inline()``): in the calling thread (the loader's, nothing else waits on it), with no
  deadline (the records come with the model, not from a client) and never batched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from modelserver.runtime.batching import RUN_TRACE, Batcher
from modelserver.runtime.limits import check_deadline
from modelserver.runtime.servable import Servable

__all__ = ["Runner"]


class Runner:
    def __init__(self, threads: int = 8, batcher: Batcher | None = None, *, inline: bool = False) -> None:
        self.batcher = batcher
        self._inline = inline
        self._executor = (
            None if inline else ThreadPoolExecutor(max_workers=threads, thread_name_prefix="infer")
        )

    @classmethod
    def inline(cls) -> Runner:
        """Warm-up's runner: in the calling thread, no deadline, no batching."""
        return cls(inline=True)

    async def run(
        self,
        servable: Servable,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: tuple[str, ...],
    ) -> dict[str, np.ndarray]:
        """Run one signature of a held version."""
        if self._executor is None:
            return servable.run(signature, inputs, output_filter)
        check_deadline()
        if self.batcher is not None and inputs:
            return await self.batcher.run(servable, signature, inputs, output_filter)
        loop = asyncio.get_running_loop()
        trace = RUN_TRACE.get()
        if trace is None:
            return await loop.run_in_executor(self._executor, servable.run, signature, inputs, output_filter)
        began = time.time_ns()
        outputs = await loop.run_in_executor(self._executor, servable.run, signature, inputs, output_filter)
        trace.append((began, 0, began, time.time_ns()))
        return outputs

    def shutdown(self) -> None:
        """Stop the worker threads (queued runs are cancelled); the batcher is its owner's to stop."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
