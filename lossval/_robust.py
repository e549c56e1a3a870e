"""Outlier bounds shared by LossVal (``clip_outliers``) and the encoder's scaling statistics, and the statistics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["MIN_ROWS", "central_range_bounds", "count_outside", "mean_and_std", "power_of_two_unit"]


MIN_ROWS = 20  # below this the quantiles say too little about what is extreme: nothing is clipped


def central_range_bounds(train: np.ndarray, tail: float = 0.005, *, exempt: Sequence[int] | np.ndarray = ()) -> np.ndarray:
    """Per column of ``train`` (rows x columns): its central range widened by half on each side.

    The central range runs from the ``tail`` to the ``1 - tail`` quantile, each an observed value
    and never the largest or the smallest: one typo cannot set it.

    Args:
        exempt: Positions of columns to leave as they are (one-hot columns: 0/1 by construction).

    Returns:
        ``(2, columns)`` lower and upper bounds; ``-inf``/``inf`` for an ``exempt`` column, for
        one whose central range is zero (mostly one value: a rare flag, a one-hot level) or too
        large for float64, and for every column when ``train`` has fewer than :data:`MIN_ROWS` rows.
    """
    train = np.asarray(train, dtype=np.float64)
    if len(train) < MIN_ROWS:
        return np.vstack([np.full(train.shape[1], -np.inf), np.full(train.shape[1], np.inf)])
    with np.errstate(over="ignore", invalid="ignore"):
        # Observed values, not interpolated: with n <= 200 rows the interpolated 99.5% quantile
        # would lie between the largest value and the next, and so move with a typo that is the largest.
        lo = np.quantile(train, tail, axis=0, method="higher")
        hi = np.quantile(train, 1.0 - tail, axis=0, method="lower")
        half = (hi - lo) / 2.0
        bounds = np.vstack([lo - half, hi + half])
    as_is = ~(np.isfinite(bounds).all(axis=0) & (half > 0))
    as_is[np.asarray(exempt, dtype=np.int64)] = True
    bounds[0, as_is], bounds[1, as_is] = -np.inf, np.inf
    return bounds


def count_outside(X: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Values of each column of ``X`` outside ``bounds`` (:func:`central_range_bounds`), ``(columns,)`` int."""
    return ((X < bounds[0]) | (X > bounds[1])).sum(axis=0)


def mean_and_std(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``values`` (rows x columns, or one 1-D column): mean and (population) standard deviation.

    Computed on each column divided by the power of two nearest its largest magnitude, then scaled back: the same
    numbers as ``values.mean(axis=0)`` and ``values.std(axis=0)`` (a power of two scales exactly), except where the
    squared deviations leave float64's range. There numpy's std is 0 for a column of magnitude 1e-160 (its
    squares underflow), which read as a constant column, and infinite for one of magnitude 1e160.

    Returns:
        ``(mean, std)``, each of shape ``values.shape[1:]``; ``inf``/``nan`` only where the result itself does not
        fit in float64.
    """
    values = np.asarray(values, dtype=np.float64)
    unit = power_of_two_unit(values)
    scaled = values / unit
    with np.errstate(over="ignore", invalid="ignore"):
        return scaled.mean(axis=0) * unit, scaled.std(axis=0) * unit


def power_of_two_unit(values: np.ndarray) -> np.ndarray:
    """Per column of ``values`` (or for a 1-D array): the power of two at or below its largest magnitude (1 for a
    column of zeros or with inf/NaN). Dividing by it is exact, and keeps squares of the values inside float64."""
    with np.errstate(over="ignore", invalid="ignore"):
        largest = np.abs(values).max(axis=0, initial=0.0)
    exponent = np.frexp(np.where(np.isfinite(largest) & (largest > 0), largest, 1.0))[1]
    return np.ldexp(1.0, exponent - 1)  # largest / unit in [1, 2): 2**1024 itself would be inf
