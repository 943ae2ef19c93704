"""The answers cross-check: every server that takes the REST body is asked for the same real Fashion-MNIST
image, and its probabilities are compared with our modelserver's. A peer that answers something else is not
serving the same model the same way, and its figures would compare nothing."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

__all__ = ["TOLERANCE", "compare", "fetch_answer"]

TOLERANCE = 1e-4  # float32 inference on the same graph; batching may change summation order, not more


def fetch_answer(url: str, body: Path, timeout_s: float = 30.0) -> list[float]:
    """The first row of the predictions ``url`` answers to the REST body in ``body`` (loopback only).
    Raises ValueError saying what was wrong with the reply."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"refusing to ask anything but 127.0.0.1: {url}")
    request = urllib.request.Request(
        url, data=body.read_bytes(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:  # loopback only (checked above)
            data = json.loads(reply.read())
    except urllib.error.HTTPError as err:
        raise ValueError(f"HTTP {err.code}: {err.read()[:200]!r}") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"no JSON answer: {exc}") from None
    try:  # TF Serving's {"predictions": rows}; BentoML answers the rows alone
        rows = data["predictions"] if isinstance(data, dict) else data
        row = np.asarray(rows, dtype=np.float64)[0]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(f"no predictions in the answer ({exc}): {str(data)[:200]}") from None
    return [float(x) for x in np.ravel(row)]


def compare(reference: list[float], answer: list[float]) -> str:
    """ "ok" when ``answer`` matches ``reference`` (same class, every probability within TOLERANCE), else
    what differs."""
    ref, got = np.asarray(reference), np.asarray(answer)
    if ref.shape != got.shape:
        return f"{got.size} values where ours has {ref.size}"
    if int(ref.argmax()) != int(got.argmax()):
        return f"class {int(got.argmax())} where ours says {int(ref.argmax())}"
    worst = float(np.abs(ref - got).max())
    return "ok" if worst <= TOLERANCE else f"probabilities differ from ours by up to {worst:.2g}"
