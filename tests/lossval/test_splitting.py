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
        ({"strategy": "column", "column": "one"}, r"'column' validation split has 1 row; at least 10 are needed "),
    ],
)
def test_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        assign_splits(_frame().assign(few=lambda d: d.index < 4, one=lambda d: d.index < 1), target="y",
                      task="classification", seed=0, test_fraction=0.2, **kwargs)


def _latest(ts: list, **kw) -> list:
    n = len(ts)
    df = pd.DataFrame({"x": np.arange(n, dtype=float), "y": np.arange(n) % 2, "ts": ts})
    split = assign_splits(df, strategy="latest", timestamp_column="ts", valid_fraction=0.25, target="y",
                          task="classification", seed=0, test_fraction=0.0, **kw)
    return sorted(df.index[split == "validation"])


@pytest.mark.parametrize("gap", [None, "", "  ", np.nan])
def test_latest_names_a_missing_time_as_missing(gap) -> None:
    # Seen by a review: an empty cell was "a value that does not parse as dates in one format".
    days = [d.strftime("%Y-%m-%d") for d in pd.date_range("2026-01-01", periods=40, freq="D")]
    days[7] = days[9] = gap
    with pytest.raises(InputError, match=r"timestamp column 'ts' has 2 missing value\(s\), first at row 7; the "
                                         r"'latest' split needs every row's time"):
        _latest(days)
    as_dates = pd.to_datetime(pd.Series(days), errors="coerce")  # a parquet datetime column: NaT
    with pytest.raises(InputError, match="has 2 missing value"):
        _latest(list(as_dates))
    with pytest.raises(InputError, match="has 1 missing value"):  # numbers (epoch seconds)
        _latest([float(i) if i != 3 else np.nan for i in range(40)])


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
    # Only the few that keep each part at its share: over seeds 0-29, 4-16 (stratified) and 1-12 (column).
    assert moved <= 25, moved
    shuffled = df.sample(frac=1.0, random_state=0)
    assert assign_splits(shuffled, **common).sort_index().equals(assign_splits(df, **common))  # order does not matter
    assert not assign_splits(df, **{**common, "seed": 4}).equals(assign_splits(df, **common))  # the seed does


def test_latest_refuses_times_with_and_without_a_utc_offset_in_one_column() -> None:
    hours = pd.date_range("2026-03-01 08:00", periods=40, freq="h")
    with_offset = [t.strftime("%Y-%m-%dT%H:%M:%S") + "+05:00" for t in hours]
    assert _latest(with_offset) == list(range(30, 40))  # all with an offset: fine
    assert _latest([t.strftime("%Y-%m-%d %H:%M") for t in hours]) == list(range(30, 40))  # none: fine
    mixed = with_offset[:20] + [t.strftime("%Y-%m-%d %H:%M") for t in hours[20:]]
    with pytest.raises(InputError, match=r"mixes times with a UTC offset \(20, e\.g\. at row 0: "
                                         r"'2026-03-01T08:00:00\+05:00'\) and without one \(20, e\.g\. at row 20: '2026-03-02 04:00'\)"):
        _latest(mixed)


@pytest.mark.parametrize("suffix", ["+02", " +02", " UTC+02:00", "-0530"])
def test_latest_knows_short_and_named_utc_offsets_when_it_refuses_a_mix(suffix: str) -> None:
    # "+02" and "UTC+02:00" parse, and were taken for times without an offset: the mix was read as one clock.
    hours = pd.date_range("2026-03-01 08:00", periods=40, freq="h")
    assert _latest([t.strftime("%Y-%m-%d %H:%M") + suffix for t in hours]) == list(range(30, 40))
    mixed = [t.strftime("%Y-%m-%d %H:%M") + suffix for t in hours[:20]] + [t.strftime("%Y-%m-%d %H:%M")
                                                                            for t in hours[20:]]
    with pytest.raises(InputError, match=r"mixes times with a UTC offset \(20"):
        _latest(mixed)


@pytest.mark.parametrize("suffix", [" +02", " UTC", " Z"])
def test_latest_knows_a_utc_offset_after_am_or_pm(suffix: str) -> None:
    # "1:30 PM +02" was taken for a time without an offset: a column mixing it with "1:30 PM" was read as one clock.
    hours = pd.date_range("2026-03-01 08:00", periods=40, freq="h")
    with_offset = [t.strftime("%Y-%m-%d %I:%M %p") + suffix for t in hours]
    assert _latest(with_offset) == list(range(30, 40))
    with pytest.raises(InputError, match=r"mixes times with a UTC offset \(20"):
        _latest(with_offset[:20] + [t.strftime("%Y-%m-%d %I:%M %p") for t in hours[20:]])


def test_a_dash_between_date_and_time_is_not_a_utc_offset() -> None:
    # 2026-03-01-08:00 parses as 08:00 with no offset; it was taken for one of -08:00, so a column that mixed it with
    # offset times passed the check (and one that mixed it with plain times was refused for mixing).
    from lossval.splitting import _refuse_mixed_offsets

    def check(values: list[str]) -> None:
        _refuse_mixed_offsets(pd.Series(values), "ts", pd.RangeIndex(len(values)), "d.csv")

    check(["2026-03-01-08:00", "2026-03-01 09:00", "2026-03-01-10:30:15"])
    with pytest.raises(InputError, match=r"mixes times with a UTC offset \(1, e\.g\. at row 1: "
                                         r"'2026-03-01-09:00\+05:00'\) and without one \(1, e\.g\. at row 0: '2026-03-01-08:00'\)"):
        check(["2026-03-01-08:00", "2026-03-01-09:00+05:00"])
    hours = pd.date_range("2026-03-01 08:00", periods=40, freq="h")
    assert _latest([t.strftime("%Y-%m-%d-%H:%M") for t in hours]) == list(range(30, 40))


def test_latest_refuses_gmt_plus_an_hour_whose_sign_parsers_read_backwards() -> None:
    # dateutil reads "GMT+2" as two hours behind UTC: 10:00 GMT+2 became 12:00 UTC, not 08:00.
    hours = pd.date_range("2026-03-01 08:00", periods=40, freq="h")
    with pytest.raises(InputError, match=r"'2026-03-01 08:00 GMT\+2' \(at row 0\).*as \+02:00"):
        _latest([t.strftime("%Y-%m-%d %H:%M") + " GMT+2" for t in hours])


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


@pytest.mark.parametrize("strategy", ["stratified", "latest", "file"])
def test_copies_of_a_row_land_in_the_same_split(strategy: str) -> None:
    # Rows without an id column get ids h, h#2...: the copies were drawn independently, and 25 of 30 copied
    # pairs straddled two splits, so a test row was also trained on and a validation row valued its own copy.
    from lossval.io import assign_row_ids

    base = _frame(300)
    df = pd.concat([base, base.iloc[::10], base.iloc[::30]], ignore_index=True)  # 30 rows twice, 10 three times
    df.insert(0, "row_id", assign_row_ids(df).to_numpy())
    split = assign_splits(df, strategy=strategy, timestamp_column="ts", target="y", task="classification", seed=0,
                          test_fraction=0.25)
    groups = split.groupby(df["row_id"].str.replace(r"#\d+$", "", regex=True)).nunique()
    assert (groups == 1).all(), f"{int((groups > 1).sum())} groups of copies straddle splits"
    assert 0.22 < (split == "test").sum() / (split != "validation").sum() < 0.28  # whole groups: about the share
    # Ids of your own mark distinct rows, identical or not: those are drawn one by one as before.
    own = df.assign(row_id=[f"r{i}" for i in range(len(df))])
    apart = assign_splits(own, strategy=strategy, timestamp_column="ts", target="y", task="classification", seed=0,
                          test_fraction=0.25, id_column="row_id")
    if strategy != "latest":  # latest: copies share their timestamp, so the latest rows take both anyway
        assert (apart.groupby(df["row_id"].str.replace(r"#\d+$", "", regex=True)).nunique() > 1).any()


def test_a_cut_inside_a_group_of_copies_moves_to_its_end_unless_that_empties_a_side() -> None:
    from lossval.splitting import _whole_groups

    # Ranked keys 5 5 5 7 7: a cut at 1 or 2 falls inside the 5s and moves to their end, 3 (never fewer rows than
    # asked: a validation split keeps its minimum); at 4 the end would take every row, so it moves to the start.
    keys = np.array([5, 5, 5, 7, 7], dtype=np.uint64)
    assert _whole_groups(keys, 1) == 3 and _whole_groups(keys, 2) == 3 and _whole_groups(keys, 4) == 3
    assert _whole_groups(keys, 3) == 3 and _whole_groups(keys, 0) == 0 and _whole_groups(keys, 5) == 5
    same = np.array([9, 9, 9], dtype=np.uint64)
    assert _whole_groups(same, 1) == 1  # only parting the copies leaves a row on each side


def test_the_latest_rows_take_copies_whole_but_part_other_rows_of_the_same_time() -> None:
    from lossval.splitting import _latest

    # Rows 1 and 2 are copies (same time, same draw); row 4 shares their time only. Latest first: 3, then the
    # time-3 rows by draw: 4, then the copies 1 and 2, then 0.
    times = np.array([1, 3, 3, 4, 3])
    draw = np.array([50, 20, 20, 90, 10], dtype=np.uint64)
    assert _latest(times, 2, draw).tolist() == [3, 4]  # a cut between rows of one time that are not copies
    assert _latest(times, 3, draw).tolist() == [1, 2, 3, 4]  # a cut inside the copies moves past them
    assert _latest(times, 4, draw).tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize("test_fraction", [0.3, 0.5])
def test_copies_that_are_a_class_s_last_training_rows_are_not_all_drawn_for_testing(test_fraction: float) -> None:
    # A review found 3 copies of one class-'c' row: validation parts them (one must go there), and the test draw
    # then took both remaining copies (the cut moved to the group's end), leaving 'c' no training row: refused.
    from lossval.io import assign_row_ids

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=60), "y": np.where(np.arange(60) % 2 == 0, "a", "b")})
    df = pd.concat([df, pd.DataFrame({"x": [7.0] * 3, "y": ["c"] * 3})], ignore_index=True)
    df.insert(0, "row_id", assign_row_ids(df).to_numpy())
    for seed in range(20):
        split = assign_splits(df, strategy="stratified", target="y", task="classification", seed=seed,
                              test_fraction=test_fraction)
        assert (split[df["y"] == "c"] == "train").any()


def test_copies_kept_together_never_shrink_a_split_below_its_minimum() -> None:
    # With the cut moved to a group's nearer end, 44 rows plus one row 6 times drew 9 validation rows (10 needed)
    # for some seeds, where the row-by-row draw had drawn 10.
    from lossval.io import assign_row_ids

    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x": rng.normal(size=44), "t": rng.normal(size=44)})
    df = pd.concat([df, pd.DataFrame({"x": [0.5] * 6, "t": [1.5] * 6})], ignore_index=True)
    df.insert(0, "row_id", assign_row_ids(df).to_numpy())
    for seed in range(40):
        split = assign_splits(df, strategy="stratified", target="t", task="regression", seed=seed, test_fraction=0.2)
        assert (split == "validation").sum() >= 10


def test_a_row_keeps_its_id_and_split_when_another_row_turns_its_column_float() -> None:
    # One 2.5 appended to a column of whole numbers made pandas read it as float; every row's content hash
    # changed, and 85 of 200 rows moved to another split overnight.
    from lossval.io import assign_row_ids

    rng = np.random.default_rng(1)
    df = pd.DataFrame({"count": rng.integers(0, 50, 200), "flag": rng.integers(0, 2, 200).astype(bool),
                       "y": np.where(np.arange(200) % 3 == 0, "a", "b")})
    grown = pd.concat([df.astype({"flag": int}), pd.DataFrame({"count": [2.5], "flag": [1], "y": ["a"]})],
                      ignore_index=True)
    assert grown["count"].dtype == float and grown["flag"].dtype == "int64"
    before, after = assign_row_ids(df), assign_row_ids(grown)
    assert before.equals(after.iloc[:200])
    common = dict(strategy="stratified", target="y", task="classification", seed=2, test_fraction=0.25)
    moved = (assign_splits(df.assign(row_id=before), **common)
             != assign_splits(grown.assign(row_id=after), **common).iloc[:200])
    assert int(moved.sum()) <= 3


def test_latest_breaks_a_tie_at_its_cut_by_the_rows_ids_not_their_order_in_the_file() -> None:
    from lossval.io import assign_row_ids

    # 80 rows, 10 per day: the latest 15% (12 rows) are the last day's 10 and 2 of the 10 of the day before.
    days = [f"2026-01-0{d}" for d in range(1, 9)]
    df = pd.DataFrame({"x": np.arange(80.0), "y": np.arange(80) % 2, "ts": np.repeat(days, 10)})
    df.insert(0, "row_id", assign_row_ids(df).to_numpy())
    common = dict(strategy="latest", timestamp_column="ts", valid_fraction=0.15, target="y", task="classification",
                  seed=0, test_fraction=0.0)
    split = assign_splits(df, **common)
    picked = df["ts"][split == "validation"]
    assert len(picked) == 12 and picked.eq("2026-01-08").sum() == 10
    reversed_file = df.iloc[::-1]
    assert assign_splits(reversed_file, **common).sort_index().equals(split)  # by row order: 2 other rows of day 7
    assert not assign_splits(df, **{**common, "seed": 5}).equals(split)


def test_one_large_integer_moves_no_other_row_s_id_and_hides_no_shared_row() -> None:
    # Deciding int-or-float per column by its largest value let one 2**60 sentinel re-id every row of the column,
    # hide an identical curated row from the leak check, and crash first_shared_row (a one-row slice hashed
    # differently from the whole frame).
    from lossval.io import assign_row_ids
    from lossval.splitting import first_shared_row, shared_rows

    small = pd.DataFrame({"n": [5, 7, 9], "y": [0, 1, 0]})
    grown = pd.concat([small, pd.DataFrame({"n": [2 ** 60], "y": [1]})], ignore_index=True)
    assert assign_row_ids(grown).iloc[:3].tolist() == assign_row_ids(small).tolist()
    curated = pd.DataFrame({"n": [9.0, 2.0 ** 60], "y": [0.0, 1.0]})
    shared = shared_rows(curated, grown)
    assert shared.tolist() == [True, True]
    assert first_shared_row(curated, grown, shared) == "row 0 (data row 2)"
    codes = pd.DataFrame({"n": pd.Categorical([5, 7, 9]), "y": [0, 1, 0]})  # a parquet file read back as category
    assert shared_rows(codes, small).all()


def test_shared_rows_match_numbers_stored_as_int_in_one_file_and_float_in_the_other() -> None:
    from lossval.splitting import first_shared_row, shared_rows

    data = pd.DataFrame({"a": np.arange(30), "b": np.arange(30) * 2, "y": np.arange(30) % 2})
    curated = data.iloc[:6].astype(float).reset_index(drop=True)  # a parquet file of floats: same rows
    assert shared_rows(curated, data).all()
    assert first_shared_row(curated, data, shared_rows(curated, data)) == "row 0 (data row 0)"


def test_a_blank_or_odd_cell_in_the_trusted_column_is_named_plainly() -> None:
    # A blank cell was shown as "np.float64(nan)", which names neither the problem nor the fix.
    df = _frame().assign(trusted=lambda d: (d.index % 10 == 0).astype(float))
    df.loc[3, "trusted"] = np.nan
    with pytest.raises(InputError, match=r"at row 3 it has an empty value \(mark every row true or false\)\.$"):
        assign_splits(df, strategy="column", column="trusted", target="y", task="classification", seed=0,
                      test_fraction=0.2)
    df.loc[3, "trusted"] = 2.0
    with pytest.raises(InputError, match=r"at row 3 it has 2\.0\.$"):
        assign_splits(df, strategy="column", column="trusted", target="y", task="classification", seed=0,
                      test_fraction=0.2)
    twice = pd.concat([df, df])  # a frame with a repeated index (library callers): still an InputError
    with pytest.raises(InputError, match=r"at row 3 it has 2\.0\.$"):
        assign_splits(twice, strategy="column", column="trusted", target="y", task="classification", seed=0,
                      test_fraction=0.2)


def test_the_column_strategy_reads_yes_no_and_refuses_splits_that_cannot_value() -> None:
    # The audit found that mapping "yes" to False, dropping the training-row minimum or the class check left this
    # file passing.
    df = _frame(60)
    words = np.where(np.arange(60) % 5 == 0, " Yes", "no")
    split = assign_splits(df.assign(trusted=words), strategy="column", column="trusted", target="y",
                          task="classification", seed=0, test_fraction=0.0)
    assert (split == "validation").to_numpy().tolist() == (np.arange(60) % 5 == 0).tolist()
    few = df.assign(trusted=np.arange(60) >= 5)  # 5 rows left to train on, of both classes
    with pytest.raises(InputError, match="only 5 training rows are left after the validation and test splits"):
        assign_splits(few, strategy="column", column="trusted", target="y", task="classification", seed=0,
                      test_fraction=0.0)
    only_rare_trusted = df.assign(trusted=(df["y"] == "rare").to_numpy())
    with pytest.raises(InputError, match=r"class\(es\) 'common' \(45 training rows\) of target 'y' have no validation"):
        assign_splits(only_rare_trusted, strategy="column", column="trusted", target="y", task="classification",
                      seed=0, test_fraction=0.0)
