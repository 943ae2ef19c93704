"""bench.profiling: py-spy's collapsed stacks summarised as own and inclusive shares."""

from __future__ import annotations

from pathlib import Path

from bench.profiling import profile, summarise

RAW = """\
<module> (modelserver/__main__.py:5);run (asyncio/runners.py:118);predict (modelserver/dataplane.py:80);\
_call (modelserver/inference.py:40) 60
<module> (modelserver/__main__.py:5);run (asyncio/runners.py:118);predict (modelserver/dataplane.py:81);\
to_tensor (modelserver/tensors.py:12) 30
<module> (modelserver/__main__.py:5);select (selectors.py:468) 10
garbage line
"""


def test_summarise_own_and_inclusive_shares() -> None:
    found = summarise(RAW, "modelserver")
    assert found.samples == 100
    assert found.own[0] == ("_call (inference.py)", 0.6)
    assert ("to_tensor (tensors.py)", 0.3) in found.own
    assert found.inclusive[0] == ("predict (dataplane.py)", 0.9)  # lines of one function are merged
    assert all(not name.startswith(("<module>", "run (")) for name, _ in found.inclusive)


def test_summarise_empty_input() -> None:
    found = summarise("", "x")
    assert found.samples == 0 and found.own == [] and found.inclusive == []


def test_profile_of_a_missing_process_reports_instead_of_raising(tmp_path: Path) -> None:
    found = profile(2**22 + 12345, 1, tmp_path / "p.txt", "nobody")
    assert found.samples == 0
    assert found.error
