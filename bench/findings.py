"""What the profiles of the full run showed, per goal, and what closing the gap would take. Printed in
``latest.md`` under "Findings" only for a goal the run missed, next to that run's own py-spy summary."""

from __future__ import annotations

__all__ = ["FINDINGS"]

FINDINGS: dict[str, str] = {}
