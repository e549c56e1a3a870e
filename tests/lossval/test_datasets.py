"""Tests for lossval.datasets: generators, loading, splits and noise injection."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.datasets  # noqa: F401  (one-off ~2 s import at collection, not inside a timed test)

from lossval.datasets import (
    DATASET_NAMES,
    DATASETS,
    FRIED_NOISE_STD,
    GENERATED_DATASETS,
    PLANES_NOISE_STD,
    Dataset,
    dataset_source,
    dataset_task,
    inject_noise,
    load_dataset,
    target_noise_std,
    make_2dplanes,
    make_separable_classification,
    make_smooth_regression,
    split_dataset,
    to_frame,
)
from lossval.errors import InputError


# --- generators -------------------------------------------------------------------


def test_2dplanes_follows_breimans_formula():
    X, y = make_2dplanes(20000, seed=3, noise_std=1.0)
    assert X.shape == (20000, 10) and y.shape == (20000,)
    assert X.dtype == np.float64 and y.dtype == np.float64
    assert set(np.unique(X[:, 0])) == {-1.0, 1.0}
    for j in range(1, 10):
        assert set(np.unique(X[:, j])) == {-1.0, 0.0, 1.0}
        # each of the three values is equiprobable
        np.testing.assert_allclose(
            [np.mean(X[:, j] == v) for v in (-1, 0, 1)], 1 / 3, atol=0.015
        )
    assert abs(np.mean(X[:, 0] == 1) - 0.5) < 0.015

    upper = 3 + 3 * X[:, 1] + 2 * X[:, 2] + X[:, 3]
    lower = -3 + 3 * X[:, 4] + 2 * X[:, 5] + X[:, 6]
    eps = y - np.where(X[:, 0] == 1, upper, lower)
    assert abs(eps.mean()) < 0.05
    assert abs(eps.std() - 1.0) < 0.05
    # residuals are Gaussian: ~68.3% within one sd, ~95.4% within two
    assert abs(np.mean(np.abs(eps) < 1) - 0.683) < 0.015
    assert abs(np.mean(np.abs(eps) < 2) - 0.954) < 0.01
    # irrelevant attributes X8..X10 carry no signal
    for j in (7, 8, 9):
        assert abs(np.corrcoef(X[:, j], eps)[0, 1]) < 0.03


def test_2dplanes_noise_scale_is_the_suite_s_and_is_checked():
    # The suite's 2dplanes has noise sd 2 (what the reference figures reproduce under); the
    # attributes and the noise draws do not depend on the scale, which only multiplies them.
    X1, y1 = make_2dplanes(20000, seed=3, noise_std=1.0)
    X2, y2 = make_2dplanes(20000, seed=3)
    assert PLANES_NOISE_STD == 2.0
    np.testing.assert_array_equal(X1, X2)
    upper = 3 + 3 * X1[:, 1] + 2 * X1[:, 2] + X1[:, 3]
    signal = np.where(X1[:, 0] == 1, upper, -3 + 3 * X1[:, 4] + 2 * X1[:, 5] + X1[:, 6])
    np.testing.assert_allclose(y2 - signal, 2.0 * (y1 - signal), atol=1e-12)
    assert abs((y2 - signal).std() - 2.0) < 0.1
    np.testing.assert_array_equal(load_dataset("reg_2dplanes", n=300, seed=1).y,
                                  make_2dplanes(300, seed=1, noise_std=PLANES_NOISE_STD)[1])
    for bad in (-1.0, float("nan"), float("inf"), "2", True):
        with pytest.raises(InputError, match="noise_std"):
            make_2dplanes(10, seed=0, noise_std=bad)


def test_target_noise_of_the_generated_sets_can_be_set_and_only_there():
    # load_dataset(target_noise=...) redraws a generated set with another noise scale (the
    # benchmark's --target-noise uses it): same features, the noise scaled; 0 = noiseless.
    base = load_dataset("reg_2dplanes", n=500, seed=2)
    quiet = load_dataset("reg_2dplanes", n=500, seed=2, target_noise=0.0)
    np.testing.assert_array_equal(base.X, quiet.X)
    np.testing.assert_allclose(make_2dplanes(500, seed=2, noise_std=0.0)[1], quiet.y)
    assert (base.y - quiet.y).std() == pytest.approx(PLANES_NOISE_STD, rel=0.1)
    fried = load_dataset("fried", n=500, seed=2, target_noise=3.0)
    np.testing.assert_array_equal(fried.X, load_dataset("fried", n=500, seed=2).X)
    assert (fried.y - load_dataset("fried", n=500, seed=2, target_noise=0.0).y).std() == pytest.approx(3.0, rel=0.1)
    assert set(np.unique(load_dataset("cls_2dplanes", n=400, seed=0, target_noise=1.0).y)) == {0, 1}
    with pytest.raises(InputError, match="generated sets"):
        load_dataset("digits", target_noise=1.0)
    for bad in (-0.5, float("nan"), "1", True):
        with pytest.raises(InputError, match="target_noise"):
            load_dataset("fried", n=50, target_noise=bad)


def test_2dplanes_is_seeded():
    X1, y1 = make_2dplanes(50, seed=7)
    X2, y2 = make_2dplanes(50, seed=7)
    X3, _ = make_2dplanes(50, seed=8)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(X1, X3)


def test_fried_matches_friedman1_formula_with_unit_noise():
    ds = load_dataset("fried", n=20000, seed=0)
    X, y = ds.X, ds.y
    assert X.shape == (20000, 10)
    signal = (
        10 * np.sin(np.pi * X[:, 0] * X[:, 1])
        + 20 * (X[:, 2] - 0.5) ** 2
        + 10 * X[:, 3]
        + 5 * X[:, 4]
    )
    eps = y - signal
    assert abs(eps.mean()) < 0.05
    assert abs(eps.std() - 1.0) < 0.05


def test_separable_classification_is_separable_and_balanced():
    X, y = make_separable_classification(300, d=4, n_classes=3, seed=1)
    assert X.shape == (300, 4) and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), [100, 100, 100])
    means = np.stack([X[y == k].mean(axis=0) for k in range(3)])
    nearest = np.argmin(((X[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert np.array_equal(nearest, y)
    assert np.linalg.norm(means[1] - means[0]) > 8


def test_smooth_regression_has_small_noise():
    X, y = make_smooth_regression(500, d=3, seed=2)
    assert X.shape == (500, 3) and y.shape == (500,)
    truth = np.sin(X) @ (1 / np.arange(1, 4)) + 0.5 * X[:, 0]
    assert np.std(y - truth) < 0.12
    assert np.std(y) > 0.8  # the signal dominates the noise


# --- loading ----------------------------------------------------------------------


def test_benchmark_names_are_the_seven():
    assert DATASETS == (
        "cls_breast_cancer",
        "cls_digits",
        "cls_fried",
        "cls_2dplanes",
        "reg_diabetes",
        "reg_fried",
        "reg_2dplanes",
    )
    assert set(DATASETS) <= set(DATASET_NAMES)


@pytest.mark.parametrize(
    ("name", "shape", "task", "n_classes"),
    [
        ("breast_cancer", (569, 30), "classification", 2),
        ("digits", (1797, 64), "classification", 10),
        ("diabetes", (442, 10), "regression", None),
    ],
)
def test_bundled_sets_load_all_rows(name, shape, task, n_classes):
    ds = load_dataset(name)
    assert isinstance(ds, Dataset)
    assert ds.X.shape == shape and ds.X.dtype == np.float64
    assert ds.task == task and ds.n_classes == n_classes
    assert len(ds.feature_names) == shape[1]
    assert ds.y.dtype == (np.int64 if task == "classification" else np.float64)


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("breast_cancer", "cls_breast_cancer"),
        ("digits", "cls_digits"),
        ("diabetes", "reg_diabetes"),
        ("fried", "reg_fried"),
        ("2dplanes", "reg_2dplanes"),
    ],
)
def test_aliases_give_the_same_data(alias, canonical):
    a = load_dataset(alias, seed=4)
    b = load_dataset(canonical, seed=4)
    assert a.name == b.name == canonical
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)


def test_generated_sets_default_to_4100_rows_and_honour_n():
    assert load_dataset("reg_2dplanes").X.shape == (4100, 10)
    assert load_dataset("cls_fried", n=250, seed=1).X.shape == (250, 10)


@pytest.mark.parametrize("source", ["fried", "2dplanes"])
def test_classification_variants_are_median_thresholded_and_balanced(source):
    reg = load_dataset(f"reg_{source}", seed=5)
    cls = load_dataset(f"cls_{source}", seed=5)
    np.testing.assert_array_equal(cls.X, reg.X)
    assert cls.task == "classification" and cls.y.dtype == np.int64
    np.testing.assert_array_equal(cls.y, (reg.y > np.median(reg.y)).astype(np.int64))
    assert set(np.unique(cls.y)) == {0, 1}
    assert cls.y.mean() == pytest.approx(0.5, abs=0.001)


def test_bundled_subset_and_too_many_rows():
    ds = load_dataset("diabetes", n=100, seed=2)
    full = load_dataset("diabetes")
    assert ds.X.shape == (100, 10)
    # every subset row is a row of the full set
    full_rows = {tuple(row) for row in full.X}
    assert all(tuple(row) in full_rows for row in ds.X)
    with pytest.raises(InputError, match="442"):
        load_dataset("diabetes", n=10_000)


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_task_source_and_noise_without_loading_agree_with_the_loaded_set(name):
    ds = load_dataset(name, n=200, seed=1)
    assert dataset_task(name) == ds.task
    assert dataset_source(name) == ds.name.split("_", 1)[1]
    generated = ds.name in GENERATED_DATASETS
    assert generated == (dataset_source(name) in ("fried", "2dplanes"))
    expected = {"fried": FRIED_NOISE_STD, "2dplanes": PLANES_NOISE_STD}.get(dataset_source(name))
    assert target_noise_std(name) == expected
    assert target_noise_std(name, 0.5) == (0.5 if generated else None)


def test_unknown_name_lists_valid_names():
    for lookup in (dataset_task, dataset_source, target_noise_std):
        with pytest.raises(InputError, match="mnist"):
            lookup("mnist")
    with pytest.raises(InputError) as info:
        load_dataset("mnist")
    message = str(info.value)
    assert "mnist" in message
    for name in DATASETS:
        assert name in message


# --- splits -----------------------------------------------------------------------


def _unscale(X, split):
    return X * split.feature_scale + split.feature_mean


def test_generated_set_gets_paper_sized_split():
    ds = load_dataset("reg_fried", seed=0)
    split = split_dataset(ds, seed=0)
    assert split.X_train.shape == (1000, 10)
    assert split.X_valid.shape == (100, 10)
    assert split.X_test.shape == (3000, 10)
    assert split.y_train.shape == (1000,) and split.y_test.shape == (3000,)
    # features and target standardised with train statistics
    np.testing.assert_allclose(split.X_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(split.X_train.std(axis=0), 1, atol=1e-12)
    assert split.y_train.mean() == pytest.approx(0, abs=1e-12)
    assert split.y_train.std() == pytest.approx(1, abs=1e-12)
    # test rows use the same (train) statistics: undoing them recovers original rows
    original = {tuple(np.round(row, 8)): i for i, row in enumerate(ds.X)}
    index = {
        part: [original[tuple(np.round(row, 8))] for row in _unscale(getattr(split, part), split)]
        for part in ("X_train", "X_valid", "X_test")
    }
    all_rows = index["X_train"] + index["X_valid"] + index["X_test"]
    assert len(set(all_rows)) == 4100  # disjoint and complete
    y_test = split.y_test * split.target_scale + split.target_mean
    np.testing.assert_allclose(y_test, ds.y[index["X_test"]], rtol=1e-10)


def test_breast_cancer_gets_stratified_60_20_20_split():
    ds = load_dataset("breast_cancer")
    split = split_dataset(ds, seed=1)
    assert split.X_train.shape == (341, 30)
    assert split.X_valid.shape == (114, 30)
    assert split.X_test.shape == (114, 30)
    assert split.y_train.dtype == np.int64
    assert split.target_mean is None
    overall = ds.y.mean()
    for part in (split.y_train, split.y_valid, split.y_test):
        assert abs(part.mean() - overall) < 0.01
    # rows are shuffled, not the first 341 in file order
    assert not np.allclose(_unscale(split.X_train, split), ds.X[:341])


def test_digits_split_has_no_nan_from_constant_pixels():
    split = split_dataset(load_dataset("digits"), seed=0)
    assert split.X_train.shape == (1078, 64)
    assert split.X_valid.shape[0] + split.X_test.shape[0] == 1797 - 1078
    assert np.isfinite(split.X_train).all() and np.isfinite(split.X_test).all()
    assert set(np.unique(split.y_valid)) == set(range(10))


def test_split_is_seeded():
    ds = load_dataset("reg_diabetes")
    a, b, c = (split_dataset(ds, seed=s) for s in (3, 3, 4))
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_train, c.y_train)


def test_split_rejects_bad_sizes():
    with pytest.raises(InputError, match="n_train"):
        split_dataset(load_dataset("diabetes"), seed=0, n_train=0)


# --- noise injection --------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "fraction", "expected"), [(1000, 0.1, 100), (30, 0.25, 8), (7, 0.0, 0), (7, 1.0, 7)]
)
@pytest.mark.parametrize("kind", ["label", "feature", "mixed"])
def test_noise_count_is_exact(n, fraction, expected, kind):
    X, y = make_separable_classification(n, d=3, n_classes=3, seed=0)
    _, _, mask = inject_noise(X, y, kind=kind, fraction=fraction, task="classification", seed=1)
    assert mask.dtype == bool and mask.shape == (n,)
    assert mask.sum() == expected


def test_classification_label_noise_always_changes_label_uniformly():
    X, y = make_separable_classification(3000, d=2, n_classes=4, seed=0)
    X_n, y_n, mask = inject_noise(X, y, kind="label", fraction=0.5, task="classification", seed=2)
    assert np.all(y_n[mask] != y[mask])
    np.testing.assert_array_equal(y_n[~mask], y[~mask])
    np.testing.assert_array_equal(X_n, X)
    assert y_n.dtype == np.int64 and set(np.unique(y_n)) <= {0, 1, 2, 3}
    # from class 0 the new label is uniform over {1, 2, 3}
    new = y_n[mask & (y == 0)]
    np.testing.assert_allclose(np.bincount(new, minlength=4)[1:] / new.size, 1 / 3, atol=0.06)


def test_classification_label_noise_uses_n_classes():
    y = np.zeros(50, dtype=np.int64)  # only class 0 present, but 3 classes exist
    X = np.zeros((50, 2))
    _, y_n, mask = inject_noise(
        X, y, kind="label", fraction=1.0, task="classification", seed=0, n_classes=3
    )
    assert np.all(np.isin(y_n, [1, 2])) and mask.all()
    with pytest.raises(InputError, match="two classes"):
        inject_noise(X, y, kind="label", fraction=0.5, task="classification", seed=0)


def test_regression_label_noise_takes_another_rows_differing_target():
    X, y = make_smooth_regression(400, d=2, seed=0)
    y[:200] = np.round(y[:200], 1)  # plenty of ties: a tied donor must be redrawn
    X_n, y_n, mask = inject_noise(X, y, kind="label", fraction=0.3, task="regression", seed=5)
    assert mask.sum() == 120
    assert np.all(y_n[mask] != y[mask])
    assert np.all(np.isin(y_n[mask], y))  # every new target is an observed one
    np.testing.assert_array_equal(y_n[~mask], y[~mask])
    np.testing.assert_array_equal(X_n, X)


def test_regression_label_noise_with_two_distinct_values():
    y = np.array([1.0] * 9 + [2.0])
    X = np.zeros((10, 1))
    _, y_n, mask = inject_noise(X, y, kind="label", fraction=1.0, task="regression", seed=0)
    np.testing.assert_array_equal(y_n, np.where(y == 1.0, 2.0, 1.0))


def test_feature_noise_changes_only_chosen_rows():
    X, y = make_smooth_regression(2000, d=4, seed=1)
    X_n, y_n, mask = inject_noise(X, y, kind="feature", fraction=0.2, task="regression", seed=3)
    np.testing.assert_array_equal(X_n[~mask], X[~mask])
    np.testing.assert_array_equal(y_n, y)
    delta = X_n[mask] - X[mask]
    assert np.all(delta != 0)
    assert abs(delta.mean()) < 0.05 and abs(delta.std() - 1) < 0.05


def test_mixed_noise_splits_chosen_rows_in_half():
    X, y = make_separable_classification(200, d=3, seed=0)
    X_n, y_n, mask = inject_noise(X, y, kind="mixed", fraction=0.15, task="classification", seed=4)
    label_rows = y_n != y
    feature_rows = np.any(X_n != X, axis=1)
    assert mask.sum() == 30
    assert label_rows.sum() == 15 and feature_rows.sum() == 15
    assert not np.any(label_rows & feature_rows)
    np.testing.assert_array_equal(label_rows | feature_rows, mask)


def test_inject_noise_leaves_inputs_alone_and_is_seeded():
    X, y = make_smooth_regression(100, d=3, seed=0)
    X_before, y_before = X.copy(), y.copy()
    first = inject_noise(X, y, kind="mixed", fraction=0.4, task="regression", seed=9)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)
    again = inject_noise(X, y, kind="mixed", fraction=0.4, task="regression", seed=9)
    other = inject_noise(X, y, kind="mixed", fraction=0.4, task="regression", seed=10)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[2], other[2])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "swap", "fraction": 0.1, "task": "regression"}, "kind"),
        ({"kind": "label", "fraction": 1.5, "task": "regression"}, "fraction"),
        ({"kind": "label", "fraction": float("nan"), "task": "regression"}, "fraction"),
        ({"kind": "label", "fraction": 0.1, "task": "ranking"}, "task"),
    ],
)
def test_inject_noise_rejects_bad_options(kwargs, match):
    X, y = make_smooth_regression(20, d=2)
    with pytest.raises(InputError, match=match):
        inject_noise(X, y, seed=0, **kwargs)


# --- frames -----------------------------------------------------------------------


def test_to_frame_columns_and_values():
    X, y = make_separable_classification(10, d=2, seed=0)
    frame = to_frame(X, y, ["a", "b"], target="label")
    assert list(frame.columns) == ["a", "b", "label"]
    np.testing.assert_array_equal(frame[["a", "b"]].to_numpy(), X)
    np.testing.assert_array_equal(frame["label"].to_numpy(), y)
    with pytest.raises(InputError, match="feature names"):
        to_frame(X, y, ["a"])
    with pytest.raises(InputError, match="repeat"):
        to_frame(X, y, ["a", "target"])


@pytest.mark.parametrize("y", [np.array(["cat", "dog"] * 20), np.array([0.5, 1.0] * 20)])
def test_inject_noise_refuses_labels_that_are_not_codes_in_its_own_words(y):
    # Text labels raised numpy's "ufunc 'remainder' not supported".
    with pytest.raises(InputError, match="classification labels must be integers; encode y as 0..K-1"):
        inject_noise(np.zeros((40, 2)), y, kind="label", fraction=0.1, task="classification", seed=0)


def test_inject_noise_takes_integer_labels_held_as_objects():
    y = np.array([0, 1] * 20, dtype=object)  # .to_numpy() of an object column
    _, y_noisy, mask = inject_noise(np.zeros((40, 2)), y, kind="label", fraction=0.1, task="classification", seed=0)
    assert mask.sum() == 4 and set(y_noisy.tolist()) <= {0, 1}
