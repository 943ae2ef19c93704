"""Outcome: what one scenario found - its figures (numbers for the report), the cases it tried, and every
failure (an expectation the stack did not meet). A scenario passes when it records no failure."""

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
    seconds: float = 0.0
    _started: float = field(default_factory=time.monotonic, repr=False)

    @property
    def passed(self) -> bool:
        return not self.failures

    def check(self, ok: bool, failure: str) -> bool:
        """Record ``failure`` unless ``ok``; returns ``ok``."""
        if not ok:
            self.failures.append(failure)
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
            "notes": self.notes,
            "cases": self.cases,
        }
