"""Tests for lossval.encoding.TabularEncoder: values on hand examples, layout, errors."""

from __future__ import annotations

import io
import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from lossval.encoding import OTHER_LEVEL, TabularEncoder
from lossval.errors import ConfigError, InputError, UnseenLevelsWarning


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": [1.0, 2.0, 3.0, 6.0],
            "colour": ["red", "blue", "red", "green"],
            "y": ["cat", "dog", "cat", "dog"],
        }
    )


# ---------------------------------------------------------------- encoding values


def test_standardisation_exact_on_hand_example():
    # mean 3, population std sqrt(((1-3)^2+(2-3)^2+(3-3)^2+(6-3)^2)/4) = sqrt(14/4); with under
    # 20 rows nothing is clipped before the statistics are taken (see the next test)
    enc = TabularEncoder(target="y").fit(_frame())
    std = np.sqrt(14.0 / 4.0)
    assert enc.means_.tolist() == [3.0]
    assert enc.scales_[0] == pytest.approx(std, rel=1e-15)
    X = enc.transform(_frame())
    assert X.dtype == np.float32
    expected = ((np.array([1.0, 2.0, 3.0, 6.0]) - 3.0) / std).astype(np.float32)
    np.testing.assert_array_equal(X[:, 0], expected)
    # new rows use the training statistics, not their own
    X_new = enc.transform(pd.DataFrame({"x": [3.0 + std], "colour": ["red"]}))
    assert X_new[0, 0] == pytest.approx(1.0, abs=1e-6)


def test_one_typo_does_not_set_a_column_s_scale():
    rng = np.random.default_rng(0)
    x = rng.normal(loc=50.0, scale=10.0, size=2000)
    typo = x.copy()
    typo[7] = 1e5  # e.g. an age of 100000
    fit = lambda v: TabularEncoder(target="y").fit(pd.DataFrame({"x": v, "y": np.arange(2000) % 2}))  # noqa: E731
    clean, with_typo = fit(x), fit(typo)
    assert clean.means_[0] == pytest.approx(x.mean(), rel=1e-12) and clean.scales_[0] == pytest.approx(x.std(), rel=1e-12)
    assert with_typo.means_[0] == pytest.approx(x.mean(), abs=0.1) and with_typo.scales_[0] == pytest.approx(x.std(), rel=0.01)
    assert np.std(typo) > 200  # what the plain statistics would have used as the scale
    assert with_typo.transform(pd.DataFrame({"x": [1e5]}))[0, 0] > 9000  # the row itself is not clipped


def test_one_hot_layout_sorted_and_in_column_order():
    df = pd.DataFrame(
        {
            "colour": ["red", "blue", "red", "green"],
            "x": [0.0, 1.0, 0.0, 1.0],
            "size": [10, 2, 2, 10],
            "y": [0, 1, 0, 1],
        }
    )
    enc = TabularEncoder(target="y", categorical=["size"])
    X = enc.fit_transform(df)
    assert enc.feature_columns_ == ["colour", "x", "size"]
    assert enc.numeric_columns_ == ["x"]
    assert enc.categorical_columns_ == ["colour", "size"]
    # levels sorted; numeric levels by value (2 before 10), not as text
    assert enc.encoded_names_ == ["colour=blue", "colour=green", "colour=red", "x", "size=2", "size=10"]
    expected = np.array(
        [
            [0, 0, 1, -1, 0, 1],
            [1, 0, 0, 1, 1, 0],
            [0, 0, 1, -1, 1, 0],
            [0, 1, 0, 1, 0, 1],
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(X, expected)
    assert X.shape == (4, len(enc.encoded_names_))


def test_unseen_category_encodes_as_zeros():
    enc = TabularEncoder(target="y").fit(_frame())
    assert enc.encoded_names_ == ["x", "colour=blue", "colour=green", "colour=red"]
    X = enc.transform(pd.DataFrame({"x": [3.0, 3.0], "colour": ["purple", "blue"]}))
    np.testing.assert_array_equal(X[0], [0, 0, 0, 0])
    np.testing.assert_array_equal(X[1], [0, 1, 0, 0])


def test_missing_category_is_its_own_level_and_text_keys_unify_types():
    df = pd.DataFrame({"c": ["a", None, "b", "a"], "code": [1, 2, 1, 2], "y": [0, 1, 0, 1]})
    enc = TabularEncoder(target="y", categorical=["code"]).fit(df)
    assert enc.categories_["c"] == ["__missing__", "a", "b"]
    # "1" (CSV text) and 1.0 (float after a NaN elsewhere) land in the same column as 1
    X = enc.transform(pd.DataFrame({"c": [np.nan, "b"], "code": ["1", "2"]}))
    Y = enc.transform(pd.DataFrame({"c": [None, "b"], "code": [1.0, 2.0]}))
    np.testing.assert_array_equal(X, [[1, 0, 0, 1, 0], [0, 0, 1, 0, 1]])
    np.testing.assert_array_equal(X, Y)


def test_blank_text_in_a_categorical_column_is_the_missing_level():
    # A CSV reads an empty cell as NaN (the missing level), a parquet file keeps "" and a CSV "  " as text: the same
    # blank was three levels, and "" at serving time (a form's empty field) encoded as an unseen level (all zeros).
    df = pd.DataFrame({"c": ["a", None, "b", "a", "", "  "], "y": [0, 1, 0, 1, 0, 1]})
    enc = TabularEncoder(target="y").fit(df)
    assert enc.categories_["c"] == ["__missing__", "a", "b"]
    X = enc.transform(pd.DataFrame({"c": ["", " ", None, np.nan, "a"]}))
    np.testing.assert_array_equal(X, [[1, 0, 0]] * 4 + [[0, 1, 0]])
    np.testing.assert_array_equal(enc.transform(df.astype({"c": "category"})), enc.transform(df))
    # An encoder fitted before the rule may hold "" as a level of its own: "" still lands there.
    d = enc.to_dict()
    [col] = [c for c in d["fitted"]["columns"] if c["name"] == "c"]
    col["levels"] = ["", "__missing__", "a", "b"]
    old = TabularEncoder.from_dict(d)
    np.testing.assert_array_equal(old.transform(pd.DataFrame({"c": ["", None, "  "]})),
                                  [[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0]])


def test_numbers_with_decimal_commas_are_warned_about_not_one_hot_encoded_silently():
    # A newcomer's review: a quoted "0,5", "1,25" column became price=0,5, price=1,25 ... with no word.
    df = pd.DataFrame({"price": [f"{i % 5},{i % 2}5" for i in range(40)], "y": [0, 1] * 20})
    with pytest.warns(UserWarning, match=r"column 'price' was read as categorical: 40 of 40 values look like numbers "
                                         r"with a decimal comma \(e.g. '0,05' at row 0\)"):
        TabularEncoder(target="y").fit(df)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TabularEncoder(target="y", categorical=["price"]).fit(df)  # declared: nothing to say
        TabularEncoder(target="y").fit(df.assign(price=["red", "blue"] * 20))


def test_a_float32_level_matches_the_same_float64_level():
    df = pd.DataFrame({"rate": np.array([0.1, 0.2, 0.1, 0.2], dtype=np.float32), "y": [0, 1, 0, 1]})
    enc = TabularEncoder(target="y", categorical=["rate"]).fit(df)
    assert enc.categories_["rate"] == ["0.1", "0.2"]  # not 0.10000000149011612
    X = enc.transform(pd.DataFrame({"rate": [0.1, 0.2]}))  # float64, e.g. a CSV read later
    np.testing.assert_array_equal(X, [[1, 0], [0, 1]])


def test_max_categories_folds_rare_levels_into_other():
    df = pd.DataFrame({"c": ["a"] * 3 + ["b"] * 2 + ["c", "d"], "y": [0, 1] * 3 + [0]})
    enc = TabularEncoder(target="y", max_categories=2).fit(df)
    assert enc.categories_["c"] == ["a", "b", OTHER_LEVEL]
    X = enc.transform(pd.DataFrame({"c": ["a", "c", "d", "never-seen"]}))
    np.testing.assert_array_equal(X, [[1, 0, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1]])


def test_bool_column_is_categorical():
    df = pd.DataFrame({"flag": [True, False, True], "y": [1.0, 2.5, 3.0]})
    enc = TabularEncoder(target="y").fit(df)
    assert enc.categorical_columns_ == ["flag"]
    assert enc.encoded_names_ == ["flag=False", "flag=True"]
    np.testing.assert_array_equal(enc.transform(df), [[0, 1], [1, 0], [0, 1]])


def test_numbers_stored_as_text_are_numeric():
    df = pd.DataFrame({"x": ["1", "2", "3", "6"], "y": [0, 1, 0, 1]})
    enc = TabularEncoder(target="y").fit(df)
    assert enc.numeric_columns_ == ["x"]
    assert enc.means_.tolist() == [3.0]


def test_exclude_and_features():
    df = pd.DataFrame({"id": [1, 2, 3], "a": [1.0, 2.0, 4.0], "b": [0.0, 1.0, 0.0], "y": [0, 1, 0]})
    assert TabularEncoder(target="y", exclude=["id"]).fit(df).feature_columns_ == ["a", "b"]
    assert TabularEncoder(target="y", features=["b", "a"]).fit(df).feature_columns_ == ["b", "a"]
    assert TabularEncoder(target="y", features=["a", "b"], exclude=["b"]).fit(df).feature_columns_ == ["a"]


# ------------------------------------------------------------------------ save/load


def test_json_round_trip_gives_identical_bytes(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "x": rng.normal(size=30) * 1e3 + 0.1,
            "z": rng.integers(0, 100, size=30),
            "c": rng.choice(["a", "b", "c", None], size=30),
            "k": rng.choice([1, 2, 3], size=30),
            "y": rng.choice(["p", "q"], size=30),
        }
    )
    enc = TabularEncoder(target="y", categorical=["k"], source="train.csv").fit(df)
    path = tmp_path / "encoder.json"
    enc.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["encoder.json"]  # no temp file left behind
    loaded = TabularEncoder.load(path)
    new = df.sample(frac=1.0, random_state=1).assign(c=lambda d: d["c"].fillna("unseen"))
    assert enc.transform(new).tobytes() == loaded.transform(new).tobytes()
    assert loaded.encoded_names_ == enc.encoded_names_
    assert loaded.classes_ == ["p", "q"]
    assert loaded.source == "train.csv"
    np.testing.assert_array_equal(loaded.encode_target(df["y"]), enc.encode_target(df["y"]))
    # saving again gives the same file: the format is deterministic
    path2 = tmp_path / "again.json"
    loaded.save(path2)
    assert path2.read_text() == path.read_text()
    assert json.loads(path.read_text())["format"] == "lossval.TabularEncoder"


def test_save_overwrites_atomically(tmp_path):
    path = tmp_path / "enc.json"
    path.write_text("old")
    TabularEncoder(target="y").fit(_frame()).save(path)
    assert TabularEncoder.load(path).encoded_names_[0] == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc.json"]


def test_load_rejects_non_encoder_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(InputError, match="bad.json"):
        TabularEncoder.load(path)
    with pytest.raises(InputError, match="not found"):
        TabularEncoder.load(tmp_path / "absent.json")


# ------------------------------------------------------------------------- targets


def test_string_labels_round_trip(tmp_path):
    enc = TabularEncoder(target="y").fit(_frame())
    assert enc.task_ == "classification"
    assert enc.classes_ == ["cat", "dog"]
    idx = enc.encode_target(pd.Series(["dog", "cat", "dog"]))
    assert idx.dtype == np.int64
    assert idx.tolist() == [1, 0, 1]
    assert enc.decode_target(idx).tolist() == ["dog", "cat", "dog"]
    enc.save(tmp_path / "e.json")
    assert TabularEncoder.load(tmp_path / "e.json").decode_target(np.array([0, 1])).tolist() == ["cat", "dog"]


def test_int_labels_round_trip_keep_int_type(tmp_path):
    df = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [7, 3, 7, 5]})
    enc = TabularEncoder(target="y").fit(df)
    assert enc.classes_ == [3, 5, 7]
    assert all(type(c) is int for c in enc.classes_)
    idx = enc.encode_target(df["y"])
    assert idx.tolist() == [2, 0, 2, 1]
    decoded = enc.decode_target(idx)
    assert decoded.dtype == np.int64
    assert decoded.tolist() == [7, 3, 7, 5]
    enc.save(tmp_path / "e.json")
    loaded = TabularEncoder.load(tmp_path / "e.json")
    assert loaded.classes_ == [3, 5, 7] and all(type(c) is int for c in loaded.classes_)
    assert loaded.encode_target(np.array([5, 3])).tolist() == [1, 0]


def test_regression_target_is_float32():
    df = pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [0.5, 1.25, 9.0]})
    enc = TabularEncoder(target="y").fit(df)
    assert enc.task_ == "regression" and enc.classes_ is None
    out = enc.encode_target(df["y"])
    assert out.dtype == np.float32
    assert out.tolist() == [0.5, 1.25, 9.0]


@pytest.mark.parametrize(
    ("y", "task"),
    [
        (["a", "b", "a", "b"] * 6, "classification"),  # object/string
        ([True, False] * 12, "classification"),  # bool
        (pd.Categorical(["lo", "hi"] * 12), "classification"),  # category
        ([0, 1, 2] * 8, "classification"),  # int, 3 distinct <= 20
        (list(range(20)) + [0, 1, 2, 3], "classification"),  # int, exactly 20 distinct
        (list(range(21)) + [0, 1, 2], "regression"),  # int, 21 distinct
        ([0.0, 1.0] * 12, "regression"),  # float, even with few values
    ],
)
def test_auto_task_detection(y, task):
    df = pd.DataFrame({"x": np.arange(24, dtype=float), "y": y})
    assert TabularEncoder(target="y").fit(df).task_ == task


def test_explicit_task_overrides_auto():
    df = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0.0, 1.0, 0.0, 1.0]})
    enc = TabularEncoder(target="y", task="classification").fit(df)
    assert enc.task_ == "classification" and enc.classes_ == [0.0, 1.0]
    assert enc.encode_target(df["y"]).tolist() == [0, 1, 0, 1]


# ---------------------------------------------------------------- constant columns


def test_constant_column_warns_and_is_dropped():
    df = _frame().assign(const=5, const_cat="same")
    with pytest.warns(UserWarning, match=r"'const'.*'const_cat'|'const_cat'.*'const'") as record:
        enc = TabularEncoder(target="y").fit(df)
    assert len(record) == 1
    assert enc.feature_columns_ == ["x", "colour"]
    assert enc.dropped_columns_ == ["const", "const_cat"]
    # the dropped columns are not needed at transform time
    X = enc.transform(_frame().drop(columns="y"))
    assert X.shape == (4, 4)


def test_a_column_of_tiny_or_huge_magnitude_is_scaled_not_called_constant():
    # numpy's std squares the deviations: at 1e-170 they underflowed to 0, and the column was dropped as constant.
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    df = pd.DataFrame({"tiny": x * 1e-170, "huge": x * 1e200, "y": rng.normal(size=40)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "constant column" warning, no overflow warning
        enc = TabularEncoder(target="y").fit(df)
    assert enc.feature_columns_ == ["tiny", "huge"]
    X = enc.transform(df)
    assert np.allclose(X[:, 0], X[:, 1]) and np.isclose(X[:, 0].std(), 1.0, atol=0.05)


def test_an_empty_column_is_dropped_as_constant_whatever_its_dtype():
    # A CSV gives an empty column float NaN, a parquet file may give it object None: same outcome.
    for empty in (np.full(4, np.nan), pd.Series([None] * 4, dtype=object)):
        with pytest.warns(UserWarning, match="'note'"):
            enc = TabularEncoder(target="y").fit(_frame().assign(note=empty))
        assert enc.dropped_columns_ == ["note"] and enc.feature_columns_ == ["x", "colour"]


def test_decimal_target_is_regression_and_the_encoder_saves(tmp_path):
    from decimal import Decimal

    df = _frame().assign(y=[Decimal("100.35"), Decimal("99.10"), Decimal("101.00"), Decimal("98.75")])
    enc = TabularEncoder(target="y").fit(df)
    assert enc.task_ == "regression" and enc.classes_ is None
    assert np.allclose(enc.encode_target(df["y"]), [100.35, 99.10, 101.0, 98.75])
    enc.save(tmp_path / "enc.json")
    assert TabularEncoder.load(tmp_path / "enc.json").task_ == "regression"


def test_decimal_target_mixed_with_floats_is_regression():
    from decimal import Decimal

    df = _frame().assign(y=[Decimal("100.35"), 99.1, Decimal("101.00"), 98])  # a parquet file read with a CSV
    assert TabularEncoder(target="y").fit(df).task_ == "regression"


def test_nested_feature_is_refused_unless_excluded():
    df = _frame().assign(tags=[[1, 2], [3], [], [4]])
    with pytest.raises(InputError, match="'tags'.*nested values.*row 0"):
        TabularEncoder(target="y").fit(df)
    enc = TabularEncoder(target="y", exclude=["tags"]).fit(df)
    assert enc.feature_columns_ == ["x", "colour"]


@pytest.mark.parametrize("reserved", ["__other__", "__missing__"])
def test_reserved_level_names_are_refused_at_fit_and_transform(reserved):
    df = _frame()
    with pytest.raises(InputError, match=f"'colour'.*'{reserved}'.*row 2.*rename"):
        TabularEncoder(target="y").fit(df.assign(colour=["red", "blue", reserved, "green"]))
    enc = TabularEncoder(target="y").fit(df)
    with pytest.raises(InputError, match=f"'colour'.*'{reserved}'.*row 1"):
        enc.transform(df.assign(colour=["red", reserved, "red", "green"]))


def test_misspelt_exclude_is_refused_but_not_next_to_an_explicit_feature_list():
    with pytest.raises(InputError, match="excluded column.*'Colour'.*available columns"):
        TabularEncoder(target="y", exclude=["Colour"]).fit(_frame())
    enc = TabularEncoder(target="y", features=["x"], exclude=["Colour"]).fit(_frame())  # cannot leak a column
    assert enc.feature_columns_ == ["x"]


def test_labels_json_cannot_hold_are_refused_when_saving(tmp_path):
    df = _frame().assign(y=pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-01", "2026-01-02"]))
    enc = TabularEncoder(target="y", task="classification").fit(df)  # valuing needs no saving
    assert enc.encode_target(df["y"]).tolist() == [0, 1, 0, 1]
    with pytest.raises(InputError, match="'y'.*Timestamp.*cannot be saved"):
        enc.save(tmp_path / "enc.json")
    assert not list(tmp_path.iterdir())


def test_a_value_beyond_float32_is_refused_naming_column_and_row():
    enc = TabularEncoder(target="y").fit(_frame())
    with pytest.raises(InputError, match="'x'.*too far outside.*1e\\+40.*row 3"):
        enc.transform(_frame().assign(x=[1.0, 2.0, 3.0, 1e40]))


def test_no_usable_feature_left_raises():
    df = pd.DataFrame({"k": [1, 1, 1], "y": [0, 1, 0]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match="no usable feature.*'k'"):
            TabularEncoder(target="y").fit(df)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_in_numeric_feature_raises_with_column_count_and_row(bad):
    df = pd.DataFrame({"x": [1.0, bad, 3.0, bad], "y": [0, 1, 0, 1]}, index=[10, 17, 20, 30])
    with pytest.raises(InputError) as exc:
        TabularEncoder(target="y", source="train.csv").fit(df)
    msg = str(exc.value)
    assert msg.startswith("train.csv: ")
    assert "'x'" in msg and (" has 2 NaN/missing value(s), first" in msg or " has 2 inf value(s), first" in msg)
    assert "row 17" in msg and "drop or impute these rows, or leave the column out of the features" in msg
    # in each front end's words, the Python one too (it named only the config key and the CLI option)
    assert msg.endswith("(pipeline config: features.exclude: [x]; `lossval value`: --exclude x; TabularEncoder: "
                        "exclude=['x'])")
    both = pd.DataFrame({"x": [1.0, np.nan, 3.0, np.inf], "y": [0, 1, 0, 1]})
    with pytest.raises(InputError, match=r"has 1 NaN/missing and 1 inf value\(s\) \(2 in all\), first at row 1"):
        TabularEncoder(target="y").fit(both)


def test_a_blank_in_a_numeric_column_is_reported_as_missing_not_as_non_numeric():
    # A parquet file keeps "" as text in a column of numbers: it was "non-numeric value ''", though serving and the
    # categorical columns read it as missing. Told like a NaN there, with the same advice.
    text = pd.DataFrame({"x": [str(i) if i != 2 else "" for i in range(12)], "y": [0, 1] * 6}, index=range(10, 22))
    nan = pd.DataFrame({"x": [float(i) if i != 2 else np.nan for i in range(12)], "y": [0, 1] * 6}, index=range(10, 22))
    with pytest.raises(InputError) as blank:
        TabularEncoder(target="y", source="train.parquet").fit(text)
    with pytest.raises(InputError) as missing:
        TabularEncoder(target="y", source="train.parquet").fit(nan)
    assert str(blank.value) == str(missing.value).replace("1 NaN/missing", "1 blank (empty or only spaces)")
    assert str(blank.value).startswith("train.parquet: numeric column 'x' has 1 blank (empty or only spaces) value(s), "
                                       "first at row 12; lossval rejects missing")
    # Declared numeric, with a NaN, spaces and an inf too; and text that is no number is still named, alone.
    both = pd.DataFrame({"x": ["1", None, "  ", "inf"], "y": [0, 1, 0, 1]})
    with pytest.raises(InputError, match=r"has 1 NaN/missing, 1 blank \(empty or only spaces\) and 1 inf value\(s\) "
                                         r"\(3 in all\), first at row 1; "):
        TabularEncoder(target="y", numeric=["x"]).fit(both)
    # Its kind inferred (numbers with a blank), an "inf" before the blank is said too, and is the first row named.
    inferred = pd.DataFrame({"x": [str(i) for i in range(40)] + ["inf", ""], "y": [0, 1] * 21})
    with pytest.raises(InputError, match=r"has 1 blank \(empty or only spaces\) and 1 inf value\(s\) \(2 in all\), "
                                         r"first at row 40; "):
        TabularEncoder(target="y").fit(inferred)
    junk = pd.DataFrame({"x": ["1", "", "abc", "2"], "y": [0, 1, 0, 1]})
    with pytest.raises(InputError, match=r"non-numeric value 'abc' in numeric column 'x' at row 2 \(1 of 3 non-missing "
                                         r"values do not parse as numbers\); fix or drop these rows$"):
        TabularEncoder(target="y", numeric=["x"]).fit(junk)


def test_nan_at_transform_raises():
    enc = TabularEncoder(target="y").fit(_frame())
    with pytest.raises(InputError, match=r"'x'.*first at row 1\b"):
        enc.transform(pd.DataFrame({"x": [1.0, np.nan], "colour": ["red", "red"]}))


def test_target_nan_raises_naming_target_and_count():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "label": [0.5, np.nan, np.nan, 1.0]})
    with pytest.raises(InputError, match=r"'label' has 2 missing"):
        TabularEncoder(target="label").fit(df)


def test_text_in_numeric_looking_column_raises():
    values = [str(i) for i in range(19)] + ["abc"]  # 95% parse as numbers
    df = pd.DataFrame({"x": values, "y": [0, 1] * 10}, index=range(100, 120))
    with pytest.raises(InputError, match=r"non-numeric value 'abc' in numeric column 'x' at row 119"):
        TabularEncoder(target="y").fit(df)


def test_text_in_numeric_column_from_csv_at_transform():
    enc = TabularEncoder(target="y").fit(_frame())
    new = pd.read_csv(io.StringIO("x,colour\n1.5,red\nn/a?,blue\n"))
    with pytest.raises(InputError, match=r"non-numeric value 'n/a\?' in numeric column 'x' at row 1"):
        enc.transform(new)


def test_numbers_with_thousands_separators_are_refused_not_read_as_categories():
    income = ["1,816.21", "950.00", "12,400", "-3,000,000.5", "88.1"] * 4
    df = pd.DataFrame({"income": income, "y": [0, 1] * 10}, index=range(50, 70))
    with pytest.raises(InputError, match=r"column 'income' holds numbers written with thousands separators "
                       r"\(12 of 20 values, e.g. '1,816.21' at row 50\).*features.categorical: \[income\]"):
        TabularEncoder(target="y").fit(df)
    enc = TabularEncoder(target="y", categorical=["income"]).fit(df)  # declared: kept as categories
    assert enc.categorical_columns_ == ["income"]
    # Not numbers: decimal commas, lists, labels with a few grouped numbers among them.
    for values in (["1,5", "2,25", "3,0", "4,75"] * 5, ["1,2,3", "4,5,6"] * 10, ["1,000", "a", "b", "c"] * 5,
                   ["0,5", "1,25", "3,750", "2"] * 5):  # decimal commas, one of them with three decimals
        ok = TabularEncoder(target="y").fit(pd.DataFrame({"c": values, "y": [0, 1] * 10}))
        assert ok.categorical_columns_ == ["c"]


def test_a_categorical_column_stored_differently_at_transform_is_warned_about():
    import warnings

    train = pd.DataFrame({"x": np.arange(12.0), "colour": ["red", "blue", "green"] * 4, "y": [0, 1] * 6})
    enc = TabularEncoder(target="y").fit(train)
    coded = train.assign(colour=np.arange(12) % 3)  # the same colours as codes 0/1/2
    with pytest.warns(UnseenLevelsWarning, match=r"valid.parquet: categorical column 'colour': 12 of 12 values "
                      r"are levels "
                      r"the training rows do not have \(e.g. \['0', '1', '2'\]; training levels include "
                      r"\['blue', 'green', 'red'\]\), so they encode as no level at all"):
        X = enc.transform(coded, source="valid.parquet")
    assert not X[:, 1:].any()
    with warnings.catch_warnings():  # a few new levels are normal: no warning
        warnings.simplefilter("error")
        enc.transform(train.assign(colour=["red", "blue", "green", "teal"] * 3))
        enc.transform(train)
        names = pd.DataFrame({"x": np.arange(40.0), "name": [f"n{i % 15}" for i in range(40)], "y": [0, 1] * 20})
        by_name = TabularEncoder(target="y", max_categories=10).fit(names)  # an __other__ column: new names expected
        by_name.transform(names.assign(name=[f"m{i}" for i in range(40)]))


def test_mostly_text_column_is_categorical_not_error():
    df = pd.DataFrame({"c": ["1", "2", "a", "b", "c"], "y": [0, 1, 0, 1, 0]})
    enc = TabularEncoder(target="y").fit(df)
    assert enc.categorical_columns_ == ["c"]
    assert enc.encoded_names_ == ["c=1", "c=2", "c=a", "c=b", "c=c"]


def test_empty_frame_raises():
    df = pd.DataFrame({"x": pd.Series([], dtype=float), "y": pd.Series([], dtype=int)})
    with pytest.raises(InputError, match="has no rows"):
        TabularEncoder(target="y").fit(df)
    enc = TabularEncoder(target="y").fit(_frame())
    with pytest.raises(InputError, match="has no rows"):
        enc.transform(_frame().iloc[:0])
    # A served model's batch may be empty (batch scoring's empty partitions): no rows, the same width; columns checked.
    assert enc.transform(_frame().iloc[:0], serving=True).shape == (0, len(enc.encoded_names_))
    with pytest.raises(InputError, match=r"missing feature column\(s\) \['colour'\]"):
        enc.transform(_frame().iloc[:0].drop(columns=["colour"]), serving=True)


def test_a_served_batch_warns_about_any_unseen_level_a_file_only_about_most():
    import warnings

    enc = TabularEncoder(target="y").fit(_frame())
    one = _frame().head(1).assign(colour="RED")
    with pytest.warns(UnseenLevelsWarning, match=r"model input: categorical column 'colour': 1 of 1 values are levels "
                      r"the model was not trained on \(e.g. \['RED'\].*did you mean 'red' for 'RED'\?"):
        X = enc.transform(one, source="model input", serving=True)
    assert not X[:, 1:].any()  # still no level
    with warnings.catch_warnings():  # the rule for files is unchanged: one row of four is no warning
        warnings.simplefilter("error")
        enc.transform(one, source="test.parquet")


def test_a_served_missing_value_the_training_rows_never_had_is_called_missing_not_an_internal_level():
    enc = TabularEncoder(target="y").fit(_frame())  # no missing colour in training
    two = _frame().head(2).assign(colour=[None, "RED"])
    with pytest.warns(UnseenLevelsWarning) as caught:
        enc.transform(two, source="model input", serving=True)
    (message,) = [str(w.message) for w in caught]
    assert "1 of 2 values are levels the model was not trained on (e.g. ['RED']" in message
    assert "1 of 2 values are missing, which the training rows never were" in message
    assert "__missing__" not in message


def test_missing_target_column_raises_with_available():
    with pytest.raises(InputError, match=r"'label'.*available columns: \['x', 'colour', 'y'\]"):
        TabularEncoder(target="label").fit(_frame())


def test_a_misspelt_column_gets_a_did_you_mean():
    df = _frame().assign(amount=1.0)
    with pytest.raises(InputError, match=r"missing excluded column\(s\) \['amuont'\] \(did you mean 'amount' for "
                                         r"'amuont'\?\); available columns"):
        TabularEncoder(target="y", exclude=["amuont"]).fit(df)
    enc = TabularEncoder(target="y").fit(df)
    with pytest.raises(InputError) as raised:  # another feature is no guess for a missing one
        enc.transform(df.drop(columns=["x"]))
    assert "did you mean" not in str(raised.value)
    with pytest.raises(InputError, match=r"did you mean 'X' for 'x'"):  # the same name in another case is
        enc.transform(df.rename(columns={"x": "X"}))


def test_missing_feature_column_at_fit_and_transform():
    with pytest.raises(InputError, match=r"missing feature column\(s\) \['size'\]"):
        TabularEncoder(target="y", features=["x", "size"]).fit(_frame())
    enc = TabularEncoder(target="y").fit(_frame())
    with pytest.raises(InputError, match=r"\['colour'\].*available columns: \['x'\]"):
        enc.transform(pd.DataFrame({"x": [1.0]}))


def test_available_columns_list_is_capped_at_ten():
    df = pd.DataFrame({f"c{i}": [1.0, 2.0] for i in range(15)})
    with pytest.raises(InputError) as exc:
        TabularEncoder(target="y").fit(df)
    msg = str(exc.value)
    assert "'c9'" in msg and "'c10'" not in msg and "5 more" in msg


def test_single_class_raises():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", "a", "a"]})
    with pytest.raises(InputError, match=r"'y' has 1 class.*needs at least 2: check that the target is the right column"):
        TabularEncoder(target="y").fit(df)


def test_constant_regression_target_raises():
    df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [2.5, 2.5, 2.5]})
    with pytest.raises(InputError, match=r"'y' is constant"):
        TabularEncoder(target="y").fit(df)


def test_unknown_label_in_encode_target_raises():
    enc = TabularEncoder(target="y").fit(_frame())
    with pytest.raises(InputError, match=r"'bird'.*'cow'|'cow'.*'bird'"):
        enc.encode_target(["cat", "bird", "cow", "bird"])


def test_labels_stored_as_numbers_against_text_labels_are_named_as_a_type_mismatch():
    enc = TabularEncoder(target="y", task="classification").fit(_frame().assign(y=["1", "0", "1", "0"]))
    with pytest.raises(InputError, match=r"^v.csv: target 'y' holds the labels \[1, 0\] as int, but the training rows "
                                         r"hold them as str \(\['1', '0'\]\), first at row 0; give the target column one"):
        enc.encode_target([1, 0, 1], source="v.csv")
    # 7 is unknown; 1 is the class '1' written as a number: only 7 is named, with its own row (a review saw one
    # 'yes' in a CSV of 0/1 labels reported as "30 values ... first at row 0")
    with pytest.raises(InputError, match=r"has 1 value\(s\) with label\(s\) \[7\] not among the classes seen in "
                                         r"training \(\['0', '1'\]\), first at row 1;"):
        enc.encode_target([1, 7])
    ints = TabularEncoder(target="y", task="classification").fit(_frame().assign(y=[1, 0, 1, 0]))
    with pytest.raises(InputError, match=r"has 1 value\(s\) with label\(s\) \['yes'\] .*first at row 2;"):
        ints.encode_target(["0", "1", "yes", "1"], source="val.csv")


def test_datetime_column_raises_unless_excluded():
    df = _frame().assign(when=pd.date_range("2024-01-01", periods=4))
    with pytest.raises(InputError, match=r"'when'.*features.exclude: \[when\]; `lossval value`: --exclude when"):
        TabularEncoder(target="y").fit(df)
    assert TabularEncoder(target="y", exclude=["when"]).fit(df).feature_columns_ == ["x", "colour"]
    # ISO date text (a timestamp column read from CSV) is refused too
    with pytest.raises(InputError, match=r"'when'.*exclude"):
        TabularEncoder(target="y").fit(df.assign(when=df["when"].astype(str)))


def test_invalid_options_raise_config_error():
    with pytest.raises(ConfigError, match="task"):
        TabularEncoder(target="y", task="ranking").fit(_frame())
    with pytest.raises(ConfigError, match="max_categories"):
        TabularEncoder(target="y", max_categories=0).fit(_frame())
    with pytest.raises(ConfigError, match="'y'"):
        TabularEncoder(target="y", features=["x", "y"]).fit(_frame())


@pytest.mark.parametrize("option", ["features", "exclude", "categorical", "numeric"])
def test_one_column_name_given_as_a_string_is_refused_not_read_letter_by_letter(option):
    # exclude="id" was read as ["i", "d"]: with columns 'i' and 'd' present it left them out and kept 'id', silently.
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"id": rng.permutation(40), "i": rng.normal(size=40), "d": rng.normal(size=40),
                       "y": np.arange(40) % 2})
    with pytest.raises(ConfigError, match=rf"{option} must be a list of column names.*'id'.*\['id'\]"):
        TabularEncoder(target="y", **{option: "id"}).fit(df)


@pytest.mark.parametrize("option", ["features", "exclude", "categorical", "numeric"])
@pytest.mark.parametrize("container", [pd.Index, np.array, tuple])
def test_column_names_given_as_a_pandas_index_or_numpy_array_are_read_as_a_list(option, container):
    # exclude=df.columns[:1] raised a bare "The truth value of a Index is ambiguous" (``names or []``).
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"id": rng.permutation(40), "x": rng.normal(size=40), "z": rng.normal(size=40),
                       "c": rng.choice(["u", "v"], size=40), "d": rng.choice(["p", "q"], size=40),
                       "y": np.arange(40) % 2})
    df = df if option in ("features", "exclude") else df.drop(columns="id")
    names = {"features": ["x", "c"], "exclude": ["id", "z"], "categorical": ["c", "d"], "numeric": ["x", "z"]}[option]
    given = TabularEncoder(target="y", **{option: container(names)}).fit(df)
    listed = TabularEncoder(target="y", **{option: names}).fit(df)
    assert given.encoded_names_ == listed.encoded_names_
    assert np.array_equal(given.transform(df), listed.transform(df))


def test_features_only_encoder_without_target():
    enc = TabularEncoder().fit(_frame().drop(columns="y"))
    assert enc.task_ is None and enc.classes_ is None
    with pytest.raises(InputError, match="without a target"):
        enc.encode_target(["cat"])


def test_a_numeric_text_target_with_a_typo_is_named_not_read_as_hundreds_of_classes():
    income = [str(10_000 + 137 * i) for i in range(100)]
    income[7] = "41k"
    df = pd.DataFrame({"x": np.arange(100.0), "income": income})
    with pytest.raises(InputError, match=r"data.csv: non-numeric value '41k' in target column 'income' at row 7 "
                                         r"\(1 of 100 .*set task: classification if they are labels"):
        TabularEncoder(target="income", source="data.csv").fit(df)
    income[7] = "41000"
    assert TabularEncoder(target="income").fit(df.assign(income=income)).task_ == "regression"  # numbers as text
    assert TabularEncoder(target="income", task="classification").fit(df).task_ == "classification"  # as told


# ------------------------------------------------------------ declared numeric columns


def _years_employed(junk_every: int, junk: str = "unknown") -> pd.DataFrame:
    """100 rows: years_employed 0..29 as CSV text, every ``junk_every``-th value (from row 0) replaced by ``junk``."""
    years = [str(v) for v in np.random.default_rng(0).integers(0, 30, size=100)]
    for i in range(0, 100, junk_every):
        years[i] = junk
    return pd.DataFrame({"years_employed": years, "x": np.arange(100.0), "y": [0, 1] * 50})


@pytest.mark.parametrize(("junk_every", "junk", "n_junk"), [(7, "unknown", 15), (22, "?", 5), (3, "12 yrs", 34)])
def test_a_column_declared_numeric_refuses_its_text_whatever_its_share(junk_every, junk, n_junk):
    df = _years_employed(junk_every, junk)
    with pytest.raises(InputError, match=rf"train.csv: non-numeric value '{re.escape(junk)}' in numeric column "
                                         rf"'years_employed' at row 0 \({n_junk} of 100 non-missing values do not "
                                         r"parse as numbers: .*; fix or drop these rows"):
        TabularEncoder(target="y", numeric=["years_employed"], source="train.csv").fit(df)


def test_a_column_declared_numeric_is_standardised_and_checked_at_transform():
    df = pd.DataFrame({"n": ["1", "2", "3", "6"], "y": [0, 1, 0, 1]})
    enc = TabularEncoder(target="y", numeric=["n"]).fit(df)
    assert enc.numeric_columns_ == ["n"] and enc.categorical_columns_ == []
    assert enc.means_.tolist() == [3.0] and enc.scales_[0] == pytest.approx(np.sqrt(14.0 / 4.0), rel=1e-15)
    np.testing.assert_array_equal(enc.transform(pd.DataFrame({"n": [3.0]})), [[0.0]])
    with pytest.raises(InputError, match=r"non-numeric value 'unknown' in numeric column 'n' at row 1"):
        enc.transform(pd.DataFrame({"n": ["4", "unknown"]}), source="valid.csv")
    # A numeric dtype is unchanged by the declaration: the same encoding as without it.
    num = pd.DataFrame({"n": [1, 2, 3, 6], "y": [0, 1, 0, 1]})
    assert (TabularEncoder(target="y", numeric=["n"]).fit_transform(num).tobytes()
            == TabularEncoder(target="y").fit_transform(num).tobytes())


def test_missing_values_in_a_column_declared_numeric_are_refused_as_in_any_numeric_column():
    df = pd.DataFrame({"n": ["1", None, "3", "6"], "y": [0, 1, 0, 1]})
    with pytest.raises(InputError, match=r"numeric column 'n' has 1 NaN/missing value\(s\), first at "
                                         r"row 1; lossval rejects missing"):
        TabularEncoder(target="y", numeric=["n"]).fit(df)
    empty = pd.DataFrame({"n": [None] * 4, "x": [1.0, 2.0, 3.0, 6.0], "y": [0, 1, 0, 1]})
    with pytest.warns(UserWarning, match=r"constant or empty column\(s\) \['n'\]"):
        assert TabularEncoder(target="y", numeric=["n"]).fit(empty).feature_columns_ == ["x"]


@pytest.mark.parametrize("kind", ["categorical", "numeric"])
def test_a_misspelt_declared_column_is_refused_naming_it(kind):
    with pytest.raises(InputError,
                       match=rf"missing {kind} column\(s\) \['X'\] \(did you mean 'x' for 'X'\?\); available columns: "
                             r"\['x', 'colour', 'y'\]"):
        TabularEncoder(target="y", **{kind: ["X"]}).fit(_frame())
    with pytest.raises(InputError, match=rf"missing {kind} column"):  # an explicit feature list does not excuse it
        TabularEncoder(target="y", features=["x"], **{kind: ["X"]}).fit(_frame())


def test_a_column_declared_both_numeric_and_categorical_is_a_config_error():
    with pytest.raises(ConfigError, match=r"column\(s\) \['x'\] declared both numeric and categorical"):
        TabularEncoder(target="y", numeric=["x"], categorical=["colour", "x"]).fit(_frame())


@pytest.mark.parametrize("kind", ["categorical", "numeric"])
def test_the_target_and_excluded_columns_declared_are_still_not_features(kind):
    # As with categorical=: a declaration does not make a feature of the target or of an excluded column.
    df = _frame().assign(id=[10, 11, 12, 13])
    enc = TabularEncoder(target="y", exclude=["id"], **{kind: ["y", "id"]}).fit(df)
    assert enc.feature_columns_ == ["x", "colour"]
    assert enc.task_ == "classification" and enc.classes_ == ["cat", "dog"]


def test_a_column_declared_numeric_refuses_dates_and_complex_numbers():
    dates = _frame().assign(x=pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]))
    with pytest.raises(InputError, match=r"column 'x' is declared numeric but is a datetime/timedelta column"):
        TabularEncoder(target="y", numeric=["x"]).fit(dates)
    with pytest.raises(InputError, match=r"column 'x' is declared numeric but holds complex numbers"):
        TabularEncoder(target="y", numeric=["x"]).fit(_frame().assign(x=[1 + 1j, 2, 3, 4]))


def test_the_numeric_option_round_trips_and_older_encoder_files_still_load(tmp_path):
    df = _years_employed(7).assign(years_employed=lambda d: d["years_employed"].replace("unknown", "31"))
    enc = TabularEncoder(target="y", numeric=["years_employed"], source="train.csv").fit(df)
    enc.save(tmp_path / "enc.json")
    saved = json.loads((tmp_path / "enc.json").read_text())
    assert saved["version"] == 1 and saved["params"]["numeric"] == ["years_employed"]
    loaded = TabularEncoder.load(tmp_path / "enc.json")
    assert loaded.numeric == ["years_employed"] and loaded.numeric_columns_ == ["years_employed", "x"]
    assert loaded.transform(df).tobytes() == enc.transform(df).tobytes()
    loaded.save(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_text() == (tmp_path / "enc.json").read_text()
    # Without the option the file is as before it existed; such a file (no "numeric" key) loads.
    plain = TabularEncoder(target="y").fit(_frame()).to_dict()
    assert "numeric" not in plain["params"]
    old = TabularEncoder.from_dict(plain)
    assert old.numeric is None and old.transform(_frame()).tobytes() == TabularEncoder(target="y").fit_transform(
        _frame()).tobytes()


def test_a_mostly_numeric_column_read_as_categorical_is_warned_about_once():
    df = _years_employed(7)  # 15% 'unknown': under the 90% line, so categories, not an error
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        enc = TabularEncoder(target="y", source="train.csv").fit(df)
    assert enc.categorical_columns_ == ["years_employed"] and "years_employed=unknown" in enc.encoded_names_
    assert len(caught) == 1 and caught[0].category is UserWarning
    message = str(caught[0].message)
    assert message.startswith("train.csv: column 'years_employed' was read as categorical: 85 of 100 non-missing "
                              "values are numbers, the others are not ('unknown' at row 0, ")
    assert "features.numeric: [years_employed]" in message and "--numeric years_employed" in message
    assert "features.categorical" in message and "\n" not in message
    assert caught[0].filename == __file__  # attributed to the caller of fit(), as lossval's CLI shows it
    with warnings.catch_warnings():  # declared either way, or mostly text: no warning
        warnings.simplefilter("error")
        TabularEncoder(target="y", categorical=["years_employed"]).fit(df)
        TabularEncoder(target="y").fit(pd.DataFrame({"c": ["1", "2", "a", "b", "c"], "y": [0, 1, 0, 1, 0]}))
    with pytest.raises(InputError, match="non-numeric value 'unknown'"):
        TabularEncoder(target="y", numeric=["years_employed"]).fit(df)


def test_an_id_like_categorical_is_warned_about_and_gives_no_row_its_own_column():
    ids = pd.DataFrame({"x": np.arange(200.0), "customer": [f"C{i:04d}" for i in range(200)],
                        "segment": [f"s{i % 60}" if i < 120 else f"u{i}" for i in range(200)], "y": [0, 1] * 100})
    with pytest.warns(UserWarning) as caught:
        enc = TabularEncoder(target="y").fit(ids)
    said = [str(w.message) for w in caught]
    assert said == ["categorical column 'customer' has 200 distinct values in 200 rows, each once, like an id: it is "
                    "left out of the features (exclude it to say so: pipeline config: features.exclude: [customer]; "
                    "`lossval value`: --exclude customer; TabularEncoder: exclude=['customer']; or, if it names the "
                    "rows, make it the id column: pipeline config id_column: customer; `lossval value`: --id-column "
                    "customer)",
                    "categorical column 'segment' has 140 distinct values in 200 rows, like an id or free text: exclude "
                    "it (pipeline config: features.exclude: [segment]; `lossval value`: --exclude segment; "
                    "TabularEncoder: exclude=['segment']) if it identifies rows rather than describing them"]
    assert "customer" not in enc.feature_columns_  # every value once: nothing to learn from it, left out (not "constant")
    assert enc.dropped_columns_ == ["customer"]  # recorded, as dropped columns are
    small = pd.DataFrame({"x": np.arange(10.0), "c": [f"id{i}" for i in range(10)], "y": [0, 1] * 5})
    with pytest.warns(UserWarning, match=r"'c' has 10 distinct values in 10 rows, each once, like an id") as caught:
        assert TabularEncoder(target="y", max_categories=5).fit(small).dropped_columns_ == ["c"]
    assert not [w for w in caught if "constant" in str(w.message)]  # small data too: not called constant
    # 60 levels seen twice and 80 seen once: the 50 kept are all repeated levels, never a single row's.
    kept = [name for name in enc.encoded_names_ if name.startswith("segment=")]
    assert len(kept) == 51 and kept[-1] == "segment=__other__" and not any(n.startswith("segment=u") for n in kept)


def test_an_integer_target_of_many_repeated_values_read_as_a_number_is_warned_about():
    import warnings

    from lossval.valuation import infer_task

    codes = pd.Series(np.repeat(np.arange(30), 6), name="code")  # 30 class codes, 6 rows each
    with pytest.warns(UserWarning, match=r"target 'code' holds 30 distinct integers, each at least 5 times: with task "
                                         r"auto it is read as a number \(regression\).*--task classification; in "
                                         r"Python: task='classification'"):  # each reader's way to say it
        assert infer_task(codes) == "regression"
    with warnings.catch_warnings():  # counts or amounts: most values once, no warning
        warnings.simplefilter("error")
        assert infer_task(pd.Series(np.arange(200), name="amount")) == "regression"
        assert infer_task(pd.Series(np.arange(200.0), name="amount")) == "regression"
        assert infer_task(pd.Series(np.linspace(0, 1, 200), name="share")) == "regression"
    flags = pd.Series(np.repeat([0.0, 1.0], 50), name="churned")  # a 0/1 label saved as floats
    with pytest.warns(UserWarning, match=r"target 'churned' holds 2 distinct whole numbers stored as floats \(0, 1\), "
                                         r"each at least 5 times: with task auto it is read as a number \(regression\)"
                                         r".*in Python: task='classification'"):
        assert infer_task(flags) == "regression"


def test_a_value_too_far_for_float32_under_the_clipped_scale_falls_back_to_the_plain_one():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(1.0, 0.3, size=200), "y": np.arange(200) % 2})
    df.loc[5, "x"] = 1e39  # beyond float32 (3.4e38) once divided by the clipped std of about 0.3
    with pytest.warns(UserWarning, match=r"numeric column 'x' has a value 1e\+39 at row 5, more than 1e30 standard"):
        enc = TabularEncoder(target="y").fit(df)
    assert enc.scales_[0] == pytest.approx(df["x"].std(ddof=0))
    X = enc.transform(df)  # the training rows themselves still encode
    assert np.isfinite(X).all() and X[5, 0] == pytest.approx(np.sqrt(200), rel=0.01)


def test_a_value_that_overflows_float64_is_refused_with_no_numpy_warning_on_the_way(recwarn):
    df = pd.DataFrame({"x": np.linspace(1.0, 2.0, 50), "y": np.arange(50) % 2})
    df.loc[4, "x"] = 1e300  # squared, it overflows: the plain standard deviation is inf
    with pytest.raises(InputError, match="numeric column 'x' overflows float64 when standardised"):
        TabularEncoder(target="y").fit(df)
    assert [str(w.message) for w in recwarn if issubclass(w.category, RuntimeWarning)] == []
    assert any("1e30 standard deviations" in str(w.message) for w in recwarn)  # our own warning, once


def test_a_feature_that_overflows_float64_is_refused_naming_its_largest_value_and_row():
    # `lossval run` shows the error alone (its pre-check does not show the encoder's warnings): the error must say
    # which value to look at, not only the column.
    df = pd.DataFrame({"x": np.linspace(1.0, 2.0, 50), "y": np.arange(50) % 2})
    df.loc[17, "x"] = -1e300
    with pytest.warns(UserWarning, match="1e30 standard deviations"), \
            pytest.raises(InputError, match=r"^train.csv: numeric column 'x' overflows float64 when standardised: its "
                                            r"largest value by size is -1e\+300 at row 17; fix it if it is a typo"):
        TabularEncoder(target="y", source="train.csv").fit(df)


def test_a_regression_target_that_overflows_when_standardised_is_refused_naming_file_and_column(recwarn):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=60), "price": (rng.normal(size=60) + 10.0) * 1e307})
    with pytest.raises(InputError, match=r"^train.csv: regression target column 'price' overflows float64 when "
                                         r"standardised \(largest \|value\| 1\.\d+e\+308\); rescale it"):
        TabularEncoder(target="price", task="regression", source="train.csv").fit(df)
    assert [str(w.message) for w in recwarn if issubclass(w.category, RuntimeWarning)] == []
    # Two typos that large are clipped to the central range before standardising, as LossVal does: accepted.
    df["price"] = rng.normal(size=60)
    df.loc[[3, 4], "price"] = [1.5e308, -1.5e308]
    assert TabularEncoder(target="price", task="regression").fit(df).task_ == "regression"


def test_distinct_64_bit_integers_that_float64_cannot_tell_apart_are_left_out_as_id_like_not_called_constant():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=40), "hash": np.arange(40, dtype=np.uint64) * np.uint64(7) + np.uint64(2**63),
                       "y": np.arange(40) % 2})
    with pytest.warns(UserWarning) as caught:
        enc = TabularEncoder(target="y", source="t.parquet").fit(df)
    said = [str(w.message) for w in caught]
    assert len(said) == 1 and said[0].startswith(
        "t.parquet: numeric column 'hash' has 40 distinct values that are one number in float64 (integers near 9.22e+18")
    assert "like an id or a hash: it is left out of the features" in said[0] and "constant" not in said[0]
    assert enc.feature_columns_ == ["x"] and enc.dropped_columns_ == ["hash"]
    with pytest.warns(UserWarning, match=r"constant or empty column\(s\) \['hash'\]"):  # one value really is constant
        TabularEncoder(target="y").fit(df.assign(hash=np.uint64(2**63)))


def test_a_numeric_column_named_like_an_id_with_one_value_per_row_is_warned_about() -> None:
    import warnings

    rng = np.random.default_rng(0)
    n = 40
    df = pd.DataFrame({"customer_id": np.arange(5000, 5000 + n), "Unnamed: 0": rng.permutation(n),
                       "orderId": rng.permutation(n) * 7, "userID": rng.permutation(n), "t": np.arange(n), "x": rng.normal(size=n),
                       "paid": rng.permutation(n), "y": [0, 1] * (n // 2)})
    with pytest.warns(UserWarning) as caught:
        TabularEncoder(target="y").fit(df)
    named = sorted(str(w.message).split("'")[1] for w in caught if "like a row id" in str(w.message))
    assert named == ["Unnamed: 0", "customer_id", "orderId", "userID"]  # not a time step, nor 'paid'
    [text] = [str(w.message) for w in caught if "'customer_id'" in str(w.message)]
    assert "--id-column customer_id" in text and "features.exclude: [customer_id]" in text
    # a name YAML would read as something else is quoted, so the suggestion can be pasted as it is
    [text] = [str(w.message) for w in caught if "'Unnamed: 0'" in str(w.message)]
    assert "features.exclude: [\"Unnamed: 0\"]" in text and "id_column: \"Unnamed: 0\";" in text
    assert "--exclude 'Unnamed: 0'" in text
    import yaml

    from lossval.config import config_from_dict
    pasted = yaml.safe_load('id_column: "Unnamed: 0"\nfeatures:\n  exclude: ["Unnamed: 0"]\n')
    config = config_from_dict({"data": "d.csv", "target": "y", **pasted})
    assert config.id_column == "Unnamed: 0" and config.exclude == ("Unnamed: 0",)
    with warnings.catch_warnings():  # said to be a feature, or repeated values (a key shared by rows): no warning
        warnings.simplefilter("error")
        TabularEncoder(target="y", numeric=["customer_id", "Unnamed: 0", "orderId", "userID"]).fit(df)
        TabularEncoder(target="y", exclude=["Unnamed: 0", "orderId", "userID"]).fit(df.assign(customer_id=np.arange(n) // 2))


@pytest.mark.parametrize("method", ["fit", "fit_transform"])
def test_warnings_point_at_the_callers_line_whichever_path_reaches_them(method: str) -> None:
    # A fixed stacklevel pointed one frame past the caller of fit() (and, in the pipeline, into Prefect, whose
    # file the CLI does not print as one lossval line).

    df = pd.DataFrame({"id": np.arange(200) + 1000, "a": np.random.default_rng(0).normal(size=200), "y": ["a", "b"] * 100})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        getattr(TabularEncoder(target="y"), method)(df)
    [said] = [w for w in caught if "like a row id" in str(w.message)]
    assert said.filename == __file__


def test_a_categorical_column_of_floats_with_gaps_or_all_missing_transforms() -> None:
    # Seen by a review: "ValueError: output array is read-only" (pandas hands out a read-only isna() for numeric
    # columns, which the encoder updated in place) for a parquet float code column with NaN, a curated test file's
    # empty column, and a serving batch whose categorical column was all NaN.
    df = pd.DataFrame({"x": np.arange(40.0), "code": [1.0, 2.0, np.nan, 3.0] * 10, "label": ["a", "b"] * 20})
    enc = TabularEncoder(target="label", categorical=["code"]).fit(df)
    out = enc.transform(df)
    missing_level = [i for i, name in enumerate(enc.encoded_names_) if name.startswith("code=") and "missing" in name]
    assert len(missing_level) == 1 and out[2, missing_level[0]] == 1.0 and out[0, missing_level[0]] == 0.0
    plans = pd.DataFrame({"x": np.arange(40.0), "plan": ["basic", "pro"] * 20, "label": ["a", "b"] * 20})
    fitted = TabularEncoder(target="label").fit(plans)
    batch = plans.head(3).assign(plan=np.nan)
    np.testing.assert_array_equal(fitted.transform(batch), fitted.transform(plans.head(3).assign(plan=None)))
