"""Ref-counted servable handles.

Contract: the manager wraps each AVAILABLE version in a ``SharedServable`` (TF Serving's ``SharedPtrHandle``:
the version shared by the handles of the requests on it). Request paths call
``shared.acquire()`` and use the returned ``ServableHandle`` as a context manager for the whole request; the
version it names keeps answering until the handle is released, even if another version takes over meanwhile.
``retire()`` stops new acquisitions; ``wait_released()`` resolves once the last handle is gone, and only then
may the manager unload the version. All methods are called from the event loop thread except ``release``,
which is thread safe.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import TYPE_CHECKING

from modelserver.errors import ServableNotFound

if TYPE_CHECKING:
    from modelserver.runtime.servable import Servable

__all__ = ["ServableHandle", "SharedServable"]


class SharedServable:
    def __init__(self, servable: Servable) -> None:
        self.servable = servable
        self._refs = 0
        self._retired = False
        self._lock = threading.Lock()
        self._released = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    @property
    def refs(self) -> int:
        return self._refs

    @property
    def retired(self) -> bool:
        return self._retired

    def acquire(self) -> ServableHandle:
        with self._lock:
            if self._retired:
                raise ServableNotFound(self.servable.name, self.servable.version)
            self._refs += 1
        return ServableHandle(self)

    def _release(self) -> None:
        with self._lock:
            self._refs -= 1
            done = self._retired and self._refs == 0
        if done:
            self._loop.call_soon_threadsafe(self._released.set)

    def retire(self) -> None:
        with self._lock:
            self._retired = True
            done = self._refs == 0
        if done:
            self._released.set()

    async def wait_released(self) -> None:
        await self._released.wait()


class ServableHandle:
    """One request's claim on one version; release exactly once (``with`` does it)."""

    __slots__ = ("_released", "_shared")

    def __init__(self, shared: SharedServable) -> None:
        self._shared = shared
        self._released = False

    @property
    def servable(self) -> Servable:
        return self._shared.servable

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._shared._release()

    def __enter__(self) -> ServableHandle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
