"""export.explain on the published built-in models: the explain signature is in the contract, and its
attributions are complete (the integrated-gradients axiom) on real test inputs at the default steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from export import explain
from export.data import HOUSING_FEATURES, load_fashion, load_housing, load_sms
from export.training import seeded_permutation

ROWS = 32
# Completeness: |sum(attributions) - (f(x) - f(baseline))| <= RELATIVE * |f(x) - f(baseline)| + FLOOR[name],
# per input, at the default 32 steps. FLOOR is in the output's unit: 0.002 of a probability for the
# classifiers (rows whose score hardly moves from the baseline), none for housing (dollars).
RELATIVE = 0.05
FLOOR = {"fashion": 0.002, "text": 0.002, "housing": 0.0}
MEDIAN_RELATIVE = 0.02  # and the typical input much closer than the bound


def _inputs(name: str, data_dir: Path) -> dict[str, np.ndarray]:
    """Real inputs the models never trained on: the t10k images, the last messages and blocks of the fixed
    shuffle (the repository's models train on its first rows)."""
    if name == "fashion":
        images = load_fashion(data_dir).x_test[:ROWS].astype(np.float32) / 255.0
        return {"image": images[..., None]}
    if name == "text":
        sms = load_sms(data_dir)
        rows = seeded_permutation(len(sms.texts))[-ROWS:]
        return {"text": np.asarray([sms.texts[i].encode() for i in rows], dtype=object)}
    housing = load_housing(data_dir)
    rows = seeded_permutation(len(housing.target))[-ROWS:]
    return {name: housing.features[name][rows] for name in HOUSING_FEATURES}


@pytest.mark.parametrize("name", ["fashion", "text", "housing"])
def test_the_contract_names_the_explain_signature_and_its_defaults(
    versions: dict[str, Path], name: str
) -> None:
    contract = json.loads((versions[name] / "model_card.json").read_text())["contract"]
    section = contract["explain"]
    assert section["signature"] == "explain" and section["steps"] == explain.DEFAULT_STEPS
    assert (
        section["baseline"]
        == {
            "fashion": "black image",
            "text": "empty-string embedding",
            "housing": "training mean",
        }[name]
    )
    assert ("class_id" in section) == (name != "housing")
    if name == "housing":
        assert set(section["baseline_values"]) == set(HOUSING_FEATURES)


@pytest.mark.parametrize("name", ["fashion", "text", "housing"])
def test_attributions_sum_to_the_output_difference(loaded: dict[str, Any], data_dir: Path, name: str) -> None:
    feeds = explain.feeds(_inputs(name, data_dir), classes=name != "housing")
    out = loaded[name].signatures["explain"](**{k: tf.constant(v) for k, v in feeds.items()})
    total = out["attributions"].numpy().reshape(ROWS, -1).astype(np.float64).sum(axis=1)
    delta = (out["score"].numpy() - out["baseline_score"].numpy()).astype(np.float64)
    error = np.abs(total - delta)
    bound = RELATIVE * np.abs(delta) + FLOOR[name]
    relative = error / np.maximum(np.abs(delta), 1e-12)
    figures = (
        f"{name}: {ROWS} real test inputs, {explain.DEFAULT_STEPS} steps: completeness error median "
        f"{np.median(relative):.2%} of |f(x)-f(b)|, worst {relative.max():.2%} (worst absolute "
        f"{error.max():.4g}); bound {RELATIVE:.0%} + {FLOOR[name]}"
    )
    print(figures)
    assert (error <= bound).all(), figures
    assert np.median(relative) <= MEDIAN_RELATIVE, figures
    if name != "housing":  # the explained class is the top class when none is named
        top = loaded[name].signatures["serving_default"](
            **{k: tf.constant(v) for k, v in _inputs(name, data_dir).items()}
        )["probabilities"]
        np.testing.assert_array_equal(out["class_id"].numpy(), np.argmax(top.numpy(), axis=1))


def test_text_tokens_align_with_the_attributions(loaded: dict[str, Any]) -> None:
    feeds = explain.feeds(
        {"text": np.asarray([b"WINNER!! Call 09061701461 now", b""], dtype=object)}, classes=True
    )
    out = loaded["text"].signatures["explain"](**{k: tf.constant(v) for k, v in feeds.items()})
    tokens = [[t.decode() for t in row if t] for row in out["tokens"].numpy()]
    assert tokens == [["winner", "!", "!", "call", "<longnum>", "now"], []]
    attributions = out["attributions"].numpy()
    assert (attributions[0, 6:] == 0).all() and (attributions[1] == 0).all()  # padding is the baseline
    assert np.abs(attributions[0, :6]).sum() > 0


def test_a_named_class_is_explained_instead_of_the_top_one(loaded: dict[str, Any]) -> None:
    image = np.zeros((2, 28, 28, 1), np.float32)
    image[:, 8:20, 10:18] = 0.8
    out = loaded["fashion"].signatures["explain"](
        image=tf.constant(image), class_id=tf.constant([3, 7]), steps=tf.constant([8, 8])
    )
    assert out["class_id"].numpy().tolist() == [3, 7]


def test_explain_for_a_users_keras_model_saves_and_stays_complete(data_dir: Path, tmp_path: Path) -> None:
    """The hook for ``python -m export publish``: a differentiable Keras model with one float input gets the
    signature and the contract entry from its contract alone; the saved signature stays complete."""
    import keras

    keras.utils.set_random_seed(0)
    fashion = load_fashion(data_dir)
    x = (fashion.x_train[:1000].astype(np.float32) / 255.0)[..., None]
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, fashion.y_train[:1000].astype(np.int64), epochs=1, verbose=0)
    contract = {
        "task": "image_classification",
        "inputs": {
            "pixels": {"dtype": "float32", "shape": [-1, 28, 28, 1], "kind": "image", "range": [0, 1]}
        },
    }
    found = explain.explain_for(model, contract)
    assert found is not None
    function, section = found
    assert section["baseline"] == "black image" and section["class_id"] == explain.TOP_CLASS
    module = tf.Module()
    module.weights_ = model.weights
    module.explain = function
    tf.saved_model.save(module, str(tmp_path), signatures={"explain": function.get_concrete_function()})
    images = (fashion.x_test[:8].astype(np.float32) / 255.0)[..., None]
    feeds = explain.feeds({"pixels": images}, classes=True)
    out = tf.saved_model.load(str(tmp_path)).signatures["explain"](
        **{k: tf.constant(v) for k, v in feeds.items()}
    )
    total = out["attributions"].numpy().reshape(8, -1).sum(axis=1)
    delta = out["score"].numpy() - out["baseline_score"].numpy()
    assert np.all(np.abs(total - delta) <= RELATIVE * np.abs(delta) + FLOOR["fashion"]), (total, delta)


@pytest.mark.parametrize(
    "inputs",
    [
        {"text": {"dtype": "string", "shape": [-1], "kind": "text"}},
        {"ids": {"dtype": "int64", "shape": [-1, 16], "kind": "numeric"}},
        {"a": {"dtype": "float32", "shape": [-1]}, "b": {"dtype": "float32", "shape": [-1]}},
    ],
)
def test_explain_for_declines_models_it_cannot_differentiate(inputs: dict[str, Any]) -> None:
    assert explain.explain_for(object(), {"task": "text_classification", "inputs": inputs}) is None


def test_the_path_runs_in_bounded_chunks_with_the_same_attributions(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real-size image model must not hold steps x batch rows of gradients at once: with a chunk of a few
    input values the path runs in many chunks (counted), and the attributions equal the one-chunk ones."""
    rng = np.random.default_rng(0)
    weights = tf.constant(rng.normal(size=(12, 3)).astype(np.float32))
    x = tf.constant(rng.normal(size=(2, 12)).astype(np.float32))
    classes = tf.constant([0, 2], tf.int32)
    calls = tf.Variable(0)  # forward calls that ran: one per chunk, plus the input's and the baseline's

    def forward(inputs: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
        calls.assign_add(1)
        scores = tf.nn.softmax(tf.tanh(inputs) @ weights)
        return tf.gather(scores, rows, axis=1, batch_dims=1)

    def attributions(elements: int) -> tuple[np.ndarray, int]:
        monkeypatch.setattr(explain, "PATH_ELEMENTS", elements)
        calls.assign(0)
        chunked = tf.function(lambda: explain.integrated_gradients(forward, x, 0.0, classes, tf.constant(32)))
        return np.asarray(chunked()[0]), int(calls.numpy()) - 2

    whole, one = attributions(1 << 20)  # 32 steps x 24 values: one chunk
    pieces, seven = attributions(24 * 5)  # 5 steps a chunk: 7 chunks, the last of 2 steps
    assert (one, seven) == (1, 7)
    assert np.allclose(pieces, whole, rtol=1e-5, atol=1e-6), np.abs(pieces - whole).max()
    first = explain.integrated_gradients(forward, x, 0.0, classes, tf.constant(32))
    assert np.allclose(np.asarray(first[0]), pieces, rtol=1e-5, atol=1e-6)  # eager runs the same loop
