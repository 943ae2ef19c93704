"""The ``explain`` signature: integrated gradients (Sundararajan et al. 2017) computed in the graph.

Every server that runs the SavedModel - ours and the official TensorFlow Serving - serves it as a plain
Predict call. Contract of the signature (also written into the JSON input contract under ``explain``):

- inputs: the model's own inputs, plus ``steps`` (int32 [batch]: points on the straight path from the
  baseline to the input; the most in the batch is used, clipped to [1, ``MAX_STEPS``]) and, for classifiers,
  ``class_id`` (int32 [batch]: the class to explain, -1 for the top class). Every input has the batch
  dimension, so TF Serving's batching (which refuses scalar inputs) can merge explain requests; a merged
  batch runs with the most steps any of its requests asked for. TF Serving fails a request that leaves out
  a signature input, so clients send both; the gateway takes the defaults from the contract
  (``explain.steps``, ``explain.class_id``). Not ``class``: TensorFlow canonicalises signature inputs to
  Python parameter names, and ``class`` is a keyword.
- outputs: ``attributions`` (one per input element: pixel and channel, token, feature), ``class_id`` (the class
  explained; -1 for a regressor), ``score`` (the explained output at the input) and ``baseline_score`` (at
  the baseline). Completeness: ``attributions`` sum to ``score - baseline_score`` up to the Riemann error of
  ``steps`` midpoints (checked by tests/explain).
- the baseline is fixed at export and named in the contract: a black image, the embedding of the empty
  string, the training mean of each feature.

``explain_signature`` builds it for a differentiable Keras model with one float input (images, feature
matrices), and ``explain_for`` decides from a contract whether a model qualifies (the hook for
``python -m export publish``); the text and housing models call :func:`integrated_gradients` on their own differentiable part
(the embedding output, the raw features before the in-graph preprocessing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = [
    "DEFAULT_STEPS",
    "MAX_STEPS",
    "SIGNATURE",
    "TOP_CLASS",
    "columns_explain",
    "contract_section",
    "embedding_explain",
    "explain_for",
    "explain_signature",
    "feeds",
    "integrated_gradients",
    "warmup_feeds",
]

SIGNATURE = "explain"
DEFAULT_STEPS = 32
MAX_STEPS = 256  # a request asking for more gets this many: the batch the graph runs is steps x inputs
TOP_CLASS = -1
_STEPS = tf.TensorSpec([None], tf.int32, name="steps")
_CLASS = tf.TensorSpec([None], tf.int32, name="class_id")

Forward = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]  # (inputs [n, ...], classes [n]) -> scores [n]


def contract_section(baseline: str, *, classes: bool, **extra: Any) -> dict[str, Any]:
    """The contract's ``explain`` entry: where the signature is, its baseline and the inputs' defaults."""
    section: dict[str, Any] = {
        "signature": SIGNATURE,
        "method": "integrated_gradients",
        "baseline": baseline,
        "steps": DEFAULT_STEPS,
        "max_steps": MAX_STEPS,
    }
    if classes:
        section["class_id"] = TOP_CLASS
    section.update(extra)
    return section


# The most input values one chunk of the integrated-gradients path holds (4 MiB of float32): MobileNetV2
# at 224x224x3 runs 6 path rows at a time, the 28x28 fashion model up to 1,337 (every step of a small batch).
PATH_ELEMENTS = 1 << 20


def _steps(steps: tf.Tensor) -> tf.Tensor:
    """One step count from the batch's (a scalar works too); an empty batch gets 1."""
    most = tf.reduce_max(tf.reshape(tf.cast(steps, tf.int32), [-1]))
    return tf.clip_by_value(most, 1, MAX_STEPS)


def integrated_gradients(
    forward: Forward, x: tf.Tensor, baseline: tf.Tensor, classes: tf.Tensor, steps: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Attributions of ``forward(., classes)`` for ``x`` [b, ...] against ``baseline`` (broadcastable to
    ``x``), with ``steps`` midpoint samples on the straight path. The ``steps * b`` path rows run in chunks
    of at most ``PATH_ELEMENTS`` input values (at least one step), one chunk at a time, so a real-size
    image model's gradients hold a bounded number of rows whatever ``steps`` and the batch ask for.
    Returns (attributions like ``x``, score [b], baseline score [b])."""
    steps = _steps(steps)
    x = tf.convert_to_tensor(x)
    baseline = tf.broadcast_to(tf.cast(baseline, x.dtype), tf.shape(x))
    delta = x - baseline
    inner = tf.shape(x)[1:]
    per_step = tf.maximum(tf.size(x), 1)  # input values of one step (all b rows)
    chunk = tf.maximum(PATH_ELEMENTS // per_step, 1)  # steps per chunk
    ones = tf.ones([tf.rank(x)], tf.int32)

    def run_chunk(start: tf.Tensor, total: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        count = tf.minimum(chunk, steps - start)
        alphas = (tf.cast(tf.range(start, start + count), x.dtype) + 0.5) / tf.cast(steps, x.dtype)
        alphas = tf.reshape(alphas, tf.concat([[count], ones], axis=0))
        path = tf.reshape(baseline[None] + alphas * delta[None], tf.concat([[-1], inner], axis=0))
        tiled = tf.tile(classes, [count])  # path row i * b + j belongs to input j
        with tf.GradientTape() as tape:
            tape.watch(path)
            scores = forward(path, tiled)
        grads = tf.reshape(tape.gradient(scores, path), tf.concat([[count], tf.shape(x)], axis=0))
        return start + count, total + tf.reduce_sum(grads, axis=0)

    _, total = tf.while_loop(
        lambda start, _: start < steps,
        run_chunk,
        (tf.constant(0, tf.int32), tf.zeros_like(x)),
        parallel_iterations=1,  # one chunk's activations alive at a time
    )
    attributions = delta * total / tf.cast(steps, x.dtype)
    return attributions, forward(x, classes), forward(baseline, classes)


def class_scores(probabilities: Callable[[tf.Tensor], tf.Tensor]) -> Forward:
    """A classifier's [n, classes] output -> the score of each row's class."""

    def forward(inputs: tf.Tensor, classes: tf.Tensor) -> tf.Tensor:
        scores = probabilities(inputs)
        return tf.gather(scores, tf.cast(classes, tf.int32), axis=1, batch_dims=1)

    return forward


def chosen_classes(requested: tf.Tensor, scores: tf.Tensor) -> tf.Tensor:
    """``requested`` where it names a class, else the top class of ``scores`` [b, classes]."""
    requested = tf.cast(requested, tf.int32)
    top = tf.argmax(scores, axis=1, output_type=tf.int32)
    return tf.where(requested >= 0, tf.minimum(requested, tf.shape(scores)[1] - 1), top)


def explain_signature(
    model: Callable[..., tf.Tensor],
    input_spec: tf.TensorSpec,
    *,
    baseline: np.ndarray | float = 0.0,
    classifier: bool = True,
) -> Any:
    """The ``explain`` tf.function of a differentiable model with one float input ``input_spec`` (named: the
    signature's input key) and output [b, classes] (``classifier``) or [b] / [b, 1] (a regressor).

    For a publish path: ``explain_signature(keras_model, tf.TensorSpec([None, 28, 28, 1], tf.float32,
    name="image"))``; add ``contract_section(...)`` to the contract and the function to the signatures.
    """
    name = input_spec.name or "inputs"
    reference = tf.constant(np.asarray(baseline, dtype=input_spec.dtype.as_numpy_dtype))

    def outputs(x: tf.Tensor) -> tf.Tensor:
        return tf.convert_to_tensor(model(x, training=False))

    if classifier:
        specs = [
            tf.TensorSpec(input_spec.shape, input_spec.dtype, name=name),
            _CLASS,
            _STEPS,
        ]

        @tf.function(input_signature=specs)
        def explain(x: tf.Tensor, requested: tf.Tensor, steps: tf.Tensor) -> dict[str, tf.Tensor]:
            classes = chosen_classes(requested, outputs(x))
            attributions, score, base = integrated_gradients(
                class_scores(outputs), x, reference, classes, steps
            )
            return {
                "attributions": attributions,
                "class_id": classes,
                "score": score,
                "baseline_score": base,
            }

        return explain

    def value(x: tf.Tensor, _classes: tf.Tensor) -> tf.Tensor:
        return tf.reshape(outputs(x), [-1])

    @tf.function(input_signature=[tf.TensorSpec(input_spec.shape, input_spec.dtype, name=name), _STEPS])
    def explain_regression(x: tf.Tensor, steps: tf.Tensor) -> dict[str, tf.Tensor]:
        rows = tf.fill([tf.shape(x)[0]], TOP_CLASS)
        attributions, score, base = integrated_gradients(value, x, reference, rows, steps)
        return {"attributions": attributions, "class_id": rows, "score": score, "baseline_score": base}

    return explain_regression


def feeds(
    inputs: Mapping[str, np.ndarray], *, classes: bool, steps: int = DEFAULT_STEPS
) -> dict[str, np.ndarray]:
    """Held-out inputs of the ``explain`` signature (verification, the C++ loader gate, warm-up): the
    model's inputs, the top class of each row and the default steps. The model's inputs come first (the
    verifier reads the batch size from the first)."""
    out = dict(inputs)
    rows = len(next(iter(inputs.values())))
    if classes:
        out["class_id"] = np.full([rows], TOP_CLASS, dtype=np.int32)
    out["steps"] = np.full([rows], steps, dtype=np.int32)
    return out


def warmup_feeds(held_out: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The warm-up's ``explain`` request (``export.warmup``): the first held-out row at one step."""
    out = {name: np.asarray(values)[:1] for name, values in held_out.items()}
    out["steps"] = np.ones_like(out["steps"])
    return out


def embedding_explain(
    model: Any,
    ids: Callable[[tf.Tensor], tf.Tensor],
    tokens: Callable[[tf.Tensor], tf.Tensor],
    *,
    embedding: str = "embedding",
    pad_id: int = 0,
) -> Any:
    """The ``explain`` tf.function of a text classifier ``model`` (token ids -> [b, classes]) whose layer
    ``embedding`` maps ids to vectors: integrated gradients on the embedding output against the embedding
    of the empty string (every position ``pad_id``), summed over the vector per token. ``ids`` and
    ``tokens`` turn the raw strings into the padded ids and the aligned token strings ([b, positions])."""
    import keras  # the head is a Keras sub-model; export/ imports Keras anyway

    layer = model.get_layer(embedding)
    head = keras.Model(layer.output, model.output)

    def probabilities(embedded: tf.Tensor) -> tf.Tensor:
        return tf.convert_to_tensor(head(embedded, training=False))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"), _CLASS, _STEPS])
    def explain(text: tf.Tensor, requested: tf.Tensor, steps: tf.Tensor) -> dict[str, tf.Tensor]:
        padded = ids(text)
        embedded = tf.convert_to_tensor(layer(padded))
        empty = tf.convert_to_tensor(layer(tf.fill(tf.shape(padded[:1]), tf.constant(pad_id, padded.dtype))))
        classes = chosen_classes(requested, probabilities(embedded))
        attributions, score, base = integrated_gradients(
            class_scores(probabilities), embedded, empty, classes, steps
        )
        return {
            "attributions": tf.reduce_sum(attributions, axis=-1),
            "tokens": tokens(text),
            "class_id": classes,
            "score": score,
            "baseline_score": base,
        }

    return explain


def columns_explain(
    predict: Callable[[dict[str, tf.Tensor]], tf.Tensor],
    names: Sequence[str],
    *,
    fill: Sequence[float],
    baseline: Sequence[float],
) -> Any:
    """The ``explain`` tf.function of a regressor on named float32 columns (``predict``: columns -> [b]),
    attributing in the output's unit per feature against ``baseline`` (one value per feature, e.g. the
    training mean). A NaN (unknown) input is first replaced by its ``fill`` value (what the model imputes),
    so an unknown feature is explained as that value."""
    specs = [tf.TensorSpec([None], tf.float32, name=name) for name in names]
    fills = tf.constant(list(fill), tf.float32)
    reference = tf.constant(list(baseline), tf.float32)

    def value(matrix: tf.Tensor, _classes: tf.Tensor) -> tf.Tensor:
        return predict({name: matrix[:, i] for i, name in enumerate(names)})

    @tf.function(input_signature=[*specs, _STEPS])
    def explain(*args: tf.Tensor) -> dict[str, tf.Tensor]:
        *columns, steps = args
        matrix = tf.stack(columns, axis=1)
        matrix = tf.where(tf.math.is_nan(matrix), fills[None, :], matrix)
        rows = tf.fill([tf.shape(matrix)[0]], TOP_CLASS)
        attributions, score, base = integrated_gradients(value, matrix, reference[None, :], rows, steps)
        return {"attributions": attributions, "class_id": rows, "score": score, "baseline_score": base}

    return explain


FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def explain_for(model: Any, contract: Mapping[str, Any]) -> tuple[Any, dict[str, Any]] | None:
    """The ``explain`` tf.function and the contract's ``explain`` entry for a differentiable ``model`` whose
    contract has exactly one float input (an image, or a feature vector ``[-1, n]``) - or None when the model
    does not qualify (strings, integer ids, several inputs: their attributions need the model's own
    differentiable part, as text.py and housing.py do). The baseline is the image's background (black unless
    the contract says white: the top of its range) or zeros."""
    inputs = contract.get("inputs") or {}
    if len(inputs) != 1:
        return None
    ((name, spec),) = inputs.items()
    if spec.get("dtype") not in FLOAT_DTYPES or not spec.get("shape"):
        return None
    shape = [None if d is None or int(d) < 0 else int(d) for d in spec["shape"]]
    if spec.get("kind") == "image":
        white = spec.get("background") == "white"
        low, high = (float(v) for v in spec.get("range", (0.0, 1.0)))
        baseline, described = (high, "white image") if white else (low, "black image")
    else:
        baseline, described = 0.0, "zeros"
    classifier = contract.get("task") != "regression"
    function = explain_signature(
        model,
        tf.TensorSpec(shape, tf.as_dtype(spec["dtype"]), name=name),
        baseline=baseline,
        classifier=classifier,
    )
    return function, contract_section(described, classes=classifier)
