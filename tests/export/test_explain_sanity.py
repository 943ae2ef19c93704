"""Is an explanation right, not only numbers: the sanity checks of the saliency literature on export.explain.

- Model randomisation (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"): the maps of a trained model
  and of the same architecture re-initialised must differ, or the method explains the input, not the model.
- A planted cause: where the label depends on one feature (one image quadrant), the attributions say so.

Each test trains a tiny model for a few epochs on a small real subset (Fashion-MNIST, California housing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from export import explain, fashion, housing
from export.data import HOUSING_FEATURES, load_fashion, load_housing
from export.training import seeded_permutation, set_seed

pytestmark = pytest.mark.trains

TRAIN_ROWS, EXPLAINED_ROWS = 3000, 16
RANK_CORRELATION_BOUND = 0.5  # mean Spearman correlation, trained vs re-initialised, over the garment
# Share of |attribution| in the deciding quadrant (a uniform map gives 0.25; the three distractor garments
# keep some, measured 0.48 at 8 epochs) and how often that quadrant holds the most of the four.
QUADRANT_MASS_BOUND = 0.4
QUADRANT_FIRST_BOUND = 0.6
PLANTED_ROWS_SHARE = 0.9  # test rows whose largest |attribution| is the planted feature


def _fit(model: keras.Model, x: np.ndarray, y: np.ndarray, epochs: int, loss: str) -> None:
    for layer in model.layers:  # BatchNorm statistics that settle within a few hundred steps
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=loss)
    # Small batches: enough BatchNorm updates that its moving statistics settle in a few epochs.
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)


def _image_maps(model: keras.Model, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    spec = tf.TensorSpec([None, 28, 28, 1], tf.float32, name="image")
    out = explain.explain_signature(model, spec)(
        tf.constant(images),
        tf.fill([len(images)], explain.TOP_CLASS),
        tf.fill([len(images)], explain.DEFAULT_STEPS),
    )
    return out["attributions"].numpy()[..., 0], out["class_id"].numpy()


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ranks_a, ranks_b = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


@pytest.fixture(scope="module")
def fashion_images(data_dir: Path) -> Any:
    return load_fashion(data_dir)


def test_reinitialising_the_model_changes_the_maps(fashion_images: Any) -> None:
    set_seed()
    rows = seeded_permutation(len(fashion_images.y_train))[:TRAIN_ROWS]
    x = (fashion_images.x_train[rows].astype(np.float32) / 255.0)[..., None]
    trained = fashion.build_model()
    _fit(trained, x, fashion_images.y_train[rows].astype(np.int64), 3, "sparse_categorical_crossentropy")
    keras.utils.set_random_seed(99)
    random = fashion.build_model()  # the same architecture, weights as initialised, never trained

    images = (fashion_images.x_test[:EXPLAINED_ROWS].astype(np.float32) / 255.0)[..., None]
    maps, classes = _image_maps(trained, images)
    accuracy = float((classes == fashion_images.y_test[:EXPLAINED_ROWS]).mean())
    random_maps, _ = _image_maps(random, images)  # its own top class: what a user would see
    # Over the garment's pixels only: off it the image is black, the baseline, so every map is exactly 0
    # there and would agree for free.
    garment = images[..., 0] > 0
    signed = [_spearman(m[g], r[g]) for m, r, g in zip(maps, random_maps, garment, strict=True)]
    absolute = [
        _spearman(np.abs(m[g]), np.abs(r[g])) for m, r, g in zip(maps, random_maps, garment, strict=True)
    ]
    figures = (
        f"trained (accuracy {accuracy:.2f}) vs re-initialised fashion CNN, {EXPLAINED_ROWS} t10k images: Spearman over the garment "
        f"signed mean {np.mean(signed):.3f} (max {np.max(signed):.3f}), absolute mean "
        f"{np.mean(absolute):.3f} (max {np.max(absolute):.3f}); bound {RANK_CORRELATION_BOUND}"
    )
    print(figures)
    assert np.mean(signed) < RANK_CORRELATION_BOUND, figures
    assert np.mean(absolute) < RANK_CORRELATION_BOUND, figures
    # and the trained maps are about the model: explaining it twice gives the same map
    again, _ = _image_maps(trained, images)
    np.testing.assert_allclose(again, maps, atol=1e-6)
    assert len(set(classes.tolist())) > 1


def _quadrant_images(images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """28x28 canvases of four 14x14 garments; the label is the top-left one's, the other three are random
    garments (distractors that say nothing about the label)."""
    small = images.reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4))
    n = len(labels)
    canvas = np.zeros((n, 28, 28), np.float32)
    canvas[:, :14, :14] = small
    for top, left in ((0, 14), (14, 0), (14, 14)):
        canvas[:, top : top + 14, left : left + 14] = small[rng.integers(0, n, n)]
    return canvas[..., None]


def test_an_image_model_decided_by_one_quadrant_puts_its_attribution_there(fashion_images: Any) -> None:
    set_seed()
    rng = np.random.default_rng(7)
    rows = seeded_permutation(len(fashion_images.y_train))[:TRAIN_ROWS]
    x = _quadrant_images(
        fashion_images.x_train[rows].astype(np.float32) / 255.0, fashion_images.y_train[rows], rng
    )
    y = fashion_images.y_train[rows].astype(np.int64)
    model = fashion.build_model()
    _fit(model, x, y, 8, "sparse_categorical_crossentropy")

    test = _quadrant_images(
        fashion_images.x_test[:EXPLAINED_ROWS].astype(np.float32) / 255.0,
        fashion_images.y_test[:EXPLAINED_ROWS],
        rng,
    )
    maps, _ = _image_maps(model, test)
    mass = np.abs(maps)
    share = mass[:, :14, :14].sum(axis=(1, 2)) / mass.sum(axis=(1, 2))
    quadrants = mass.reshape(-1, 2, 14, 2, 14).sum(axis=(2, 4)).reshape(-1, 4)
    first = float((quadrants.argmax(axis=1) == 0).mean())
    accuracy = float(
        (model.predict(test, verbose=0).argmax(axis=1) == fashion_images.y_test[:EXPLAINED_ROWS]).mean()
    )
    figures = (
        f"quadrant-decided fashion CNN (test accuracy {accuracy:.2f}): share of |attribution| in the "
        f"deciding quadrant mean {share.mean():.3f}, min {share.min():.3f}; bound {QUADRANT_MASS_BOUND} "
        f"(uniform 0.25); it holds the most mass of the four in {first:.0%} of the images"
    )
    print(figures)
    assert share.mean() > QUADRANT_MASS_BOUND, figures
    assert first >= QUADRANT_FIRST_BOUND, figures


def test_a_tabular_model_whose_target_is_one_feature_attributes_to_it(data_dir: Path) -> None:
    set_seed()
    data = load_housing(data_dir)
    order = seeded_permutation(len(data.target))
    train_rows, test_rows = order[:TRAIN_ROWS], order[-64:]
    planted = "housing_median_age"  # not what drives real house values: the model must learn it here
    target = 5000.0 * data.features[planted]  # dollars, from that feature alone

    def columns(rows: np.ndarray) -> dict[str, np.ndarray]:
        return {name: data.features[name][rows] for name in HOUSING_FEATURES}

    preprocessor = housing.Preprocessor(columns(train_rows))
    model = housing.build_model()
    _fit(
        model,
        preprocessor(columns(train_rows)).numpy(),
        target[train_rows] / housing.TARGET_SCALE,
        30,
        "mse",
    )

    def predict(features: dict[str, tf.Tensor]) -> tf.Tensor:
        return tf.reshape(model(preprocessor(features), training=False), [-1]) * housing.TARGET_SCALE

    means = [float(np.nanmean(data.features[name][train_rows])) for name in HOUSING_FEATURES]
    signature = explain.columns_explain(predict, HOUSING_FEATURES, fill=preprocessor.medians, baseline=means)
    test = columns(test_rows)
    out = signature(
        *[tf.constant(test[name]) for name in HOUSING_FEATURES],
        tf.fill([len(test_rows)], explain.DEFAULT_STEPS),
    )
    magnitude = np.abs(out["attributions"].numpy())
    index = HOUSING_FEATURES.index(planted)
    rows_share = float((magnitude.argmax(axis=1) == index).mean())
    mean_share = float(magnitude[:, index].sum() / magnitude.sum())
    figures = (
        f"target = 5000 x {planted}: largest |attribution| on it in {rows_share:.0%} of 64 test rows, "
        f"{mean_share:.1%} of all |attribution|; bound {PLANTED_ROWS_SHARE:.0%} of rows"
    )
    print(figures)
    assert int(magnitude.sum(axis=0).argmax()) == index, figures
    assert rows_share >= PLANTED_ROWS_SHARE, figures
