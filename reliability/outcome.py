"""Outcome: what one scenario found - its figures (numbers for the report), the cases it tried, and every
failure (an expectation the stack did not meet). A scenario passes when it records no failure and no
duration over its bound.

Durations are judged only here, in ``make reliability``'s report: ``check_bound`` records a miss in
``over_bound``, never in ``failures``, so the fast subset in ``make test`` (which asserts ``failures``)
never depends on how busy the machine is."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Outcome"]


@dataclass
class Outcome:
    name: str
    title: str
    figures: dict[str, Any] = field(default_factory=dict)
    cases: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    over_bound: list[str] = field(default_factory=list)
    seconds: float = 0.0
    _started: float = field(default_factory=time.monotonic, repr=False)

    @property
    def passed(self) -> bool:
        return not self.failures and not self.over_bound

    def check(self, ok: bool, failure: str) -> bool:
        """Record ``failure`` unless ``ok``; returns ``ok``."""
        if not ok:
            self.failures.append(failure)
        return ok

    def check_bound(self, seconds: float | None, bound: float, what: str) -> bool:
        """Record ``what`` in ``over_bound`` unless ``seconds`` is known and within ``bound``."""
        ok = seconds is not None and seconds <= bound
        if not ok:
            shown = "never" if seconds is None else f"{seconds:.2f} s"
            self.over_bound.append(f"{what}: {shown} (bound {bound} s)")
        return ok

    def finish(self) -> Outcome:
        self.seconds = round(time.monotonic() - self._started, 1)
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        return cls(
            name=data["name"],
            title=data["title"],
            figures=data.get("figures", {}),
            cases=data.get("cases", []),
            failures=data.get("failures", []),
            notes=data.get("notes", []),
            over_bound=data.get("over_bound", []),
            seconds=data.get("seconds", 0.0),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "passed": self.passed,
            "seconds": self.seconds,
            "figures": self.figures,
            "failures": self.failures,
            "over_bound": self.over_bound,
            "notes": self.notes,
            "cases": self.cases,
        }
