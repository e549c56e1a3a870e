"""The validation split must be able to value the training rows: enough rows, every class on both sides."""

from __future__ import annotations

import pandas as pd
import pytest

from lossval.errors import InputError
from lossval.splitting import check_validation


def test_labels_stored_as_int_float_or_text_are_the_same_class() -> None:
    train = pd.Series([0, 1] * 10)
    check_validation(train, pd.Series([0.0, 1.0] * 6), task="classification", target="y")  # parquet floats
    check_validation(train.astype(str), pd.Series([0, 1] * 6), task="classification", target="y")  # CSV text


@pytest.mark.parametrize(
    ("train", "valid", "message"),
    [
        (["a", "b"] * 10, ["a"] * 12, r"valid\.csv: class\(es\) 'b' \(10 training rows\) of target 'y' have no validation rows"),
        (["a"] * 20, ["a", "c"] * 6, r"valid\.csv: class\(es\) 'c' \(6 validation rows\) of target 'y' have no training rows"),
        (["a", "b"] * 10, ["a", "b"] * 4, r"valid\.csv: the validation split has 8 rows; at least 10"),
        # Counts of one are said in the singular ("1 rows" before)
        (["a", "b"] * 10, ["a"], r"valid\.csv: the validation split has 1 row; at least 10"),
        (["a"] * 19 + ["b"], ["a"] * 12, r"class\(es\) 'b' \(1 training row\) of target 'y' have no validation"),
        (["a", "b"] * 10, ["a", "b"] * 6 + ["c"],
         r"class\(es\) 'c' \(1 validation row\) of target 'y' have no training"),
        (["approved", "declined"] * 10, ["approved"] * 11 + ["maybe"],
         r"the validation rows hold 'maybe' \(1 row\), which no training row has"),
        (["a", "bird"] * 10, ["a", "Bird "] * 6, r"have no validation rows; .* \('bird' is spelt 'Bird ' in the "
                                                  r"validation rows: the same class\?\)\.$"),
        # A validation file labelled another way: its labels are named, not only the training classes it lacks.
        (["approved", "declined"] * 10, ["approved", "maybe"] * 6,
         r"class\(es\) 'declined' \(10 training rows\) of target 'y' have no validation rows; .* from the data; the "
         r"validation rows hold 'maybe' \(6 rows\), which no training row has \(are both labelled the same way\?\)\.$"),
        (["a", "b"] * 10, [f"v{i}" for i in range(7)] * 2,
         r"have no validation rows; .* the validation rows hold 'v0' \(2 rows\), 'v1' \(2 rows\), 'v2' \(2 rows\), "
         r"'v3' \(2 rows\), 'v4' \(2 rows\) and 2 more, which no training row has"),
        ([f"id{i}" for i in range(40)], ["id0", "id1"] * 6,
         r"train\.csv: target 'y' has 40 distinct values in 40 training rows, too many to be classes: is it an id"),
    ],
)
def test_missing_classes_and_tiny_splits_are_input_errors(train: list, valid: list, message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_validation(pd.Series(train), pd.Series(valid), task="classification", target="y", source="train.csv",
                         validation_source="valid.csv")


def test_many_classes_with_a_few_rows_each_are_still_classes() -> None:
    labels = pd.Series([f"c{i}" for i in range(30)] * 2)  # 30 classes, 2 rows each: at the limit, allowed
    check_validation(labels, pd.Series([f"c{i}" for i in range(30)]), task="classification", target="y")


def test_regression_checks_only_the_row_count() -> None:
    check_validation(pd.Series([1.5, 2.5] * 10), pd.Series([9.0] * 10), task="regression", target="y")
    with pytest.raises(InputError, match="has 3 rows"):
        check_validation(pd.Series([1.5, 2.5] * 10), pd.Series([9.0] * 3), task="regression", target="y")
