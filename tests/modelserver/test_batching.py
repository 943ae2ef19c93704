"""modelserver.runtime.batching: merged calls give the same answers as unbatched ones; padding; queue limits."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from devtools.waiting import async_wait_until
from modelserver.errors import DeadlineExceeded, InvalidArgument, Unavailable
from modelserver.metrics import Metrics
from modelserver.runtime.batching import Batcher
from modelserver.runtime.batching_config import BatchingConfig
from modelserver.runtime.limits import DEADLINE
from modelserver.runtime.loader import Loader
from modelserver.runtime.servable import Servable
from modelserver.runtime.warmup import WarmupOptions


@pytest.fixture(scope="module")
def servables(tiny: dict[str, Path]) -> dict[str, Servable]:
    return {
        name: Loader(name, 1, tiny[name], WarmupOptions()).load()
        for name in ("half_plus_two", "multi_input", "strings")
    }


def _batch_sizes(metrics: Metrics, model: str, signature: str = "serving_default") -> tuple[float, float]:
    labels = {"model": model, "signature": signature}
    count = metrics.registry.get_sample_value("modelserver_batch_size_count", labels) or 0.0
    total = metrics.registry.get_sample_value("modelserver_batch_size_sum", labels) or 0.0
    return count, total


def test_concurrent_requests_are_merged_and_results_identical(servables: dict[str, Servable]) -> None:
    metrics = Metrics()
    rng = np.random.default_rng(0)
    requests = [
        {"a": rng.random((n, 2), dtype=np.float32), "b": rng.random(n, dtype=np.float32)}
        for n in (1, 3, 2, 1, 4, 1, 2, 2)
    ]
    servable = servables["multi_input"]
    expected = [servable.run("serving_default", r) for r in requests]

    async def main() -> list[dict[str, np.ndarray]]:
        batcher = Batcher(BatchingConfig(max_batch_size=32, batch_timeout_micros=200_000), metrics)
        try:
            return await asyncio.gather(*(batcher.run(servable, "serving_default", r) for r in requests))
        finally:
            batcher.shutdown()

    results = asyncio.run(main())
    for got, want in zip(results, expected, strict=True):
        assert set(got) == set(want)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])
    count, total = _batch_sizes(metrics, "multi_input")
    assert total == sum(len(r["b"]) for r in requests)
    assert count < len(requests)  # merged into fewer calls


def test_padding_to_allowed_batch_sizes_is_invisible(servables: dict[str, Servable]) -> None:
    metrics = Metrics()
    servable = servables["half_plus_two"]
    config = BatchingConfig(max_batch_size=8, batch_timeout_micros=100_000, allowed_batch_sizes=(4, 8))

    async def main() -> list[dict[str, np.ndarray]]:
        batcher = Batcher(config, metrics)
        try:
            inputs = [{"x": np.array([1.0, 2.0, 3.0], np.float32)}, {"x": np.array([10.0], np.float32)}]
            first = await asyncio.gather(*(batcher.run(servable, "", i) for i in inputs))
            alone = await batcher.run(servable, "", {"x": np.array([4.0, 5.0, 6.0, 7.0, 8.0], np.float32)})
            return [*first, alone]
        finally:
            batcher.shutdown()

    results = asyncio.run(main())
    np.testing.assert_array_equal(results[0]["y"], [2.5, 3.0, 3.5])
    np.testing.assert_array_equal(results[1]["y"], [7.0])
    np.testing.assert_array_equal(results[2]["y"], [4.0, 4.5, 5.0, 5.5, 6.0])
    _, total = _batch_sizes(metrics, "half_plus_two", "")
    assert total in (4 + 8, 4 + 4 + 8)  # every executed batch has an allowed size (3+1 -> 4, 5 -> 8)
    padding = metrics.registry.get_sample_value(
        "modelserver_batch_padding_rows_total", {"model": "half_plus_two", "signature": ""}
    )
    assert padding == total - 9


def test_strings_are_batched_too(servables: dict[str, Servable]) -> None:
    servable = servables["strings"]

    async def main() -> list[dict[str, np.ndarray]]:
        batcher = Batcher(BatchingConfig(max_batch_size=16, batch_timeout_micros=50_000), Metrics())
        try:
            words = [np.array([b"ab"], object), np.array([b"xyz", b"q"], object)]
            return await asyncio.gather(*(batcher.run(servable, "", {"text": w}) for w in words))
        finally:
            batcher.shutdown()

    first, second = asyncio.run(main())
    assert first["upper_bytes"].tolist() == [b"AB"]
    assert second["length"].tolist() == [3, 1]


def test_task_larger_than_max_batch_size_and_full_queue(servables: dict[str, Servable]) -> None:
    servable = servables["half_plus_two"]
    config = BatchingConfig(max_batch_size=4, batch_timeout_micros=5_000_000, max_enqueued_batches=1)

    async def main() -> None:
        batcher = Batcher(config, Metrics(), dispatch_when_idle=False)  # TF Serving's exact scheduling
        try:
            with pytest.raises(InvalidArgument, match="Task size 5 is larger than maximum input batch"):
                await batcher.run(servable, "", {"x": np.zeros(5, np.float32)})
            waiting = asyncio.create_task(batcher.run(servable, "", {"x": np.zeros(3, np.float32)}))
            await async_wait_until(lambda: batcher.queued_rows() == 3, "the first task to be queued")
            with pytest.raises(Unavailable, match=r"queue .* is full"):
                await batcher.run(servable, "", {"x": np.zeros(2, np.float32)})
            last = await batcher.run(servable, "", {"x": np.ones(1, np.float32)})  # fills the batch: runs now
            np.testing.assert_array_equal(last["y"], [2.5])
            np.testing.assert_array_equal((await waiting)["y"], [2.0, 2.0, 2.0])
        finally:
            batcher.shutdown()

    asyncio.run(main())


def test_large_batch_splitting(servables: dict[str, Servable]) -> None:
    servable = servables["half_plus_two"]
    config = BatchingConfig(
        max_batch_size=4,
        max_enqueued_batches=100,
        enable_large_batch_splitting=True,
        max_execution_batch_size=3,
    )

    async def main() -> dict[str, np.ndarray]:
        batcher = Batcher(config, Metrics())
        try:
            return await batcher.run(servable, "", {"x": np.arange(10, dtype=np.float32)})
        finally:
            batcher.shutdown()

    np.testing.assert_array_equal(asyncio.run(main())["y"], np.arange(10, dtype=np.float32) * 0.5 + 2)


def test_a_task_whose_deadline_passes_in_the_queue_is_not_run(servables: dict[str, Servable]) -> None:
    metrics = Metrics()
    servable = servables["half_plus_two"]
    # The batch is cut 200 ms after its first task; the late task's deadline is 10 ms after it queued.
    config = BatchingConfig(max_batch_size=8, batch_timeout_micros=200_000)

    async def main() -> list[object]:
        batcher = Batcher(config, metrics, dispatch_when_idle=False)  # the batch waits its timeout

        async def late() -> dict[str, np.ndarray]:
            DEADLINE.set(time.monotonic() + 0.01)
            return await batcher.run(servable, "serving_default", {"x": np.array([5.0, 6.0], np.float32)})

        try:
            on_time = batcher.run(servable, "serving_default", {"x": np.array([1.0], np.float32)})
            return await asyncio.gather(on_time, late(), return_exceptions=True)
        finally:
            batcher.shutdown()

    served, dropped = asyncio.run(main())
    assert isinstance(dropped, DeadlineExceeded)
    assert isinstance(served, dict)
    np.testing.assert_allclose(served["y"], [2.5])
    assert _batch_sizes(metrics, "half_plus_two") == (1.0, 1.0)  # one batch, one row: the late rows never ran


@pytest.mark.parametrize("dispatch_when_idle", [True, False])
def test_a_lone_request_waits_for_company_only_in_tf_serving_mode(
    servables: dict[str, Servable], dispatch_when_idle: bool
) -> None:
    servable = servables["half_plus_two"]
    config = BatchingConfig(max_batch_size=8, batch_timeout_micros=600_000_000)  # ten minutes

    async def main() -> bool:
        batcher = Batcher(config, Metrics(), dispatch_when_idle=dispatch_when_idle)
        try:
            lone = asyncio.create_task(batcher.run(servable, "", {"x": np.ones(1, np.float32)}))
            # Idle dispatch runs the lone request at once (30 s: a hang guard only); TF Serving's scheduling
            # holds it for the ten-minute timeout, so it is still waiting a second later.
            done, _ = await asyncio.wait({lone}, timeout=30 if dispatch_when_idle else 1)
            if done:
                np.testing.assert_array_equal(lone.result()["y"], [2.5])
            else:
                lone.cancel()
            return bool(done)
        finally:
            batcher.shutdown()

    assert asyncio.run(main()) is dispatch_when_idle


def test_a_lone_client_skips_the_queue_but_arrivals_under_load_still_coalesce(
    servables: dict[str, Servable],
) -> None:
    servable = servables["half_plus_two"]
    metrics = Metrics()
    config = BatchingConfig(max_batch_size=4, batch_timeout_micros=600_000_000)  # only idle dispatch cuts

    async def main() -> list[tuple[float, float]]:
        batcher = Batcher(config, metrics)
        one = {"x": np.ones(1, np.float32)}
        seen = []
        try:
            await batcher.run(servable, "", one)  # a lone request: one batch of one task
            seen.append(_batch_sizes(metrics, "half_plus_two", ""))
            # After a lone batch the first of four arrivals runs at once by itself; the three others
            # queue behind it and are cut together when it ends.
            await asyncio.gather(*(batcher.run(servable, "", one) for _ in range(4)))
            seen.append(_batch_sizes(metrics, "half_plus_two", ""))
            # After a batch of several tasks nobody skips the queue: four arrivals form one batch.
            results = await asyncio.gather(*(batcher.run(servable, "", one) for _ in range(4)))
            seen.append(_batch_sizes(metrics, "half_plus_two", ""))
            for result in results:
                np.testing.assert_array_equal(result["y"], [2.5])
            return seen
        finally:
            batcher.shutdown()

    assert asyncio.run(main()) == [(1.0, 1.0), (3.0, 5.0), (4.0, 9.0)]
