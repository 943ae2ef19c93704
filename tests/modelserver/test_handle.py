"""modelserver.lifecycle.handle: ref-counted handles; a retired version is released only after its last handle."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from modelserver.errors import ServableNotFound
from modelserver.lifecycle.handle import SharedServable
from modelserver.runtime.servable import Servable


def test_retire_waits_for_the_last_handle() -> None:
    async def main() -> None:
        shared = SharedServable(Servable("m", 1, Path("/m/1"), {}, {}))
        first, second = shared.acquire(), shared.acquire()
        assert shared.refs == 2
        shared.retire()
        with pytest.raises(ServableNotFound):
            shared.acquire()
        waiter = asyncio.create_task(shared.wait_released())
        first.release()
        first.release()  # releasing twice counts once
        for _ in range(3):  # let every ready callback run: a wrongly set event would wake the waiter now
            await asyncio.sleep(0)
        assert not waiter.done()
        with second:
            pass
        await asyncio.wait_for(waiter, 1)
        assert shared.refs == 0

    asyncio.run(main())


def test_retire_without_handles_releases_at_once() -> None:
    async def main() -> None:
        shared = SharedServable(Servable("m", 1, Path("/m/1"), {}, {}))
        shared.retire()
        await asyncio.wait_for(shared.wait_released(), 1)

    asyncio.run(main())
