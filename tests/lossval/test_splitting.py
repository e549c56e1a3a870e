"""Split strategies: sizes, stratification, and clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lossval.errors import InputError
from lossval.splitting import assign_splits


def _frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=n), "y": np.where(np.arange(n) % 4 == 0, "rare", "common"),
                         "trusted": np.arange(n) % 10 == 0,
                         "ts": pd.date_range("2026-01-01", periods=n, freq="h").astype(str)})


def test_stratified_keeps_class_proportions_in_every_split() -> None:
    df = _frame()
    split = assign_splits(df, strategy="stratified", target="y", task="classification", seed=1, test_fraction=0.25,
                          valid_fraction=0.2)
    assert (split == "validation").sum() == 40  # 20% of 50 rare + 20% of 150 common
    for part in ("validation", "test", "train"):
        rare = (df["y"][split == part] == "rare").mean()
        assert abs(rare - 0.25) < 0.02
    assert assign_splits(df, strategy="stratified", target="y", task="classification", seed=1,
                         test_fraction=0.25).equals(split)  # seeded


def test_column_and_latest_strategies() -> None:
    df = _frame()
    split = assign_splits(df, strategy="column", column="trusted", target="y", task="classification", seed=0,
                          test_fraction=0.2)
    assert (split[df["trusted"]] == "validation").all() and (split[~df["trusted"]] != "validation").all()
    latest = assign_splits(df, strategy="latest", timestamp_column="ts", valid_fraction=0.1, target="y",
                           task="classification", seed=0, test_fraction=0.2)
    assert latest.iloc[-20:].eq("validation").all() and not latest.iloc[:-20].eq("validation").any()


def test_file_strategy_and_no_test_rows() -> None:
    split = assign_splits(_frame(), strategy="file", target="y", task="classification", seed=0, test_fraction=0.0)
    assert set(split) == {"train"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "column", "column": "nope"}, "trusted column 'nope' not found"),
        ({"strategy": "column", "column": "x"}, "must be boolean"),
        ({"strategy": "latest", "timestamp_column": "y"}, "do not parse as dates"),
        ({"strategy": "stratified", "valid_fraction": 0.01}, "at least 10 are needed"),
    ],
)
def test_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        assign_splits(_frame(), target="y", task="classification", seed=0, test_fraction=0.2, **kwargs)
