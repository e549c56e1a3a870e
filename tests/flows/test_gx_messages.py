"""What the Great Expectations checks say: a suite entry GX cannot build or that names a missing column, by its
place in the suite file; failures with how much was allowed; remedies for a user suite's checks; ingest's raw-data
refusal; and each check's verdict in gate.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lossval.config import config_from_dict
from lossval.errors import ConfigError, InputError
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
    # A bad min_value reads as none to GX's whole-entry check: not also "cannot both be None" (a review).
    ({"type": "expect_column_values_to_be_between", "kwargs": {"column": "debt_ratio", "min_value": "a"}},
     "expectations[2] (expect_column_values_to_be_between on column 'debt_ratio'): min_value 'a' is not a valid "
     "value (value is not a valid float). Fix"),
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


def test_a_check_of_the_users_suite_that_could_not_be_evaluated_points_to_that_suite_entry(tmp_path: Path) -> None:
    from tasks.gate import remedies
    from tasks.gx import validate_frame

    suite = _suite(tmp_path, _GOOD, {"type": "expect_column_values_to_be_between",
                                     "kwargs": {"column": "grade", "min_value": 0, "max_value": 1}})
    frame = pd.DataFrame({"debt_ratio": [0.1, 0.2], "grade": ["A", "B"]})  # numeric bounds on a text column
    result = validate_frame(frame, suite=str(suite), params={})
    assert "could not be evaluated" in result["failures"][0], result["failures"]
    [todo] = remedies(gx_failed=result["failed"], metric_rules=[], champion=None, suite=str(suite), target="y")
    assert f"The check expect_column_values_to_be_between on 'grade' of your suite ({suite}, expectations[1]) could " \
           "not be evaluated" in todo, todo
    assert "fix that expectation in the suite" in todo and "range check" not in todo, todo


def _gate(tmp_path: Path, suite: Path) -> tuple[dict, dict]:
    """The gate on 200 training rows whose kept rows are 30 of them, an x column out of range in 6: its result and
    its gate.json."""
    import tasks.gate as gate_module
    from lossval.encoding import TabularEncoder

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x": rng.normal(50, 10, 200), "label": ["a", "b"] * 100})
    TabularEncoder(target="label", task="classification").fit(train).save(tmp_path / "encoder.json")
    rows = train.assign(row_id=[f"r{i}" for i in range(200)])
    rows.head(30).assign(x=[500.0] * 6 + list(rows["x"][6:30])).to_parquet(tmp_path / "kept.parquet")
    rows.to_parquet(tmp_path / "validation.parquet")
    metrics = {"before": {"accuracy": 0.8, "macro_f1": 0.8, "log_loss": 0.4},
               "after": {"accuracy": 0.82, "macro_f1": 0.81, "log_loss": 0.39}}
    config = config_from_dict({"data": "d.csv", "target": "label", "dataset": "msgs",
                               "gate": {"compare_with_champion": False, "suite": str(suite)}})
    out = gate_module.gate.fn(str(tmp_path / "kept.parquet"), str(tmp_path / "validation.parquet"),
                              str(tmp_path / "encoder.json"), metrics, config=config, rows_train=200,
                              run_dir=str(tmp_path))
    return out, json.loads((tmp_path / "gate.json").read_text())


_ROW_COUNT = {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 100000, "max_value": None}}
_LABEL_FILLED = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "label"}}


def test_a_suite_minimum_above_the_training_rows_is_said_to_be_the_suites_not_to_prune_less(tmp_path: Path) -> None:
    suite = _suite(tmp_path, _REGRESSION_ONLY, _ROW_COUNT, _LABEL_FILLED)
    out, _ = _gate(tmp_path, suite)
    assert not out["passed"]
    rows_remedy = [t for t in out["remedies"] if "row count" in t or "minimum" in t]
    assert rows_remedy == [f"The suite's minimum row count (100000) is above the 200 training rows, so no pruning can "
                           f"meet it: lower that minimum in the suite ({suite}, expectations[1])."], out["remedies"]


def test_gate_json_lists_each_check_with_its_suite_entry_or_as_a_range_check(tmp_path: Path) -> None:
    out, record = _gate(tmp_path, _suite(tmp_path, _REGRESSION_ONLY, _LABEL_FILLED, _ROW_COUNT))
    # In the suite file's order (GX's own order differs: a review), then lossval's range checks, with their bounds.
    ranged = record["checks"][2]
    assert ranged.pop("min_value") < 50 < ranged.pop("max_value")
    assert record["checks"] == [
        {"entry": 1, "source": "suite", "type": "expect_column_values_to_not_be_null", "column": "label",
         "success": True, "unexpected_percent": 0.0},
        {"entry": 2, "source": "suite", "type": "expect_table_row_count_to_be_between", "column": None,
         "success": False, "observed": 30, "min_value": 100000},
        {"entry": None, "source": "range check", "type": "expect_column_values_to_be_between", "column": "x",
         "success": False, "unexpected_percent": 20.0, "mostly": 0.95}], record["checks"]
    assert (record["checks_passed"], record["checks_failed"]) == (1, 2)
    assert record["gx"]["success"] is False and record["failures"] == out["failures"]  # the keys read elsewhere


def test_failed_checks_of_the_users_suite_get_one_remedy_naming_each_entry() -> None:
    from tasks.gate import remedies

    failed = [{"type": "expect_column_mean_to_be_between", "column": "x", "why": None, "entry": 3},
              {"type": "expect_column_values_to_be_unique", "column": "email", "why": None, "entry": 1},
              {"type": "expect_column_max_to_be_between", "column": "x", "why": None, "entry": 3}]
    assert remedies(gx_failed=failed, metric_rules=[], champion=None, suite="mine.json", target="y") == [
        "A check of your suite failed on the kept rows: fix the data, or the suite (mine.json, expectations[3], "
        "expectations[1]) if those expectations are wrong."]


def test_a_failed_raw_data_check_names_lossvals_suite_file_and_what_to_fix(tmp_path: Path) -> None:
    from tasks.ingest import MIN_ROWS, ingest

    data = tmp_path / "d.csv"
    pd.DataFrame({"x": range(MIN_ROWS + 4), "y": [1.0] * 4 + [None] * MIN_ROWS}).to_csv(data, index=False)
    with pytest.raises(InputError) as raised:
        ingest.fn(str(data), dataset="d", target="y", id_column=None, workspace=str(tmp_path / "ws"))
    message = str(raised.value)
    assert message.startswith(f"{data}: fails lossval's raw-data checks ({suite_file('raw_data')}): "
                              "expect_column_values_to_not_be_null on column 'y'"), message
    assert (f"the target column the config names ('y') must exist and be mostly filled, and there must be at least "
            f"{MIN_ROWS} rows; fix the data, or the config's target if it names the wrong column.") in message


def test_a_primary_metric_refusal_says_how_to_put_reviewed_rows_back() -> None:
    from tasks.gate import remedies

    todo = remedies(gx_failed=[], metric_rules=["primary"], champion=None, suite="s.json", target="y",
                    rows_train=100)
    assert len(todo) == 1 and "review quarantine.parquet (list rows to put back in pruning.keep_ids)" in todo[0]


def test_a_passed_gate_s_notes_reach_the_mlflow_run_description(tmp_path: Path) -> None:
    """A gate that passed on 20 test rows (one row moves accuracy by 0.05, five times the tolerance) and without range
    checks on a constant column said so only in gate.json: the run's description read "Gate: passed." alone."""
    from prefect.logging import disable_run_logger

    import tasks.gate as gate_module
    from lossval.encoding import TabularEncoder
    from tasks.track import _run_description

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x": rng.normal(50, 10, 200), "flat": rng.normal(1, 1, 200), "label": ["a", "b"] * 100})
    TabularEncoder(target="label", task="classification").fit(train).save(tmp_path / "encoder.json")
    rows = train.assign(row_id=[f"r{i}" for i in range(200)])
    rows.head(180).to_parquet(tmp_path / "kept.parquet")
    rows.assign(flat=1.0).to_parquet(tmp_path / "validation.parquet")  # one value: no range to check against
    rows.tail(20).to_parquet(tmp_path / "test.parquet")
    metrics = {"before": {"accuracy": 0.8, "macro_f1": 0.8, "log_loss": 0.4},
               "after": {"accuracy": 0.85, "macro_f1": 0.84, "log_loss": 0.39}}
    config = config_from_dict({"data": "d.csv", "target": "label", "dataset": "notes",
                               "gate": {"compare_with_champion": False}})
    with disable_run_logger():  # the small test split is also warned about in the run's log
        out = gate_module.gate.fn(str(tmp_path / "kept.parquet"), str(tmp_path / "validation.parquet"),
                                  str(tmp_path / "encoder.json"), metrics, config=config, rows_train=200,
                                  run_dir=str(tmp_path), test=str(tmp_path / "test.parquet"))
    assert out["passed"] and out["notes"] == json.loads((tmp_path / "gate.json").read_text())["notes"]
    stages = {"split": {"rows": {"train": 200}}, "prune": {"rows_kept": 180, "rows_pruned": 20},
              "retrain": {"metrics": metrics}, "value": {}}
    pruning = {"policy": "two_means", "flagged": 20, "quarantined": 20, "protected": 0, "cap_hit": False,
               "class_cap_hit": False, "capped_classes": [], "max_prune_fraction": 0.2, "threshold": 0.5}
    text = _run_description(config, stages, out, pruning)
    said = text[text.index("Gate: passed."):]
    assert "Gate notes: not range-checked, one value (or none) in the validation split's 200 rows: flat; " in said
    assert "the test split has 20 rows: one row moves accuracy by 0.050, more than gate.metric_tolerance (0.01)" in said


def test_a_test_split_of_one_row_is_counted_in_the_singular_in_the_gate_notes(tmp_path: Path) -> None:
    from prefect.logging import disable_run_logger

    import tasks.gate as gate_module
    from lossval.encoding import TabularEncoder

    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"x": rng.normal(50, 10, 60), "label": ["a", "b"] * 30, "row_id": [f"r{i}" for i in range(60)]})
    TabularEncoder(target="label", task="classification").fit(rows.drop(columns="row_id")).save(tmp_path / "enc.json")
    rows.to_parquet(tmp_path / "kept.parquet")
    rows.to_parquet(tmp_path / "validation.parquet")
    rows.tail(1).to_parquet(tmp_path / "test.parquet")
    metrics = {"before": {"accuracy": 1.0, "macro_f1": 1.0, "log_loss": 0.1},
               "after": {"accuracy": 1.0, "macro_f1": 1.0, "log_loss": 0.1}}
    config = config_from_dict({"data": "d.csv", "target": "label", "dataset": "one",
                               "gate": {"compare_with_champion": False}})
    with disable_run_logger():
        out = gate_module.gate.fn(str(tmp_path / "kept.parquet"), str(tmp_path / "validation.parquet"),
                                  str(tmp_path / "enc.json"), metrics, config=config, rows_train=60,
                                  run_dir=str(tmp_path), test=str(tmp_path / "test.parquet"))
    assert any(note.startswith("the test split has 1 row: one row moves accuracy by 1.000") for note in out["notes"]), \
        out["notes"]
