"""Choosing the trusted validation split and the held-out test split.

Neither split ever enters valuation training or pruning: the pipeline values and prunes the
train rows only, and scores "before" and "after" models on the same test rows.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from lossval.errors import InputError

__all__ = ["MIN_VALIDATION_ROWS", "assign_splits"]

MIN_VALIDATION_ROWS = 10
MIN_TRAIN_ROWS = 10


def _random_part(index: np.ndarray, labels: np.ndarray | None, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Positions (into ``index``) of a random ``fraction``, stratified by ``labels`` when given."""
    if labels is None:
        k = int(round(fraction * len(index)))
        return rng.permutation(len(index))[:k]
    chosen = []
    for cls in sorted(pd.unique(labels), key=str):
        pos = np.flatnonzero(labels == cls)
        k = int(round(fraction * len(pos)))
        chosen.append(rng.permutation(pos)[:k])
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=int)


def _as_bool(series: pd.Series, column: str, source: str | None) -> np.ndarray:
    if series.dtype == bool:
        return series.to_numpy()
    mapping = {True: True, False: False, 1: True, 0: False, "true": True, "false": False, "yes": True,
               "no": False, "1": True, "0": False}
    lowered = series.map(lambda v: v.strip().lower() if isinstance(v, str) else v)
    bad = ~lowered.isin(list(mapping))
    if bad.any():
        first = series.index[bad.to_numpy()][0]
        raise InputError(
            f"trusted column {column!r} must be boolean (true/false, 1/0); row {first} has {series.loc[first]!r}.",
            source=source,
        )
    return lowered.map(mapping).astype(bool).to_numpy()


def assign_splits(
    df: pd.DataFrame,
    *,
    strategy: str,
    target: str,
    task: str,
    seed: int,
    test_fraction: float,
    valid_fraction: float = 0.2,
    column: str | None = None,
    timestamp_column: str | None = None,
    source: str | None = None,
) -> pd.Series:
    """Assign each row of the data to ``train``, ``validation`` or ``test``.

    Args:
        df: The snapshot rows.
        strategy: ``file`` (validation comes from another file: rows here are train/test),
            ``column`` (rows where boolean ``column`` is true are validation), ``stratified``
            (random ``valid_fraction``, stratified by class for classification), ``latest``
            (the most recent ``valid_fraction`` of rows by ``timestamp_column``).
        target: Target column (stratification).
        task: ``classification`` or ``regression``.
        seed: Seed of the random parts.
        test_fraction: Fraction of the non-validation rows held out for testing (stratified
            for classification); 0 when the test rows come from a separate file.
        valid_fraction: Validation fraction for ``stratified`` and ``latest``.
        column: Trusted column for ``column``.
        timestamp_column: Time column for ``latest``.
        source: File name for error messages.

    Returns:
        ``pd.Series`` of split names aligned with ``df``.

    Raises:
        InputError: a missing or malformed column, an unparseable timestamp, or a split that
            leaves fewer than 10 validation or 10 training rows.
    """
    rng = np.random.default_rng(seed)
    n = len(df)
    labels = df[target].astype(str).to_numpy() if task == "classification" else None
    split = np.full(n, "train", dtype=object)
    if strategy == "column":
        if column not in df.columns:
            raise InputError(f"trusted column {column!r} not found; columns are {list(df.columns)[:10]}.", source=source)
        split[_as_bool(df[column], column, source)] = "validation"
    elif strategy == "stratified":
        split[_random_part(np.arange(n), labels, valid_fraction, rng)] = "validation"
    elif strategy == "latest":
        if timestamp_column not in df.columns:
            raise InputError(f"timestamp column {timestamp_column!r} not found; columns are {list(df.columns)[:10]}.", source=source)
        raw = df[timestamp_column]
        times = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed")
        bad = times.isna().to_numpy()
        if bad.any():
            first = df.index[bad][0]
            raise InputError(
                f"timestamp column {timestamp_column!r} has {int(bad.sum())} value(s) that do not parse as dates, "
                f"first at row {first}: {raw.iloc[int(np.flatnonzero(bad)[0])]!r}. Fix them or use another strategy.",
                source=source,
            )
        k = int(round(valid_fraction * n))
        order = np.argsort(times.to_numpy(), kind="stable")
        split[order[n - k:]] = "validation"
    elif strategy != "file":
        raise InputError(f"unknown validation strategy {strategy!r}.", source=source)

    n_valid = int((split == "validation").sum())
    if strategy != "file" and n_valid < MIN_VALIDATION_ROWS:
        raise InputError(
            f"the '{strategy}' validation split has {n_valid} rows; at least {MIN_VALIDATION_ROWS} are needed "
            "(add trusted rows or raise validation.fraction).",
            source=source,
        )
    rest = np.flatnonzero(split == "train")
    if test_fraction > 0:
        test_pos = _random_part(rest, None if labels is None else labels[rest], test_fraction, rng)
        split[rest[test_pos]] = "test"
    n_train = int((split == "train").sum())
    if n_train < MIN_TRAIN_ROWS:
        raise InputError(
            f"only {n_train} training rows are left after the validation and test splits; "
            f"at least {MIN_TRAIN_ROWS} are needed.",
            source=source,
        )
    if labels is not None:
        train_classes = set(labels[split == "train"])
        missing = sorted(set(labels) - train_classes)
        if missing:
            warnings.warn(f"class(es) {missing[:5]} have no training rows after splitting.", stacklevel=2)
    return pd.Series(split, index=df.index, name="split")
