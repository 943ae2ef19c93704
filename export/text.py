"""SMS spam filter on raw UTF-8 strings. Tokenisation lives in the graph: standardise, split on whitespace,
look tokens up in a vocabulary file saved as a SavedModel asset (``assets/vocabulary.txt``), then an
embedding-bag network. No client needs a tokenizer.

The frozen copy cannot hold a lookup table (a table is initialised by a separate op, not a variable), so its
serving function matches tokens against the vocabulary baked in as a string constant; it gives the same ids
and is checked against the SavedModel on held-out messages.
"""

from __future__ import annotations

import collections
import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from export import explain, signatures
from export.data import SMS_LABELS, load_sms
from export.servable import CLASSIFY_METHOD, Servable
from export.training import bytes_example, fit, seeded_permutation, set_seed, track_weights

__all__ = ["DEFAULT_EPOCHS", "LABELS", "standardize", "train"]

LABELS = list(SMS_LABELS)
DEFAULT_EPOCHS = 12
MAX_TOKENS = 64  # tokens per message kept; longer messages are truncated
MAX_VOCABULARY = 10_000
MIN_COUNT = 2
PAD, OOV = 0, 1  # ids 0 and 1; vocabulary line i has id i + 2
TEST_FRACTION = 0.2
HELD_OUT = 64  # test rows carried for verification, frozen-graph equivalence and warm-up

CONTRACT: dict[str, Any] = {
    "model": "text",
    "task": "text_classification",
    "labels": LABELS,
    "predict": {"signature": "serving_default", "outputs": ["probabilities"]},
    "classify": {"signature": "classify", "feature": "text"},
    "explain": explain.contract_section("empty-string embedding", classes=True, per="token"),
    "inputs": {"text": {"dtype": "string", "shape": [-1], "kind": "text"}},
}


def standardize(text: tf.Tensor) -> tf.RaggedTensor:
    """Raw UTF-8 strings [batch] -> tokens [batch, (n)]: lower-case, currency and !? kept as tokens, long
    digit runs (phone numbers, short codes) collapsed to one token, every other non-letter/digit a
    separator."""
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, r"\d{5,}", " <longnum> ")
    text = tf.strings.regex_replace(text, r"([£$€!?])", r" \1 ")
    text = tf.strings.regex_replace(text, r"[^\pL\pN£$€!?<>]+", " ")
    return tf.strings.split(tf.strings.strip(text))


def _pad(ids: tf.RaggedTensor) -> tf.Tensor:
    return ids.to_tensor(default_value=PAD, shape=[None, MAX_TOKENS])


def build_vocabulary(texts: list[str]) -> list[str]:
    counts: collections.Counter[str] = collections.Counter()
    for row in standardize(tf.constant(texts)).to_list():
        counts.update(token.decode("utf-8") for token in row)
    ranked = sorted((tok for tok, n in counts.items() if n >= MIN_COUNT), key=lambda t: (-counts[t], t))
    return ranked[:MAX_VOCABULARY]


class Tokenizer(tf.Module):
    """Strings -> padded ids through a table initialised from the vocabulary asset."""

    def __init__(self, vocabulary_file: Path) -> None:
        super().__init__(name="tokenizer")
        self.vocabulary = tf.saved_model.Asset(str(vocabulary_file))
        initializer = tf.lookup.TextFileInitializer(
            self.vocabulary,
            key_dtype=tf.string,
            key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
            value_dtype=tf.int64,
            value_index=tf.lookup.TextFileIndex.LINE_NUMBER,
        )
        self.table = tf.lookup.StaticHashTable(initializer, default_value=-1)

    def __call__(self, text: tf.Tensor) -> tf.Tensor:
        ids = tf.ragged.map_flat_values(self.table.lookup, standardize(text))
        ids = tf.ragged.map_flat_values(lambda i: tf.where(i < 0, tf.constant(OOV, tf.int64), i + 2), ids)
        return _pad(ids)


def constant_ids(text: tf.Tensor, vocabulary: list[str]) -> tf.Tensor:
    """The same ids as :class:`Tokenizer`, by matching against a constant vocabulary (no table: freezable)."""
    tokens = standardize(text)
    flat = tokens.flat_values
    vocab = tf.constant(vocabulary, dtype=tf.string)
    matches = tf.equal(flat[:, None], vocab[None, :])
    found = tf.reduce_any(matches, axis=1)
    index = tf.argmax(tf.cast(matches, tf.int32), axis=1, output_type=tf.int64)
    ids = tf.where(found, index + 2, tf.constant(OOV, tf.int64))
    return _pad(tokens.with_flat_values(ids))


def build_model(vocabulary_size: int) -> keras.Model:
    # No mask: an empty message (all padding) must still give finite probabilities. Max pooling picks up
    # single telling tokens ("prize", "<longnum>"), average pooling the overall tone.
    ids = keras.Input((MAX_TOKENS,), dtype="int64", name="token_ids")
    embedded = keras.layers.Embedding(vocabulary_size + 2, 32, name="embedding")(ids)
    pooled = keras.layers.Concatenate()(
        [keras.layers.GlobalAveragePooling1D()(embedded), keras.layers.GlobalMaxPooling1D()(embedded)]
    )
    hidden = keras.layers.Dropout(0.2)(keras.layers.Dense(32, activation="relu")(pooled))
    probabilities = keras.layers.Dense(len(LABELS), activation="softmax", name="probabilities")(hidden)
    return keras.Model(ids, probabilities, name="text_embedding_bag")


def train(
    data_dir: str | os.PathLike[str] | None = None, epochs: int | None = None, limit: int | None = None
) -> Servable:
    set_seed()
    epochs = DEFAULT_EPOCHS if epochs is None else epochs
    data = load_sms(data_dir)
    order = seeded_permutation(len(data.texts))
    if limit:
        order = order[: max(limit, 20)]
    n_test = max(8, int(len(order) * TEST_FRACTION))
    test_idx, rest = order[:n_test], order[n_test:]
    n_val = max(1, len(rest) // 10)
    val_idx, train_idx = rest[:n_val], rest[n_val:]
    texts = np.asarray(data.texts, dtype=object)
    labels = data.labels

    vocabulary = build_vocabulary(list(texts[train_idx]))
    workdir = Path(tempfile.mkdtemp(prefix="export-text-"))  # copied into assets/ by the saver
    vocabulary_file = workdir / "vocabulary.txt"
    vocabulary_file.write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    tokenizer = Tokenizer(vocabulary_file)
    weakref.finalize(tokenizer, shutil.rmtree, workdir, True)  # the source file lives as long as the table

    def ids(idx: np.ndarray) -> np.ndarray:
        return tokenizer(tf.constant(list(texts[idx]))).numpy()

    model = build_model(len(vocabulary))
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    history, seconds = fit(
        model,
        ids(train_idx),
        labels[train_idx],
        (ids(val_idx), labels[val_idx]),
        epochs=epochs,
        batch_size=32,
    )
    predicted = model.predict(ids(test_idx), batch_size=256, verbose=0).argmax(axis=1)
    truth = labels[test_idx]
    spam = LABELS.index("spam")
    tp = int(((predicted == spam) & (truth == spam)).sum())
    metrics = {
        "accuracy": float((predicted == truth).mean()),
        "baseline_accuracy": float(np.bincount(truth, minlength=2).max() / len(truth)),
        "spam_precision": tp / max(1, int((predicted == spam).sum())),
        "spam_recall": tp / max(1, int((truth == spam).sum())),
    }

    module = tf.Module()
    track_weights(module, model)
    module.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serving_default(text: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": model(module.tokenizer(text), training=False)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def frozen_serving(text: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": model(constant_ids(text, vocabulary), training=False)}

    def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        spec = {"text": tf.io.FixedLenFeature([], tf.string)}
        text = tf.io.parse_example(serialized, spec)["text"]
        return signatures.class_outputs(LABELS, model(module.tokenizer(text), training=False))

    module.serving_default = serving_default
    module.classify = signatures.example_function(parse)
    module.contract = signatures.contract_function(CONTRACT)
    module.explain = explain.embedding_explain(
        model,
        module.tokenizer,
        lambda text: standardize(text).to_tensor(default_value="", shape=[None, MAX_TOKENS]),
        pad_id=PAD,
    )
    # Held-out rows: the test messages, with at least one spam among them when the test split has any.
    chosen = list(test_idx[:HELD_OUT])
    spam_rows = [i for i in test_idx if labels[i] == spam]
    if spam_rows and not any(labels[i] == spam for i in chosen):
        chosen[-1] = spam_rows[0]
    held_out = [texts[i].encode("utf-8") for i in chosen]
    return Servable(
        name="text",
        task="text_classification",
        labels=LABELS,
        module=module,
        signatures={
            "serving_default": serving_default.get_concrete_function(),
            "classify": module.classify.get_concrete_function(),
            "contract": module.contract.get_concrete_function(),
            "explain": module.explain.get_concrete_function(),
        },
        method_names={"classify": CLASSIFY_METHOD},
        contract=CONTRACT,
        frozen_source=frozen_serving.get_concrete_function(),
        frozen_note=(
            "serving_default with variables folded into constants; the vocabulary table is replaced by "
            "matching against the vocabulary baked in as a constant (same ids, checked on held-out rows)"
        ),
        predict_inputs={"text": np.asarray(held_out, dtype=object)},
        examples=[bytes_example("text", raw) for raw in held_out],
        signature_inputs={
            "explain": explain.feeds({"text": np.asarray(held_out, dtype=object)}, classes=True)
        },
        metrics=metrics,
        history=history,
        training={
            "epochs": epochs,
            "seconds": round(seconds, 1),
            "batch_size": 32,
            "optimizer": "adam",
            "learning_rate": 3e-3,
            "vocabulary_size": len(vocabulary),
            "max_tokens": MAX_TOKENS,
        },
        data={
            "source": "SMS Spam Collection v.1 (Almeida & Gómez Hidalgo, UCI id 228)",
            "files": data.files,
            "splits": {
                "train": len(train_idx),
                "validation": len(val_idx),
                "test": len(test_idx),
            },
        },
        parameters=int(model.count_params()),
        curves={"loss": ("loss", "val_loss"), "accuracy": ("accuracy", "val_accuracy")},
        reference={"text": np.asarray([texts[i].encode("utf-8") for i in train_idx[:5000]], dtype=object)},
    )
