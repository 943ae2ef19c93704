"""Reload a staged SavedModel and run every signature on held-out rows before it may be published."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from export.errors import VerificationFailed
from export.servable import CLASSIFY_METHOD, CONTRACT_SIGNATURE, REGRESS_METHOD, Servable

__all__ = ["reload_and_run"]


def _check(servable: Servable, ok: bool, reason: str) -> None:
    if not ok:
        raise VerificationFailed(servable.name, reason)


def reload_and_run(servable: Servable, directory: Path) -> Any:
    """Return the reloaded SavedModel after every signature ran and gave well-formed, finite outputs."""
    try:
        loaded = tf.saved_model.load(str(directory), tags=["serve"])
    except Exception as err:  # any load failure means the export is unusable
        raise VerificationFailed(servable.name, f"the SavedModel does not reload: {err}") from err
    missing = set(servable.signatures) - set(loaded.signatures)
    _check(servable, not missing, f"signatures {sorted(missing)} missing after reload")
    rows = len(servable.examples)
    fresh = servable.signatures[servable.predict_signature](
        **{k: tf.constant(v) for k, v in servable.predict_inputs.items()}
    )
    for key in servable.signatures:
        fn = loaded.signatures[key]
        method = servable.method_names.get(key)
        if key == CONTRACT_SIGNATURE:
            text = fn()["contract"].numpy().decode("utf-8")
            _check(
                servable, json.loads(text) == servable.contract, "the contract signature returns another JSON"
            )
        elif key in servable.own_signatures:
            _check_own(servable, key, fn)
        elif method in (CLASSIFY_METHOD, REGRESS_METHOD):
            out = fn(inputs=tf.constant(servable.examples))
            want = fresh[servable.score_output].numpy()
            if method == CLASSIFY_METHOD:
                classes = out["classes"].numpy()
                _check(
                    servable,
                    classes.shape == (rows, len(servable.labels)),
                    f"classify classes {classes.shape}",
                )
                _check(
                    servable, [c.decode() for c in classes[0]] == servable.labels, "classify labels differ"
                )
                scores = out["scores"].numpy()
                if servable.logits:
                    want = tf.nn.softmax(want).numpy()
                probabilities = servable.logits or servable.score_output == "probabilities"
                _check(
                    servable,
                    not probabilities or np.allclose(scores.sum(axis=1), 1.0, atol=1e-3),
                    "classify scores do not sum to 1",
                )
                _check(
                    servable,
                    np.allclose(scores, want, atol=1e-4),
                    f"classify disagrees with {servable.predict_signature}",
                )
            else:
                values = out["outputs"].numpy()
                _check(
                    servable,
                    values.shape == (rows,) and np.isfinite(values).all(),
                    f"regress outputs {values}",
                )
                _check(
                    servable,
                    np.allclose(values, want.reshape(rows), rtol=1e-4, atol=1e-3),
                    "regress disagrees with predict",
                )
        else:
            feeds = servable.feeds(key)
            out = fn(**{k: tf.constant(v) for k, v in feeds.items()})
            expected = servable.signatures[key](**{k: tf.constant(v) for k, v in feeds.items()})
            for name, tensor in out.items():
                values = tensor.numpy()
                _check(
                    servable,
                    values.shape[:1] == (len(next(iter(feeds.values()))),),
                    f"{key}/{name} malformed",
                )
                _check(
                    servable,
                    values.dtype == object
                    or np.allclose(values, expected[name].numpy(), rtol=1e-5, atol=1e-5, equal_nan=True),
                    f"{key}/{name} differs after reload",
                )
    return loaded


def _check_own(servable: Servable, key: str, fn: Any) -> None:
    """A user's own signature, kept as it is: it must reload and give what the user's model gives."""
    feeds = {k: tf.constant(v) for k, v in servable.feeds(key).items()}
    out = fn(**feeds)
    expected = servable.signatures[key](**feeds)
    for name, tensor in out.items():
        values, want = tensor.numpy(), expected[name].numpy()
        same = (
            np.array_equal(values, want)
            if values.dtype == object
            else np.allclose(values, want, atol=1e-5, equal_nan=True)
        )
        _check(servable, same, f"{key}/{name} differs after reload")
