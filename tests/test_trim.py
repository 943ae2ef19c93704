"""guard.trim: a refused request's memory is given back - one collection and malloc_trim, debounced."""

from __future__ import annotations

import pytest

from devtools.waiting import wait_until
from guard import trim


def test_trim_soon_is_debounced_and_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """However many refused requests ask at once, one collection + malloc_trim runs."""
    calls: list[int] = []
    monkeypatch.setattr(trim, "_malloc_trim", lambda pad: calls.append(pad) or 1)
    monkeypatch.setattr(trim, "TRIM_DELAY_SECONDS", 0.01)
    monkeypatch.setattr(trim, "_trimmed_at", 0.0)
    for _ in range(50):
        trim.trim_soon()
    wait_until(lambda: calls == [0], "one trim")
    wait_until(lambda: not trim._trim_pending, "the trim to finish")
    assert calls == [0]
