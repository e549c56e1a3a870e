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


def test_a_class_of_two_or_three_rows_gets_one_validation_row_and_keeps_one_for_training() -> None:
    df = pd.DataFrame({"x": np.arange(103, dtype=float), "y": ["common"] * 98 + ["two"] * 2 + ["three"] * 3})
    split = assign_splits(df, strategy="stratified", target="y", task="classification", seed=0, test_fraction=0.0)
    counts = pd.crosstab(df["y"], split)
    assert counts.loc["two"].tolist() == [1, 1] and counts.loc["three"].tolist() == [2, 1]  # train, validation
    assert counts.loc["common", "validation"] == 20  # round(0.2 * 98), as before
    lopsided = assign_splits(df, strategy="stratified", target="y", task="classification", seed=0, test_fraction=0.0,
                             valid_fraction=0.9)
    assert pd.crosstab(df["y"], lopsided).loc["two"].tolist() == [1, 1]  # round(1.8) would leave no training row


@pytest.mark.parametrize(("kwargs", "message"), [({"valid_fraction": -0.2}, "valid_fraction"),
                                                 ({"valid_fraction": 1.0}, "valid_fraction"),
                                                 ({"test_fraction": -0.1}, "test_fraction"),
                                                 ({"test_fraction": 1.0}, "test_fraction")])
def test_fractions_out_of_range_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        assign_splits(_frame(), **{"strategy": "stratified", "target": "y", "task": "classification", "seed": 0,
                                   "test_fraction": 0.2, **kwargs})


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
        ({"strategy": "latest", "timestamp_column": "y"}, "do not parse as dates in one format"),
        ({"strategy": "stratified", "valid_fraction": 0.01}, r"at least 10 are needed \(raise validation.fraction"),
        ({"strategy": "column", "column": "few"}, r"'column' validation split has 4 rows; at least 10 are needed "
                                                  r"\(mark more rows true in column 'few'\)"),
    ],
)
def test_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        assign_splits(_frame().assign(few=lambda d: d.index < 4), target="y", task="classification", seed=0,
                      test_fraction=0.2, **kwargs)


def _latest(ts: list, **kw) -> list:
    n = len(ts)
    df = pd.DataFrame({"x": np.arange(n, dtype=float), "y": np.arange(n) % 2, "ts": ts})
    split = assign_splits(df, strategy="latest", timestamp_column="ts", valid_fraction=0.25, target="y",
                          task="classification", seed=0, test_fraction=0.0, **kw)
    return sorted(df.index[split == "validation"])


def test_latest_reads_a_day_first_column_one_way_for_every_row() -> None:
    days = pd.date_range("2026-01-01", periods=40, freq="D")
    # 01/02 ... 12/01: a per-value ("mixed") parse reads the ones with day <= 12 month-first
    dd_mm = [d.strftime("%d/%m/%Y") for d in days]
    assert _latest(dd_mm) == list(range(30, 40))
    mm_dd = [d.strftime("%m/%d/%Y") for d in days]
    assert _latest(mm_dd) == list(range(30, 40))
    iso_mixed_precision = [d.strftime("%Y-%m-%d") if i % 2 else d.strftime("%Y-%m-%dT%H:%M:%S+00:00")
                           for i, d in enumerate(days)]
    assert _latest(iso_mixed_precision) == list(range(30, 40))
    assert _latest(list(days)) == list(range(30, 40))  # datetime dtype
    assert _latest(list(range(40))) == list(range(30, 40))  # numbers (e.g. epoch seconds) are ordered as they are


def test_latest_refuses_dates_that_read_both_ways_and_pick_different_rows() -> None:
    # Every value parses both month-first and day-first; the two readings disagree on the latest rows.
    ts = [f"{m:02d}/{d:02d}/2026" for m, d in zip([1] * 20 + [2] * 20, list(range(1, 13)) * 4)][:40]
    with pytest.raises(InputError, match="ambiguous.*YYYY-MM-DD"):
        _latest(ts)


def test_latest_refuses_a_column_with_two_date_formats() -> None:
    ts = [f"2026-01-{d:02d}" for d in range(1, 21)] + [f"{d:02d}/02/2026" for d in range(1, 21)]
    with pytest.raises(InputError, match=r"20 value\(s\) that do not parse as dates in one format, first at row 20"):
        _latest(ts)


@pytest.mark.parametrize("strategy", ["stratified", "column"])
def test_rows_that_arrive_later_leave_the_others_in_their_split(strategy: str) -> None:
    # A nightly run sees yesterday's rows plus new ones: yesterday's trusted and test rows must not
    # churn (with a permutation, appending 100 rows to 700 moved 337 of them to another split).
    from lossval.io import assign_row_ids

    df = _frame(800)
    df.insert(0, "row_id", assign_row_ids(df).to_numpy())
    common = dict(strategy=strategy, column="trusted", target="y", task="classification", seed=3, test_fraction=0.25)
    before = assign_splits(df.iloc[:700], **common)
    after = assign_splits(df, **common).iloc[:700]
    moved = int((before != after).sum())
    assert moved <= 10, moved  # only the few that keep each part at its share (3 here)
    shuffled = df.sample(frac=1.0, random_state=0)
    assert assign_splits(shuffled, **common).sort_index().equals(assign_splits(df, **common))  # order does not matter
    assert not assign_splits(df, **{**common, "seed": 4}).equals(assign_splits(df, **common))  # the seed does


def test_latest_refuses_times_with_and_without_a_utc_offset_in_one_column() -> None:
    hours = pd.date_range("2026-03-01 08:00", periods=40, freq="h")
    with_offset = [t.strftime("%Y-%m-%dT%H:%M:%S") + "+05:00" for t in hours]
    assert _latest(with_offset) == list(range(30, 40))  # all with an offset: fine
    assert _latest([t.strftime("%Y-%m-%d %H:%M") for t in hours]) == list(range(30, 40))  # none: fine
    mixed = with_offset[:20] + [t.strftime("%Y-%m-%d %H:%M") for t in hours[20:]]
    with pytest.raises(InputError, match=r"mixes times with a UTC offset \(20, e\.g\. row 0: '2026-03-01T08:00:00\+05:00'"
                                         r"\) and without one \(20, e\.g\. row 20: '2026-03-02 04:00'\)"):
        _latest(mixed)


def test_labels_that_differ_only_in_case_or_spaces_are_warned_about() -> None:
    from lossval.splitting import check_validation

    y = pd.Series(["yes"] * 30 + ["Yes "] * 6 + ["no"] * 30)
    with pytest.warns(UserWarning, match=r"d.csv: target 'y' has labels that differ only in case or spaces \('Yes ', "
                                         r"'yes'\)"):
        check_validation(y, y, task="classification", target="y", source="d.csv")


def test_a_class_much_rarer_in_validation_than_in_training_is_warned_about() -> None:
    import warnings

    from lossval.splitting import check_validation

    train = pd.Series(["a"] * 50 + ["b"] * 50)
    with pytest.warns(UserWarning, match=r"v.csv: class\(es\) of target 'y' much rarer in validation than in training "
                                         r"\('b' 50% of training rows, 5% of validation rows\)"):
        check_validation(train, pd.Series(["a"] * 95 + ["b"] * 5), task="classification", target="y",
                         source="t.csv", validation_source="v.csv")
    with warnings.catch_warnings():  # a minority over-represented in validation (harmless), or about the same share
        warnings.simplefilter("error")
        check_validation(pd.Series(["a"] * 90 + ["b"] * 10), pd.Series(["a"] * 50 + ["b"] * 50), task="classification",
                         target="y")
        check_validation(train, pd.Series(["a"] * 60 + ["b"] * 40), task="classification", target="y")


def test_the_shared_rows_warning_says_when_the_data_repeats_itself_anyway() -> None:
    from lossval.splitting import shared_rows, shared_rows_note

    rng = np.random.default_rng(0)
    coarse = pd.DataFrame({"a": rng.integers(0, 3, 400), "b": rng.integers(0, 2, 400), "id": np.arange(400)})
    valid = pd.DataFrame({"a": rng.integers(0, 3, 40), "b": rng.integers(0, 2, 40), "id": np.arange(40)})
    assert shared_rows(valid, coarse, ignore=("id",)).all()  # six combinations: every row has a twin by chance
    assert shared_rows_note(valid, coarse, ignore=("id",)).startswith(" (the data repeats 100% of its own rows")
    fine = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    copied = fine.iloc[:5].copy()
    assert shared_rows(copied, fine).all() and shared_rows_note(copied, fine) == ""  # real copies: no excuse offered
