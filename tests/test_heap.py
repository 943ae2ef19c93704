"""guard.heap: both servers freeze their start-up heap and make young collections rarer; a refused request's
memory is given back (trim_soon)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from devtools.procs import REPO_ROOT
from devtools.waiting import wait_until
from guard import heap


def test_the_heap_is_frozen_and_young_collections_are_rarer() -> None:
    code = (
        "import gc; from guard.heap import GC_YOUNG_THRESHOLD, freeze_heap; before = gc.get_threshold();"
        " freeze_heap(); print(before[0], gc.get_threshold()[0], gc.get_threshold()[1:] == before[1:],"
        " gc.get_freeze_count() > 0, GC_YOUNG_THRESHOLD)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    assert out == ["700", out[4], "True", "True", out[4]] and int(out[4]) > 700


def test_trim_soon_is_debounced_and_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused requests ask for a trim; however many ask at once, one collection + malloc_trim runs."""
    calls: list[int] = []
    monkeypatch.setattr(heap, "_malloc_trim", lambda pad: calls.append(pad) or 1)
    monkeypatch.setattr(heap, "TRIM_DELAY_SECONDS", 0.01)
    monkeypatch.setattr(heap, "_trimmed_at", 0.0)
    for _ in range(50):
        heap.trim_soon()
    wait_until(lambda: calls == [0], "one trim")
    wait_until(lambda: not heap._trim_pending, "the trim to finish")
    assert calls == [0]
