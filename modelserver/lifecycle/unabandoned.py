"""``run_to_end``: lifecycle work that finishes even when whoever awaits it is cancelled.

A load runs in a thread that cannot be stopped; the harness states around it (LOADING -> READY, the RAM it
holds, the model's latest version) are set by the coroutine that awaits the thread. If a ReloadConfig call
whose client gave up (its deadline passed, the gRPC task is cancelled) cancelled that coroutine, the version
would stay LOADING for ever and no later reconcile would touch it. TF Serving finishes applying a config
after the caller leaves too. So the work runs as a task of its own; the caller waits for it (``shield``) and
may leave early, the task does not. An error nobody waits for any more is logged, never lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_to_end"]

log = logging.getLogger("modelserver.manager")

T = TypeVar("T")

_running: set[asyncio.Task[Any]] = set()  # strong references: the event loop keeps only weak ones
_abandoned: set[asyncio.Task[Any]] = set()  # their callers were cancelled: nobody reads their outcome


def _done(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if task in _abandoned:
        _abandoned.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("%s failed after its caller left: %s", task.get_name(), exc)


async def run_to_end(work: Coroutine[Any, Any, T], name: str) -> T:
    """Await ``work`` run as its own task: cancelling the caller leaves the task running to its end."""
    task = asyncio.create_task(work, name=name)
    _running.add(task)
    task.add_done_callback(_done)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            _abandoned.add(task)
        raise
