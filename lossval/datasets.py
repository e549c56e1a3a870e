"""Example and benchmark datasets, paper-style splits, and known-noise injection.

Benchmarks value the training rows of a dataset after corrupting a known subset of
them, then measure how well low values find the corrupted rows. This module supplies
the three ingredients:

* :func:`load_dataset` returns one of the seven benchmark datasets (three bundled
  with scikit-learn, so nothing is downloaded, and two synthetic generators, each in a
  classification and a regression variant) as a :class:`Dataset`.
* :func:`split_dataset` makes train/validation/test splits of the paper's sizes
  (1000/100/3000) when the data allows, else a shuffled 60/20/20 split, and
  standardises them with training statistics.
* :func:`inject_noise` corrupts an exact number of rows (label, feature or mixed
  noise) and returns the mask of the rows it touched.

Two small generators, :func:`make_separable_classification` and
:func:`make_smooth_regression`, give tests data with an obvious right answer.

Example:
    >>> ds = load_dataset("reg_2dplanes", n=1200, seed=0)
    >>> split = split_dataset(ds, seed=0, n_train=1000, n_valid=100, n_test=100)
    >>> X_noisy, y_noisy, noisy = inject_noise(
    ...     split.X_train, split.y_train, kind="label", fraction=0.1,
    ...     task=ds.task, seed=0)
    >>> int(noisy.sum())
    100
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lossval.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Dataset",
    "Split",
    "DATASETS",
    "DATASET_NAMES",
    "NOISE_KINDS",
    "TASKS",
    "DEFAULT_GENERATED_ROWS",
    "make_2dplanes",
    "PLANES_NOISE_STD",
    "GENERATED_DATASETS",
    "target_noise_std",
    "dataset_task",
    "dataset_source",
    "FRIED_NOISE_STD",
    "load_dataset",
    "split_dataset",
    "inject_noise",
    "to_frame",
    "make_separable_classification",
    "make_smooth_regression",
]

TASKS: tuple[str, ...] = ("classification", "regression")
NOISE_KINDS: tuple[str, ...] = ("label", "feature", "mixed")

#: The seven benchmark datasets, in the order benchmarks report them.
DATASETS: tuple[str, ...] = (
    "cls_breast_cancer",
    "cls_digits",
    "cls_fried",
    "cls_2dplanes",
    "reg_diabetes",
    "reg_fried",
    "reg_2dplanes",
)

# Every accepted name -> (canonical benchmark name, task, source).
_NAME_TABLE: dict[str, tuple[str, str, str]] = {
    "breast_cancer": ("cls_breast_cancer", "classification", "breast_cancer"),
    "cls_breast_cancer": ("cls_breast_cancer", "classification", "breast_cancer"),
    "digits": ("cls_digits", "classification", "digits"),
    "cls_digits": ("cls_digits", "classification", "digits"),
    "diabetes": ("reg_diabetes", "regression", "diabetes"),
    "reg_diabetes": ("reg_diabetes", "regression", "diabetes"),
    "fried": ("reg_fried", "regression", "fried"),
    "reg_fried": ("reg_fried", "regression", "fried"),
    "cls_fried": ("cls_fried", "classification", "fried"),
    "2dplanes": ("reg_2dplanes", "regression", "2dplanes"),
    "reg_2dplanes": ("reg_2dplanes", "regression", "2dplanes"),
    "cls_2dplanes": ("cls_2dplanes", "classification", "2dplanes"),
}

#: Every name :func:`load_dataset` accepts (benchmark names and their aliases).
DATASET_NAMES: tuple[str, ...] = tuple(sorted(_NAME_TABLE))

#: Rows drawn from a generator by default: 1000 train + 100 valid + 3000 test.
DEFAULT_GENERATED_ROWS = 4100

_GENERATED_SOURCES = ("fried", "2dplanes")
#: The benchmark names (of :data:`DATASETS`) drawn by a generator, which take ``target_noise``.
GENERATED_DATASETS: tuple[str, ...] = tuple(
    name for name in DATASETS if _NAME_TABLE[name][2] in _GENERATED_SOURCES)
#: Standard deviation of 2dplanes' noise (see :func:`make_2dplanes` for why 2).
PLANES_NOISE_STD = 2.0
#: Standard deviation of Friedman #1's noise (``make_friedman1(noise=...)``).
FRIED_NOISE_STD = 1.0


@dataclass
class Dataset:
    """A whole dataset before splitting.

    Attributes:
        name: Canonical benchmark name, e.g. ``"cls_digits"`` (aliases resolve to it).
        task: ``"classification"`` or ``"regression"``.
        X: Features, shape ``(n, d)``, float64.
        y: Targets, shape ``(n,)``: int64 class labels ``0..K-1`` for
            classification, float64 values for regression.
        feature_names: ``d`` column names, in the order of ``X``'s columns.
    """

    name: str
    task: str
    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]

    @property
    def n_rows(self) -> int:
        """Number of rows ``n``."""
        return int(self.X.shape[0])

    @property
    def n_classes(self) -> int | None:
        """Number of classes ``K`` (``max(y) + 1``) for classification, else None."""
        if self.task != "classification":
            return None
        return int(self.y.max()) + 1 if self.y.size else 0


@dataclass
class Split:
    """Standardised train/validation/test arrays made by :func:`split_dataset`.

    Features are ``(x - feature_mean) / feature_scale`` using training statistics.
    For regression the targets are standardised the same way with
    ``target_mean``/``target_scale``; for classification the targets are the
    untouched int64 labels and the two target fields are None. Invert with
    ``X * feature_scale + feature_mean`` (and likewise for ``y``).

    Attributes:
        X_train: Shape ``(n_train, d)``, float64.
        y_train: Shape ``(n_train,)``.
        X_valid: Shape ``(n_valid, d)``, float64.
        y_valid: Shape ``(n_valid,)``.
        X_test: Shape ``(n_test, d)``, float64.
        y_test: Shape ``(n_test,)``.
        feature_mean: Training column means, shape ``(d,)``.
        feature_scale: Training column standard deviations, shape ``(d,)``; a
            constant column gets 1.0 so it maps to zeros instead of NaN.
        target_mean: Training target mean (regression only).
        target_scale: Training target standard deviation (regression only).
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_valid: np.ndarray
    y_valid: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_mean: np.ndarray | None = None
    feature_scale: np.ndarray | None = None
    target_mean: float | None = None
    target_scale: float | None = None


def _check_positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{what} must be a positive integer, got {value!r}.")
    return int(value)


def make_2dplanes(n: int, *, seed: int, noise_std: float = PLANES_NOISE_STD) -> tuple[np.ndarray, np.ndarray]:
    """Draw Breiman's 2dplanes regression problem.

    Ten attributes: ``X1`` is -1 or 1 with equal probability and ``X2..X10`` are -1,
    0 or 1 with equal probability, all independent. The target is

    * ``y = 3 + 3*X2 + 2*X3 + X4 + eps`` when ``X1 == 1``,
    * ``y = -3 + 3*X5 + 2*X6 + X7 + eps`` otherwise,

    with ``eps ~ N(0, noise_std**2)``. ``X8..X10`` are irrelevant.

    The noise scale differs between published versions: Breiman et al. (1984) write the noise
    as N(0, 2), later generators use a standard deviation of sqrt(2) or of 1. The default, a
    standard deviation of 2, is the one under which the reference LossVal figures of the
    benchmark suite reproduce (measured 2026-12-03: with 1 or sqrt(2) our reproduction of the
    reference code's label-noise F1 on 2dplanes is off by 0.09-0.22, with 2 every 2dplanes cell
    is within 0.05; see ``benchmarks/EXPERIMENTS.md``, "2dplanes changed on 2026-12-03").

    Args:
        n: Number of rows.
        seed: Seed for ``np.random.default_rng``; the same seed gives the same rows.
        noise_std: Standard deviation of ``eps`` (>= 0). The attributes do not depend on it,
            and the noise draws only scale with it.

    Returns:
        ``(X, y)``: ``X`` of shape ``(n, 10)`` float64 with values in {-1, 0, 1},
        ``y`` of shape ``(n,)`` float64.

    Raises:
        InputError: If ``n`` is not a positive integer or ``noise_std`` is not a number >= 0.
    """
    n = _check_positive_int(n, "make_2dplanes: n")
    noise_std = _check_noise_sd(noise_std, "make_2dplanes: noise_std")
    rng = np.random.default_rng(seed)
    X = np.empty((n, 10), dtype=np.float64)
    X[:, 0] = rng.choice(np.array([-1.0, 1.0]), size=n)
    X[:, 1:] = rng.integers(-1, 2, size=(n, 9)).astype(np.float64)
    upper = 3.0 + 3.0 * X[:, 1] + 2.0 * X[:, 2] + X[:, 3]
    lower = -3.0 + 3.0 * X[:, 4] + 2.0 * X[:, 5] + X[:, 6]
    y = np.where(X[:, 0] == 1.0, upper, lower) + noise_std * rng.standard_normal(n)
    return X, y


def _check_noise_sd(value: object, what: str) -> float:
    """A target noise standard deviation: a finite real number >= 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) < math.inf:
        raise InputError(f"{what} must be a number >= 0, got {value!r}")
    return float(value)


def _lookup(name: str) -> tuple[str, str, str]:
    """``(canonical name, task, source)`` of a dataset name, or an error listing the valid names."""
    key = str(name).strip().lower().replace("-", "_")
    if key not in _NAME_TABLE:
        raise InputError(f"Unknown dataset {name!r}. Valid names: {', '.join(DATASET_NAMES)}.")
    return _NAME_TABLE[key]


def _load_source(source: str, n: int, seed: int,
                 noise_sd: float | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Return raw ``(X, y, feature_names)`` for a source; regression targets for generators,
    whose target noise is ``noise_sd`` (resolved by :func:`target_noise_std`)."""
    if source == "2dplanes":
        X, y = make_2dplanes(n, seed=seed, noise_std=noise_sd)
        return X, y, [f"x{j + 1}" for j in range(X.shape[1])]
    if source == "fried":
        from sklearn.datasets import make_friedman1

        X, y = make_friedman1(n_samples=n, n_features=10, noise=noise_sd, random_state=seed)
        return X, y, [f"x{j + 1}" for j in range(X.shape[1])]

    from sklearn import datasets as skd

    loader = {
        "breast_cancer": skd.load_breast_cancer,
        "digits": skd.load_digits,
        "diabetes": skd.load_diabetes,
    }[source]
    bunch = loader()
    X = np.asarray(bunch.data)
    names = getattr(bunch, "feature_names", None)
    if names is None or len(names) != X.shape[1]:
        names = [f"x{j + 1}" for j in range(X.shape[1])]
    return X, np.asarray(bunch.target), [str(name) for name in names]


def dataset_task(name: str) -> str:
    """``"classification"`` or ``"regression"``: the task of a dataset name, without loading it."""
    return _lookup(name)[1]


def dataset_source(name: str) -> str:
    """The data a dataset name draws from (``"fried"`` for both ``cls_fried`` and ``reg_fried``)."""
    return _lookup(name)[2]


def target_noise_std(name: str, target_noise: float | None = None) -> float | None:
    """Standard deviation of the noise in a dataset's target as :func:`load_dataset` draws it.

    ``None`` for the bundled sets (their noise is whatever the data has); for the generated
    sets ``target_noise`` if given, else the suite's (:data:`FRIED_NOISE_STD`,
    :data:`PLANES_NOISE_STD`). Benchmark records carry it, so results drawn with another noise
    are never merged into one table.
    """
    source = _lookup(name)[2]
    if source not in _GENERATED_SOURCES:
        return None
    if target_noise is not None:
        return float(target_noise)
    return PLANES_NOISE_STD if source == "2dplanes" else FRIED_NOISE_STD


def load_dataset(name: str, *, n: int | None = None, seed: int = 0, target_noise: float | None = None) -> Dataset:
    """Load one benchmark dataset by name.

    Names: ``breast_cancer``, ``digits`` (classification) and ``diabetes``
    (regression) are scikit-learn's bundled copies (no download). ``fried``
    (``make_friedman1`` with 10 features and noise 1.0) and ``2dplanes``
    (:func:`make_2dplanes`) are regression generators; ``cls_fried`` and
    ``cls_2dplanes`` draw the same rows and label them ``y > median(y)`` (int 0/1,
    balanced). Aliases: ``reg_fried``, ``reg_2dplanes``, ``reg_diabetes``,
    ``cls_breast_cancer``, ``cls_digits``. See :data:`DATASET_NAMES`.

    Args:
        name: Dataset name (case-insensitive; ``-`` is read as ``_``).
        n: Generators: number of rows to draw (default
            :data:`DEFAULT_GENERATED_ROWS` = 4100). Bundled sets: all rows by
            default; a smaller ``n`` takes a random subset of ``n`` rows.
        seed: Seed for the generator, or for the subset of a bundled set.
        target_noise: Generators only: standard deviation of the noise added to the target
            (default: the suite's, :data:`FRIED_NOISE_STD` = 1.0 for ``fried`` and
            :data:`PLANES_NOISE_STD` = 2.0 for ``2dplanes``). The features do not depend on it.

    Returns:
        A :class:`Dataset` with ``X`` float64 of shape ``(n, d)`` and ``y`` int64
        (classification) or float64 (regression) of shape ``(n,)``.

    Raises:
        InputError: If the name is unknown (the message lists the valid names), or
            ``n`` is not a positive integer, or exceeds a bundled set's rows, or
            ``target_noise`` is given for a bundled set or is not a number >= 0.
    """
    canonical, task, source = _lookup(name)
    if n is not None:
        n = _check_positive_int(n, f"load_dataset({name!r}): n")
    if target_noise is not None:
        if source not in _GENERATED_SOURCES:
            raise InputError(f"load_dataset({name!r}): target_noise applies to the generated sets "
                             f"({', '.join(_GENERATED_SOURCES)}) only; leave it unset for {source}.")
        target_noise = _check_noise_sd(target_noise, f"load_dataset({name!r}): target_noise")

    if source in _GENERATED_SOURCES:
        X, y, names = _load_source(source, n or DEFAULT_GENERATED_ROWS, seed, target_noise_std(canonical, target_noise))
    else:
        X, y, names = _load_source(source, 0, seed)
        if n is not None:
            if n > X.shape[0]:
                raise InputError(
                    f"load_dataset({name!r}): n={n} exceeds the {X.shape[0]} rows this "
                    f"dataset has; pass n <= {X.shape[0]} or leave n unset for all rows."
                )
            rows = np.sort(np.random.default_rng(seed).choice(X.shape[0], size=n, replace=False))
            X, y = X[rows], y[rows]

    if task == "classification":
        if source in _GENERATED_SOURCES:
            y = (y > np.median(y)).astype(np.int64)
        else:
            y = np.asarray(y, dtype=np.int64)
    else:
        y = np.asarray(y, dtype=np.float64)
    return Dataset(
        name=canonical,
        task=task,
        X=np.ascontiguousarray(X, dtype=np.float64),
        y=y,
        feature_names=list(names),
    )


def _split_sizes(n: int, n_train: int, n_valid: int, n_test: int) -> tuple[int, int, int]:
    if n >= n_train + n_valid + n_test:
        return n_train, n_valid, n_test
    size_train = int(round(0.6 * n))
    size_valid = int(round(0.2 * n))
    return size_train, size_valid, n - size_train - size_valid


def _can_stratify(y: np.ndarray, sizes: tuple[int, ...]) -> bool:
    """Whether a stratified split is possible: every class twice, every part >= K rows."""
    _, counts = np.unique(y, return_counts=True)
    return bool(counts.min() >= 2 and min(sizes) >= counts.size)


def split_dataset(
    ds: Dataset,
    *,
    seed: int,
    n_train: int = 1000,
    n_valid: int = 100,
    n_test: int = 3000,
) -> Split:
    """Split a dataset into standardised train/validation/test parts.

    Sizes: exactly ``n_train``/``n_valid``/``n_test`` rows when the dataset has at
    least ``n_train + n_valid + n_test`` rows (extra rows are left out); otherwise a
    shuffled 60/20/20 split of all rows (train ``round(0.6 n)``, valid
    ``round(0.2 n)``, test the rest). Classification splits are stratified by label
    when every class has at least two rows and every part at least ``K`` rows.

    Standardisation: each feature becomes ``(x - mean) / std`` with the training
    part's mean and (population) standard deviation, a constant column using std
    1.0. For regression the target is standardised the same way with training
    statistics; classification labels are left as they are. The statistics are kept
    on the returned :class:`Split`.

    Args:
        ds: The dataset to split.
        seed: Seed for the shuffle; the same seed gives the same split.
        n_train: Training rows for a paper-sized split.
        n_valid: Validation rows for a paper-sized split.
        n_test: Test rows for a paper-sized split.

    Returns:
        A :class:`Split`; ``X_*`` float64 of shape ``(rows, d)``, ``y_*`` of shape
        ``(rows,)``.

    Raises:
        InputError: If the sizes are not positive integers, ``ds.task`` is unknown,
            ``X``/``y`` shapes disagree, or the dataset has fewer than 5 rows.
    """
    from sklearn.model_selection import train_test_split

    n_train = _check_positive_int(n_train, "split_dataset: n_train")
    n_valid = _check_positive_int(n_valid, "split_dataset: n_valid")
    n_test = _check_positive_int(n_test, "split_dataset: n_test")
    if ds.task not in TASKS:
        raise InputError(f"Dataset {ds.name!r}: task must be one of {TASKS}, got {ds.task!r}.")
    X = np.asarray(ds.X, dtype=np.float64)
    y = np.asarray(ds.y)
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise InputError(
            f"Dataset {ds.name!r}: X must be (n, d) and y (n,), got X {X.shape} and y {y.shape}."
        )
    n = X.shape[0]
    if n < 5:
        raise InputError(f"Dataset {ds.name!r} has {n} rows; a split needs at least 5.")

    size_train, size_valid, size_test = _split_sizes(n, n_train, n_valid, n_test)
    rows = np.arange(n)
    stratify = ds.task == "classification" and _can_stratify(
        y, (size_train, size_valid, size_test)
    )
    train_rows, rest_rows = train_test_split(
        rows,
        train_size=size_train,
        test_size=size_valid + size_test,
        random_state=seed,
        shuffle=True,
        stratify=y if stratify else None,
    )
    valid_rows, test_rows = train_test_split(
        rest_rows,
        train_size=size_valid,
        test_size=size_test,
        random_state=seed,
        shuffle=True,
        stratify=y[rest_rows] if stratify else None,
    )

    feature_mean = X[train_rows].mean(axis=0)
    feature_scale = X[train_rows].std(axis=0)
    # A constant training column carries no information; keep it finite (zeros).
    feature_scale = np.where(feature_scale > 0, feature_scale, 1.0)

    def scale_x(part: np.ndarray) -> np.ndarray:
        return (X[part] - feature_mean) / feature_scale

    if ds.task == "regression":
        y = y.astype(np.float64)
        target_mean = float(y[train_rows].mean())
        target_scale = float(y[train_rows].std())
        if not target_scale > 0:
            target_scale = 1.0

        def scale_y(part: np.ndarray) -> np.ndarray:
            return (y[part] - target_mean) / target_scale

    else:
        target_mean = target_scale = None
        y = y.astype(np.int64)

        def scale_y(part: np.ndarray) -> np.ndarray:
            return y[part].copy()

    return Split(
        X_train=scale_x(train_rows),
        y_train=scale_y(train_rows),
        X_valid=scale_x(valid_rows),
        y_valid=scale_y(valid_rows),
        X_test=scale_x(test_rows),
        y_test=scale_y(test_rows),
        feature_mean=feature_mean,
        feature_scale=feature_scale,
        target_mean=target_mean,
        target_scale=target_scale,
    )


def _label_noise_classification(
    y: np.ndarray, rows: np.ndarray, n_classes: int | None, rng: np.random.Generator
) -> np.ndarray:
    """New labels for ``rows``, each a different class drawn uniformly from the others."""
    if n_classes is None:
        classes = np.unique(y)
    else:
        n_classes = _check_positive_int(n_classes, "inject_noise: n_classes")
        classes = np.arange(n_classes)
        outside = ~np.isin(y, classes)
        if outside.any():
            bad = int(np.flatnonzero(outside)[0])
            raise InputError(
                f"inject_noise: y[{bad}] = {y[bad]!r} is not a class in 0..{n_classes - 1}; "
                "pass the right n_classes or encode labels as 0..K-1."
            )
    if classes.size < 2:
        raise InputError(
            "inject_noise: label noise needs at least two classes, but y has "
            f"{classes.size}; pass n_classes or use kind='feature'."
        )
    position = np.searchsorted(classes, y[rows])
    # An offset in 1..K-1 lands uniformly on every class except the current one.
    offset = rng.integers(1, classes.size, size=rows.size)
    return classes[(position + offset) % classes.size]


def _label_noise_regression(
    y: np.ndarray, rows: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """New targets for ``rows``, each another row's observed target that differs."""
    n = y.size
    if rows.size and np.all(y == y[0]):
        raise InputError(
            "inject_noise: every target has the same value, so label noise cannot change "
            "any; use kind='feature' or check y."
        )
    donors = rng.integers(0, n, size=rows.size)
    pending = np.flatnonzero(y[donors] == y[rows])
    # Redraw the few donors whose value equals the row's own (same row or a tie).
    for _ in range(64):
        if pending.size == 0:
            break
        donors[pending] = rng.integers(0, n, size=pending.size)
        pending = pending[y[donors[pending]] == y[rows[pending]]]
    for i in pending:  # heavily tied targets: choose among the rows that differ
        donors[i] = rng.choice(np.flatnonzero(y != y[rows[i]]))
    return y[donors]


def inject_noise(
    X: np.ndarray,
    y: np.ndarray,
    *,
    kind: str,
    fraction: float,
    task: str,
    seed: int,
    n_classes: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Corrupt an exact, seeded subset of rows and say which.

    ``round(fraction * n)`` rows are chosen without replacement with
    ``np.random.default_rng(seed)`` (Python's ``round``: halves go to even).

    * ``"label"``: classification rows get a different class, uniform over the other
      classes; regression rows get the observed target of another row (drawn from
      all ``n`` rows) whose value differs from their own. Every chosen row's target
      changes.
    * ``"feature"``: every feature of a chosen row gets independent ``N(0, 1)``
      noise added (meant for standardised features). Targets are untouched.
    * ``"mixed"``: ``k // 2`` of the ``k`` chosen rows (a random half) get label
      noise and the other ``k - k // 2`` get feature noise.

    Args:
        X: Features, shape ``(n, d)``; not modified.
        y: Targets, shape ``(n,)``; not modified. Classification labels are
            integers (``0..n_classes-1`` when ``n_classes`` is given).
        kind: ``"label"``, ``"feature"`` or ``"mixed"``.
        fraction: Share of rows to corrupt, in ``[0, 1]``.
        task: ``"classification"`` or ``"regression"``.
        seed: Seed; the same inputs and seed give the same result.
        n_classes: Number of classes for label noise; default: the distinct
            labels present in ``y``.

    Returns:
        ``(X_noisy, y_noisy, noisy_mask)``: copies of ``X`` (float64, ``(n, d)``) and
        ``y`` (same dtype, ``(n,)``) with the noise applied, and a bool mask of shape
        ``(n,)`` that is True exactly on the corrupted rows.

    Raises:
        InputError: On an unknown ``kind`` or ``task``, ``fraction`` outside
            ``[0, 1]``, mismatched shapes, or label noise that cannot change any
            label (a single class, or all targets equal).
    """
    if kind not in NOISE_KINDS:
        raise InputError(f"inject_noise: kind must be one of {NOISE_KINDS}, got {kind!r}.")
    if task not in TASKS:
        raise InputError(f"inject_noise: task must be one of {TASKS}, got {task!r}.")
    try:
        share = float(fraction)
    except (TypeError, ValueError):
        share = float("nan")
    if not 0.0 <= share <= 1.0:  # also rejects NaN
        raise InputError(f"inject_noise: fraction must be in [0, 1], got {fraction!r}.")
    X_noisy = np.array(X, dtype=np.float64, copy=True)
    y_noisy = np.array(y, copy=True)
    if X_noisy.ndim != 2 or y_noisy.ndim != 1 or X_noisy.shape[0] != y_noisy.shape[0]:
        raise InputError(
            "inject_noise: X must be (n, d) and y (n,) with the same n, got "
            f"X {X_noisy.shape} and y {y_noisy.shape}."
        )
    if task == "classification" and kind != "feature":
        if not np.issubdtype(y_noisy.dtype, np.integer):
            try:  # ints held as objects are codes too; text labels have no np.mod (a raw TypeError)
                whole = bool(np.all(np.mod(y_noisy, 1) == 0))
            except TypeError:
                whole = False
            if not whole:
                raise InputError(
                    "inject_noise: classification labels must be integers; encode y as 0..K-1."
                )

    n = y_noisy.shape[0]
    n_noisy = int(round(share * n))
    rng = np.random.default_rng(seed)
    chosen = rng.choice(n, size=n_noisy, replace=False)
    noisy_mask = np.zeros(n, dtype=bool)
    noisy_mask[chosen] = True

    if kind == "label":
        label_rows, feature_rows = chosen, chosen[:0]
    elif kind == "feature":
        label_rows, feature_rows = chosen[:0], chosen
    else:  # chosen is in random order, so its first half is a random half
        label_rows, feature_rows = chosen[: n_noisy // 2], chosen[n_noisy // 2 :]

    if label_rows.size:
        if task == "classification":
            y_noisy[label_rows] = _label_noise_classification(
                np.asarray(y), label_rows, n_classes, rng
            )
        else:
            y_noisy[label_rows] = _label_noise_regression(np.asarray(y), label_rows, rng)
    if feature_rows.size:
        X_noisy[feature_rows] += rng.standard_normal((feature_rows.size, X_noisy.shape[1]))
    return X_noisy, y_noisy, noisy_mask


def to_frame(
    X: np.ndarray, y: np.ndarray, feature_names: list[str], target: str = "target"
) -> pd.DataFrame:
    """Put features and target into one DataFrame.

    Args:
        X: Features, shape ``(n, d)``.
        y: Targets, shape ``(n,)``.
        feature_names: ``d`` column names for ``X``.
        target: Name of the target column.

    Returns:
        A DataFrame with ``n`` rows and columns ``feature_names + [target]``.

    Raises:
        InputError: If shapes disagree with each other or with ``feature_names``, or
            a name is repeated (including ``target`` among the feature names).
    """
    import pandas as pd

    X = np.asarray(X)
    y = np.asarray(y)
    names = [str(name) for name in feature_names]
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise InputError(
            f"to_frame: X must be (n, d) and y (n,), got X {X.shape} and y {y.shape}."
        )
    if len(names) != X.shape[1]:
        raise InputError(
            f"to_frame: {len(names)} feature names for {X.shape[1]} columns; give one per column."
        )
    columns = names + [str(target)]
    if len(set(columns)) != len(columns):
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        raise InputError(f"to_frame: column names repeat: {repeated}; rename them.")
    frame = pd.DataFrame(X, columns=names)
    frame[str(target)] = y
    return frame


def make_separable_classification(
    n: int = 400, *, d: int = 5, n_classes: int = 2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs whose classes are far apart, for tests with an obvious answer.

    Class ``k`` has mean ``10 * (k - (K-1)/2) * u`` for a fixed unit vector ``u``
    (along the all-ones diagonal) and identity covariance, so neighbouring classes
    are 10 standard deviations apart and the Bayes error is about 4e-7. Classes are
    as balanced as ``n`` allows.

    Args:
        n: Number of rows (at least ``n_classes``).
        d: Number of features.
        n_classes: Number of classes ``K`` (at least 2).
        seed: Seed for ``np.random.default_rng``.

    Returns:
        ``(X, y)``: ``X`` float64 of shape ``(n, d)``, ``y`` int64 labels
        ``0..K-1`` of shape ``(n,)`` in random order.

    Raises:
        InputError: If a size is not a positive integer, ``n_classes < 2`` or
            ``n < n_classes``.
    """
    n = _check_positive_int(n, "make_separable_classification: n")
    d = _check_positive_int(d, "make_separable_classification: d")
    n_classes = _check_positive_int(n_classes, "make_separable_classification: n_classes")
    if n_classes < 2 or n < n_classes:
        raise InputError(
            f"make_separable_classification: need n_classes >= 2 and n >= n_classes, "
            f"got n={n}, n_classes={n_classes}."
        )
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % n_classes).astype(np.int64)
    direction = np.ones(d) / np.sqrt(d)
    offsets = 10.0 * (np.arange(n_classes) - (n_classes - 1) / 2.0)
    X = offsets[y][:, None] * direction[None, :] + rng.standard_normal((n, d))
    return X, y


def make_smooth_regression(
    n: int = 400, *, d: int = 5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A smooth regression problem with small noise, for tests.

    ``X ~ N(0, I)`` and ``y = sum_j c_j sin(X_j) + 0.5 * X_0 + eps`` with
    ``c_j = 1 / (j + 1)`` and ``eps ~ N(0, 0.1^2)``.

    Args:
        n: Number of rows.
        d: Number of features.
        seed: Seed for ``np.random.default_rng``.

    Returns:
        ``(X, y)``: ``X`` float64 of shape ``(n, d)``, ``y`` float64 of shape ``(n,)``.

    Raises:
        InputError: If ``n`` or ``d`` is not a positive integer.
    """
    n = _check_positive_int(n, "make_smooth_regression: n")
    d = _check_positive_int(d, "make_smooth_regression: d")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    weights = 1.0 / np.arange(1, d + 1)
    y = np.sin(X) @ weights + 0.5 * X[:, 0] + 0.1 * rng.standard_normal(n)
    return X, y
