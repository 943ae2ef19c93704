"""Servable states, with TF Serving's names and numbers (``apis/get_model_status.proto``,
``core/servable_state.h``). A version moves START -> LOADING -> AVAILABLE -> UNLOADING -> END; a failed load
goes LOADING -> END with an error, which status reports."""

from __future__ import annotations

import enum

__all__ = ["ManagerState"]


class ManagerState(enum.IntEnum):
    UNKNOWN = 0
    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50
