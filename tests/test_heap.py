"""guard.heap: both servers freeze their start-up heap and make young collections rarer."""

from __future__ import annotations

import subprocess
import sys

from devtools.procs import REPO_ROOT


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
