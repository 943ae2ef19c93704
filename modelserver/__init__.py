"""A TensorFlow-Serving-compatible model server: source -> loader -> manager lifecycle, one data plane, gRPC
and REST adapters. Run it with ``python -m modelserver`` and tensorflow_model_server's flags."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
