"""Train the stack's three models on real data and publish them as versioned, servable SavedModels.

``python -m export {fashion,text,housing,all}`` or :func:`export.api.export_model`.
"""

from __future__ import annotations

__all__ = ["export_model"]


def __getattr__(name: str) -> object:
    # Lazy: importing the package (e.g. for its errors) must not import TensorFlow.
    if name == "export_model":
        from export.api import export_model

        return export_model
    raise AttributeError(name)
