"""What the Great Expectations checks say: a suite entry GX cannot build or that names a missing column, by its
place in the suite file; failures with how much was allowed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from lossval.errors import ConfigError
from lossval.suites import suite_file


def _suite(tmp_path: Path, *expectations: dict, name: str = "mine") -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"name": name, "expectations": list(expectations)}))
    return path


_GOOD = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "debt_ratio"}}
# Kept for regression runs only: a classification run loads one expectation fewer, the file's indices stay.
_REGRESSION_ONLY = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "y"},
                    "meta": {"only_for": "regression"}}


@pytest.mark.parametrize(("bad", "says"), [
    ({"type": "expect_column_values_to_be_between", "kwargs": {"column": "debt_ratio", "min_value": "zero",
                                                               "max_value": 1}},
     "expectations[2] (expect_column_values_to_be_between on column 'debt_ratio'): min_value 'zero' is not a valid "
     "value (value is not a valid float). Fix that entry in the suite file"),
    ({"type": "expect_column_values_to_be_between", "kwargs": {"colum": "debt_ratio", "min_value": 0, "max_value": 1}},
     "expectations[2] (expect_column_values_to_be_between): unknown argument 'colum' (did you mean 'column'?), "
     "argument 'column' is required."),
    ({"type": "expect_column_values_to_be_between", "kwargs": {"column": "debt_ratio"}},
     "expectations[2] (expect_column_values_to_be_between on column 'debt_ratio'): min_value and max_value cannot "
     "both be None."),
    ({"type": "expect_column_values_to_be_betwen", "kwargs": {"column": "debt_ratio", "min_value": 0}},  # GX skips it
     "expectations[2] (expect_column_values_to_be_betwen on column 'debt_ratio'): unknown expectation type "
     "'expect_column_values_to_be_betwen' (did you mean 'expect_column_values_to_be_between'?)."),
])
def test_a_suite_entry_gx_cannot_build_is_named_by_its_place_in_the_file_and_what_is_wrong_with_it(
        tmp_path: Path, bad: dict, says: str) -> None:
    from tasks.gx import check_suite_builds

    suite = _suite(tmp_path, _REGRESSION_ONLY, _GOOD, bad)
    with pytest.raises(ConfigError) as raised:
        check_suite_builds(str(suite), target="y", task_kind="classification")
    message = str(raised.value)
    assert message.startswith(f"{suite}: invalid expectation suite 'mine': expectations[2] "), message
    assert says in message and "validation error" not in message, message


def test_a_suite_entry_on_a_column_the_data_lacks_names_the_entry_and_the_suite_file() -> None:
    from tasks.gx import check_suite_columns

    with pytest.raises(ConfigError) as raised:  # the shipped suite, named as lossval reads it: 'pruned_data'
        check_suite_columns("pruned_data", ["x", "y"], target="label", task_kind="classification")
    assert str(raised.value).startswith(f"{suite_file('pruned_data')}: expectation suite 'pruned_data': expectations[0] "
                                        "(expect_column_values_to_not_be_null on column 'label') names column(s) "
                                        "['label']"), str(raised.value)


def test_a_failure_says_how_many_values_were_unexpected_and_how_many_the_suite_allows(tmp_path: Path) -> None:
    from tasks.gx import validate_frame

    suite = _suite(tmp_path, {"type": "expect_column_values_to_be_between",
                              "kwargs": {"column": "debt_ratio", "min_value": 0, "max_value": 0.5, "mostly": 0.9}})
    frame = pd.DataFrame({"debt_ratio": [0.1] * 17 + [0.9] * 3})
    result = validate_frame(frame, suite=str(suite), params={})
    assert result["failures"] == ["expect_column_values_to_be_between on column 'debt_ratio' (15.0% unexpected, at "
                                  "most 10% allowed) (expected between 0 and 0.5)"]
