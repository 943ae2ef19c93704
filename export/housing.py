"""California housing regressor: eight named float32 inputs (NaN = unknown), median house value in US dollars.

Preprocessing lives in the graph, with constants learned from the training split: unknowns are imputed with
the training median, the count columns are log-scaled, and every feature is standardised. The network predicts
value / 100,000; the graph scales it back to dollars.
"""

from __future__ import annotations

import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from export import explain, signatures
from export.data import HOUSING_FEATURES, load_housing
from export.servable import REGRESS_METHOD, Servable
from export.training import fit, float_example, seeded_permutation, set_seed, track_weights

__all__ = ["DEFAULT_EPOCHS", "FEATURES", "train"]

FEATURES = HOUSING_FEATURES
DEFAULT_EPOCHS = 60
TARGET_SCALE = 100_000.0
LOG_SCALED = ("total_rooms", "total_bedrooms", "population", "households")
TEST_FRACTION = 0.1
VALIDATION_FRACTION = 0.1
REFERENCE = 5000  # training rows profiled for drift (export.profile)
HELD_OUT = 64  # test rows carried for verification, frozen-graph equivalence and warm-up

# A typical California block (the first row of the data): the console's "Fill an example" reads it from the
# contract (inputs.<name>.example).
EXAMPLE: dict[str, float] = {
    "longitude": -122.23,
    "latitude": 37.88,
    "housing_median_age": 41,
    "total_rooms": 880,
    "total_bedrooms": 129,
    "population": 322,
    "households": 126,
    "median_income": 8.3252,
}

DESCRIPTIONS: dict[str, tuple[str, str]] = {
    "longitude": ("block group longitude (west is more negative)", "degrees"),
    "latitude": ("block group latitude", "degrees"),
    "housing_median_age": ("median age of the houses in the block group", "years"),
    "total_rooms": ("total rooms in the block group", "rooms"),
    "total_bedrooms": ("total bedrooms in the block group", "bedrooms"),
    "population": ("people living in the block group", "people"),
    "households": ("households in the block group", "households"),
    "median_income": ("median household income", "tens of thousands of US dollars"),
}

CONTRACT: dict[str, Any] = {
    "model": "housing",
    "task": "regression",
    "labels": [],
    "predict": {"signature": "serving_default", "outputs": ["median_house_value"]},
    "regress": {"signature": "regress"},
    "output": {
        "name": "median_house_value",
        "description": "median house value of the block group",
        "unit": "USD",
    },
    "inputs": {
        name: {
            "dtype": "float32",
            "shape": [-1],
            "kind": "numeric",
            "description": DESCRIPTIONS[name][0],
            "unit": DESCRIPTIONS[name][1],
            "missing": "NaN",
            "example": EXAMPLE[name],
        }
        for name in FEATURES
    },
}


class Preprocessor(tf.Module):
    """Named float32 columns -> standardised [batch, 8] matrix; the statistics are graph constants."""

    def __init__(self, columns: dict[str, np.ndarray]) -> None:
        super().__init__(name="preprocessor")
        self.medians = [float(np.nanmedian(columns[name])) for name in FEATURES]
        raw = self._impute_and_log(columns)
        self.mean = raw.mean(axis=0).astype(np.float32)
        self.std = np.maximum(raw.std(axis=0), 1e-6).astype(np.float32)

    def _impute_and_log(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        return self(columns, standardise=False).numpy()

    def __call__(self, columns: dict[str, Any], standardise: bool = True) -> tf.Tensor:
        out = []
        for name, median in zip(FEATURES, self.medians, strict=True):
            x = tf.cast(tf.convert_to_tensor(columns[name]), tf.float32)
            x = tf.where(tf.math.is_nan(x), tf.constant(median, tf.float32), x)
            if name in LOG_SCALED:
                x = tf.math.log1p(tf.maximum(x, 0.0))
            out.append(x)
        matrix = tf.stack(out, axis=1)
        if standardise:
            matrix = (matrix - tf.constant(self.mean)) / tf.constant(self.std)
        return matrix


def build_model() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((len(FEATURES),), name="features"),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1, name="scaled_value"),
        ],
        name="housing_mlp",
    )


def train(
    data_dir: str | os.PathLike[str] | None = None, epochs: int | None = None, limit: int | None = None
) -> Servable:
    set_seed()
    epochs = DEFAULT_EPOCHS if epochs is None else epochs
    data = load_housing(data_dir)
    order = seeded_permutation(len(data.target))
    if limit:
        order = order[: max(limit, 30)]
    n_test = max(8, int(len(order) * TEST_FRACTION))
    n_val = max(1, int(len(order) * VALIDATION_FRACTION))
    test_idx, val_idx, train_idx = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]

    def columns(idx: np.ndarray) -> dict[str, np.ndarray]:
        return {name: data.features[name][idx] for name in FEATURES}

    preprocessor = Preprocessor(columns(train_idx))

    def matrix(idx: np.ndarray) -> np.ndarray:
        return preprocessor(columns(idx)).numpy()

    model = build_model()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="mse",
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
    )
    history, seconds = fit(
        model,
        matrix(train_idx),
        data.target[train_idx] / TARGET_SCALE,
        (matrix(val_idx), data.target[val_idx] / TARGET_SCALE),
        epochs=epochs,
        batch_size=64,
    )
    history = {
        key: [v * TARGET_SCALE for v in values] if "rmse" in key else values
        for key, values in history.items()
    }
    predicted = model.predict(matrix(test_idx), batch_size=1024, verbose=0)[:, 0] * TARGET_SCALE
    truth = data.target[test_idx].astype(np.float64)
    rmse = float(np.sqrt(np.mean((predicted - truth) ** 2)))
    baseline = float(np.sqrt(np.mean((float(data.target[train_idx].mean()) - truth) ** 2)))

    module = tf.Module()
    track_weights(module, model)
    module.preprocessor = preprocessor

    def predict(features: dict[str, tf.Tensor]) -> tf.Tensor:
        scaled = model(module.preprocessor(features), training=False)
        return tf.reshape(scaled, [-1]) * TARGET_SCALE

    spec = [tf.TensorSpec([None], tf.float32, name=name) for name in FEATURES]

    @tf.function(input_signature=spec)
    def serving_default(*features: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"median_house_value": predict(dict(zip(FEATURES, features, strict=True)))}

    def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        feature_spec = {
            name: tf.io.FixedLenFeature([], tf.float32, default_value=float("nan")) for name in FEATURES
        }
        return {"outputs": predict(tf.io.parse_example(serialized, feature_spec))}

    module.serving_default = serving_default
    module.regress = signatures.example_function(parse)
    # The explain baseline: the training mean of each feature (unknowns left out).
    means = [float(np.nanmean(data.features[name][train_idx])) for name in FEATURES]
    contract = {
        **CONTRACT,
        "explain": explain.contract_section(
            "training mean",
            classes=False,
            per="feature",
            features=list(FEATURES),
            baseline_values=dict(zip(FEATURES, means, strict=True)),
        ),
    }
    module.contract = signatures.contract_function(contract)
    module.explain = explain.columns_explain(predict, FEATURES, fill=preprocessor.medians, baseline=means)
    held = test_idx[:HELD_OUT]
    held_columns = {name: data.features[name][held].astype(np.float32) for name in FEATURES}
    held_columns["total_bedrooms"][0] = np.nan  # one unknown, so verification covers the imputation path
    return Servable(
        name="housing",
        task="regression",
        labels=[],
        module=module,
        signatures={
            "serving_default": serving_default.get_concrete_function(),
            "regress": module.regress.get_concrete_function(),
            "contract": module.contract.get_concrete_function(),
            "explain": module.explain.get_concrete_function(),
        },
        method_names={"regress": REGRESS_METHOD},
        contract=contract,
        frozen_source=serving_default.get_concrete_function(),
        frozen_note="serving_default with every variable folded into a constant",
        predict_inputs=held_columns,
        examples=[
            float_example({name: [held_columns[name][i]] for name in FEATURES}) for i in range(len(held))
        ],
        signature_inputs={"explain": explain.feeds(held_columns, classes=False)},
        metrics={
            "rmse": rmse,
            "baseline_rmse": baseline,
            "rmse_reduction": 1.0 - rmse / baseline,
            "mae": float(np.mean(np.abs(predicted - truth))),
        },
        history=history,
        training={
            "epochs": epochs,
            "seconds": round(seconds, 1),
            "batch_size": 64,
            "optimizer": "adam",
            "learning_rate": 1e-3,
            "target_scale": TARGET_SCALE,
        },
        data={
            "source": "California housing (Pace & Barry 1997), ageron/handson-ml2 housing.csv",
            "files": data.files,
            "splits": {
                "train": len(train_idx),
                "validation": len(val_idx),
                "test": len(test_idx),
            },
        },
        score_output="median_house_value",
        parameters=int(model.count_params()),
        curves={"loss (MSE, scaled)": ("loss", "val_loss"), "RMSE (US dollars)": ("rmse", "val_rmse")},
        reference={
            name: values.astype(np.float32) for name, values in columns(train_idx[:REFERENCE]).items()
        },
    )
