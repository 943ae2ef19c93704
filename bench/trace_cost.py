"""``python -m bench.trace_cost``: CPU per ``modelserver.Predict`` span in-process (tracing off, on and
recorded into a JSON-lines file at /dev/null with the exporter thread counted, on but the caller unsampled,
on with no caller's ``traceparent`` at the default root ratio, ``guard.tracing.DEFAULT_SAMPLE_RATIO``)."""

from __future__ import annotations

import asyncio
import os
import time

from guard.tracing import DEFAULT_SAMPLE_RATIO
from modelserver.observe import tracing

N = 20_000
SAMPLED = [("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
UNSAMPLED = [("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")]


async def _reply() -> int:
    return 1


async def _per_call(carrier: list[tuple[str, str]]) -> float:
    started = time.process_time()
    for _ in range(N):
        if tracing.TRACER is not None:
            await tracing.traced("modelserver.Predict", carrier, _reply)
        else:
            await _reply()
    return (time.process_time() - started) / N * 1e6


def main() -> None:
    os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    os.environ.pop(tracing.TRACE_FILE_ENV, None)
    tracing.configure()
    off = asyncio.run(_per_call(SAMPLED))
    os.environ[tracing.TRACE_FILE_ENV] = os.devnull
    tracing.configure()
    on = asyncio.run(_per_call(SAMPLED))
    unsampled = asyncio.run(_per_call(UNSAMPLED))
    roots = asyncio.run(_per_call([]))
    tracing.flush()
    print(
        f"CPU us per call: off {off:.2f}, on {on:.1f}, on but the caller unsampled {unsampled:.1f}, "
        f"on with no traceparent (roots sampled at {DEFAULT_SAMPLE_RATIO:g}) {roots:.1f}"
    )


if __name__ == "__main__":
    main()
