"""bench.profiling: py-spy's collapsed stacks summarised as own and inclusive shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.profiling import profile, summarise

RAW = """\
<module> (modelserver/__main__.py:5);run (asyncio/runners.py:118);predict (modelserver/dataplane.py:80);\
_call (modelserver/runtime/classify_regress.py:40) 60
<module> (modelserver/__main__.py:5);run (asyncio/runners.py:118);predict (modelserver/dataplane.py:81);\
to_tensor (modelserver/runtime/tensors.py:12) 30
<module> (modelserver/__main__.py:5);select (selectors.py:468) 10
garbage line
"""


def test_summarise_own_and_inclusive_shares_of_busy_samples() -> None:
    found = summarise(RAW, "modelserver")
    assert (found.samples, found.busy) == (100, 90)  # the thread waiting in select is idle
    assert found.own[0] == ("_call (modelserver/runtime/classify_regress.py)", pytest.approx(60 / 90))
    assert ("to_tensor (modelserver/runtime/tensors.py)", pytest.approx(30 / 90)) in found.own
    assert found.inclusive[0] == ("predict (modelserver/dataplane.py)", 1.0)  # lines of a function merge
    assert all("asyncio/" not in name and "<module>" not in name for name, _ in found.inclusive)


def test_summarise_empty_input() -> None:
    found = summarise("", "x")
    assert found.samples == 0 and found.own == [] and found.inclusive == []


def test_profile_of_a_missing_process_reports_instead_of_raising(tmp_path: Path) -> None:
    found = profile(2**22 + 12345, 1, tmp_path / "p.txt", "nobody")
    assert found.samples == 0
    assert found.error
