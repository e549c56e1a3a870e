"""Pipeline tasks run on their own, without a flow: options, pruning and split checks, leaked rows."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from lossval.config import config_from_dict
from lossval.errors import InputError, UnseenLevelsWarning
from tasks.split import check_encodable
from tasks.value import config_encoder, valuation_key
from tests.reliability._helpers import make_frame


def _config(**features):
    return config_from_dict({"data": "d.csv", "target": "label", "id_column": "id", "features": features})


def test_features_categorical_reaches_the_encoder_and_the_cache_key() -> None:
    df = make_frame(60).assign(a=[float(i % 7) for i in range(60)]).astype({"a": object})  # a code of 7 values
    df.loc[7, "a"] = "oops"  # 59 of 60 values parse: read as a numeric column with a typo
    with pytest.raises(InputError, match="features.categorical"):
        check_encodable(df, _config(), "classification")
    enc = check_encodable(df, _config(categorical=["a"]), "classification")
    assert "a" in enc.categorical_columns_
    assert valuation_key("s", _config(categorical=["a"])) != valuation_key("s", _config())


def test_features_numeric_reaches_the_encoder_and_the_cache_key() -> None:
    df = make_frame(60).astype({"a": object})
    df.loc[[3, 7, 11, 20, 33, 41, 50], "a"] = "unknown"  # 7 of 60 (12%): read as categories, with a warning
    with pytest.warns(UserWarning, match="column 'a' was read as categorical.*features.numeric: \\[a\\]"):
        enc = config_encoder(_config(), "classification", df.columns).fit(df)
    assert "a" in enc.categorical_columns_
    with pytest.raises(InputError, match=r"d.csv: non-numeric value 'unknown' in numeric column 'a' at row 3 "
                                         r"\(7 of 60 non-missing"):
        check_encodable(df, _config(numeric=["a"]), "classification")
    with pytest.raises(InputError, match=r"d.csv: column 'A' \(config key 'features.numeric'\) not found; did you mean "
                                         r"'a'\? Columns are \['id', 'a', 'b', 'colour', 'label'\]"):  # no row_id
        check_encodable(make_frame(60), _config(numeric=["A"]), "classification")
    enc = check_encodable(make_frame(60), _config(numeric=["a"]), "classification")
    assert "a" in enc.numeric_columns_
    # Declaring a column changes the key; configs without the option keep the key they had.
    assert valuation_key("s", _config(numeric=["a"])) not in {valuation_key("s", _config(numeric=["b"])),
                                                               valuation_key("s", _config())}
    assert valuation_key("s", _config(numeric=[])) == valuation_key("s", _config())


def test_features_exclude_typo_is_named_and_unused_pipeline_columns_are_not_required() -> None:
    df = make_frame(60)
    with pytest.raises(InputError, match=r"column 'Colour' \(config key 'features.exclude'\) not found; did you mean "
                                         r"'colour'\?"):
        check_encodable(df, _config(exclude=["Colour"]), "classification")
    # A timestamp column left in the config while another strategy is used: not in the data, not an error.
    cfg = config_from_dict({"data": "d.csv", "target": "label", "id_column": "id",
                            "validation": {"strategy": "stratified", "timestamp_column": "applied_at"}})
    enc = check_encodable(df, cfg, "classification")
    assert enc.feature_columns_ == ["a", "b", "colour"]  # id excluded as the pipeline's own column


def test_a_blank_text_target_is_an_empty_target_not_a_class(tmp_path) -> None:
    # A parquet file keeps "" as text (a CSV reads an empty cell as NaN): 80 such rows became a class of their own,
    # valued, pruned and trained on; a few failed later, at the split, as a class with no validation rows.
    import pandas as pd

    from lossval.encoding import TabularEncoder
    from tasks.ingest import check_target_and_ids

    df = make_frame(60)
    df.loc[[7, 20], "label"] = ["", " "]
    with pytest.raises(InputError, match=r"d.parquet: target column 'label' has 2 empty value\(s\), first at row 7"):
        check_target_and_ids(df, target="label", id_column="id", data_path="d.parquet")
    with pytest.raises(InputError, match=r"target column 'label' has 2 missing \(NaN/None\) or blank value\(s\), "
                                         r"first at row 7"):
        TabularEncoder(target="label", task="classification").fit(df)
    enc = TabularEncoder(target="label", task="classification").fit(make_frame(60))
    with pytest.raises(InputError, match=r"target 'label' has 2 missing \(NaN/None\) or blank value\(s\)"):
        enc.encode_target(df["label"])
    numbers = pd.Series([1.0, np.nan, 3.0])  # numbers: only NaN is empty
    from lossval.io import missing_or_blank

    assert missing_or_blank(numbers).tolist() == [False, True, False]
    assert missing_or_blank(pd.Series(["a", "", None, " x "], dtype="category")).tolist() == [False, True, True, False]


@pytest.mark.parametrize("leftover", [{"column": "b"}, {"timestamp_column": "b"}])
def test_a_validation_key_the_strategy_leaves_unread_removes_no_feature(leftover: dict) -> None:
    # Seen by a reviewer: switching examples/config.yaml from strategy column to stratified and leaving column: behind
    # dropped that column from the features, while the config warned the key had no effect and the values cache and
    # run keys (which leave it out) reused the other config's values and model.
    import warnings

    frame = make_frame(60).drop(columns="id")
    with warnings.catch_warnings():  # "is set but has no effect" (said once per process, so not asserted here)
        warnings.simplefilter("ignore", UserWarning)
        left = config_from_dict({"data": "d.csv", "target": "label", "validation": {"strategy": "stratified", **leftover}})
    assert f"validation.{next(iter(leftover))}" in left.unused_keys()
    plain = config_from_dict({"data": "d.csv", "target": "label"})
    assert config_encoder(left, "classification", frame.columns).fit(frame).feature_columns_ == ["a", "b", "colour"]
    assert valuation_key("s", left) == valuation_key("s", plain)
    used = config_from_dict({"data": "d.csv", "target": "label",  # where the strategy reads it, it is no feature
                             "validation": {"strategy": "column" if "column" in leftover else "latest", **leftover}})
    assert config_encoder(used, "classification", frame.columns).fit(frame).feature_columns_ == ["a", "colour"]


def test_the_valuation_key_holds_only_what_changes_the_values() -> None:
    def key(**raw):
        return valuation_key("s", config_from_dict({"data": "d.csv", "target": "label", **raw}))

    base = key()
    # Pruning decides which valued rows go, not the values: a new threshold or cap reuses them ...
    assert key(pruning={"policy": "threshold", "threshold": 0.3, "max_prune_fraction": 0.1}) == base
    # ... except the mixture policy, whose noise_prob column the valuation writes.
    assert key(pruning={"policy": "mixture"}) != base
    # A LossVal default written out is the default; the device is the kind that values here.
    assert key(lossval={"epochs": 30, "batch_size": 32}) == base
    assert key(lossval={"device": "cpu"}) == key(lossval={"device": "auto"}) == base  # no GPU on this machine
    assert key(lossval={"epochs": 31}) != base
    assert key(seed=1) != base
    # A valuation deployment's worker decides its device: the configured spelling counts there.
    remote = {"valuation_deployment": "lossval-value/gpu"}
    assert key(**remote, lossval={"device": "cuda"}) != key(**remote, lossval={"device": "auto"})


def test_the_valuation_key_follows_curated_files_by_content(tmp_path) -> None:
    test_file, valid_file = tmp_path / "test.csv", tmp_path / "valid.csv"
    make_frame(30, seed=5).to_csv(test_file, index=False)
    make_frame(30, seed=6).to_csv(valid_file, index=False)

    def key(**raw) -> str:
        return valuation_key("s", config_from_dict({"data": "d.csv", "target": "label", **raw}, base_dir=tmp_path))

    plain, with_test = key(), key(test_path="test.csv")
    assert plain != with_test  # the test rows leave the training split: other rows to value
    curated = key(validation={"strategy": "file", "path": "valid.csv"})
    flipped = make_frame(30, seed=6)
    flipped["label"] = flipped["label"].map({"yes": "no", "no": "yes"})
    flipped.to_csv(valid_file, index=False)
    assert key(validation={"strategy": "file", "path": "valid.csv"}) != curated  # same path, other labels
    os.utime(test_file, ns=(1, 1))
    assert key(test_path="test.csv") == with_test  # unchanged file (touched, same bytes), same key


def test_the_valuation_key_follows_a_curated_folder_by_content(tmp_path) -> None:
    folder = tmp_path / "tests"
    folder.mkdir()
    make_frame(30, seed=5).to_csv(folder / "a.csv", index=False)

    def key() -> str:
        return valuation_key("s", config_from_dict({"data": "d.csv", "target": "label", "test_path": "tests"},
                                                   base_dir=tmp_path))

    before = key()
    os.utime(folder / "a.csv", ns=(1, 1))  # touched, same bytes: its content keys it, not its time stamp
    assert key() == before
    make_frame(30, seed=7).to_csv(folder / "a.csv", index=False)
    assert key() != before


def test_values_cached_before_curated_files_kept_na_words_as_text_are_not_reused(tmp_path, monkeypatch) -> None:
    # Seen by a reviewer: a workspace valued before a curated validation file's 'NA' (North America) was read as text
    # reused those values after the upgrade ("values: reused ..."): the file's bytes, so its key, had not changed, while
    # a fresh workspace valued it otherwise (22 of 59 quarantined rows differed).
    import tasks.value

    (tmp_path / "valid.csv").write_text("x,region,label\n1.5,NA,yes\n2.5,EU,no\n")
    (tmp_path / "test.csv").write_text("x,region,label\n0.5,NA,no\n3.5,EU,yes\n")
    configs = {"validation file": {"validation": {"strategy": "file", "path": "valid.csv"}},
               "test file": {"test_path": "test.csv"}, "no curated file": {}}

    def keys() -> dict[str, str]:
        return {name: valuation_key("s", config_from_dict({"data": "d.csv", "target": "label", **raw},
                                                          base_dir=tmp_path)) for name, raw in configs.items()}

    now = keys()
    monkeypatch.setattr(tasks.value, "CURATED_READ_TAG", "")  # the key such values were cached under
    before = keys()
    assert now["validation file"] != before["validation file"] and now["test file"] != before["test file"]
    assert now["no curated file"] == before["no curated file"]  # nothing read differently: its values still serve


def test_the_gate_refuses_a_drop_inside_the_tolerance_when_no_metric_improved() -> None:
    from tasks.gate import metric_failures

    loans = {"before": {"accuracy": 0.8217, "macro_f1": 0.8115, "log_loss": 0.5317},  # the example config's run
             "after": {"accuracy": 0.8140, "macro_f1": 0.7992, "log_loss": 1.9604}}
    (why,) = metric_failures(loans, task="classification", tolerance=0.01, refuse_when_all_worse=True)
    assert why.startswith("every metric got worse: accuracy 0.8217 -> 0.8140") and "log_loss 0.5317 -> 1.9604" in why
    assert metric_failures(loans, task="classification", tolerance=0.01, refuse_when_all_worse=False) == []
    mixed = {"before": loans["before"], "after": {**loans["after"], "log_loss": 0.5}}  # better at something
    assert metric_failures(mixed, task="classification", tolerance=0.01, refuse_when_all_worse=True) == []
    regressed, all_worse = metric_failures(loans, task="classification", tolerance=0.005, refuse_when_all_worse=True)
    assert regressed.startswith("metric accuracy regressed") and all_worse.startswith("every metric got worse")
    reg = {"before": {"rmse": 3.0, "mae": 2.0, "r2": 0.50}, "after": {"rmse": 3.1, "mae": 2.1, "r2": 0.495}}
    assert metric_failures(reg, task="regression", tolerance=0.01, refuse_when_all_worse=True)[0].startswith(
        "every metric got worse: rmse 3.0000 -> 3.1000")
    # A drop inside the tolerance with the other metrics worse or unchanged gained nothing: refused.
    flat = {"before": loans["before"], "after": {**loans["after"], "macro_f1": loans["before"]["macro_f1"]}}
    (why,) = metric_failures(flat, task="classification", tolerance=0.01, refuse_when_all_worse=True)
    assert why == ("accuracy got worse and no other metric improved: accuracy 0.8217 -> "
                   "0.8140, macro_f1 0.8115 -> 0.8115, log_loss 0.5317 -> 1.9604 (gate.refuse_when_all_worse)")
    # The primary metric unchanged (ties are common on small test sets) and the others worse: nothing gained either.
    same = {"before": loans["before"], "after": {**loans["after"], "accuracy": loans["before"]["accuracy"]}}
    (why,) = metric_failures(same, task="classification", tolerance=0.01, refuse_when_all_worse=True)
    assert why.startswith("accuracy unchanged, no metric improved and macro_f1, log_loss got worse: accuracy 0.8217 -> "
                          "0.8217")
    # Something gained: the other metrics' losses are then for gate.metric_limits.
    gained = {"before": loans["before"], "after": {**same["after"], "macro_f1": 0.8116}}
    assert metric_failures(gained, task="classification", tolerance=0.01, refuse_when_all_worse=True) == []
    # Float noise is no change either way; a loss the metric's own limit allows is not counted as one.
    noise = {"before": loans["before"], "after": {**loans["before"], "log_loss": 0.5317 + 1e-12, "macro_f1": 0.8115 - 1e-15}}
    assert metric_failures(noise, task="classification", tolerance=0.01, refuse_when_all_worse=True) == []
    allowed = {"before": loans["before"], "after": {**loans["before"], "log_loss": 0.5417}}
    assert metric_failures(allowed, task="classification", tolerance=0.01, refuse_when_all_worse=True,
                           limits={"log_loss": 0.1}) == []
    (why,) = metric_failures(allowed, task="classification", tolerance=0.01, refuse_when_all_worse=True)
    assert why.startswith("accuracy unchanged, no metric improved and log_loss got worse")
    tiny_gain = {"before": loans["before"], "after": {**loans["after"], "macro_f1": 0.8115 + 1e-9}}
    assert metric_failures(tiny_gain, task="classification", tolerance=0.01, refuse_when_all_worse=True)  # no gain
    unchanged = {"before": loans["before"], "after": dict(loans["before"])}
    assert metric_failures(unchanged, task="classification", tolerance=0.01, refuse_when_all_worse=True) == []


def test_the_gate_limits_how_much_worse_a_chosen_metric_may_get() -> None:
    # Figures of an earlier 2dplanes demo, uncalibrated: accuracy up, log-loss nearly tripled; the two default rules
    # promote it.
    from tasks.gate import metric_failures

    planes = {"before": {"accuracy": 0.8475, "macro_f1": 0.8472, "log_loss": 0.3797},
              "after": {"accuracy": 0.8800, "macro_f1": 0.8800, "log_loss": 1.0316}}
    common = {"task": "classification", "tolerance": 0.01, "refuse_when_all_worse": True}
    assert metric_failures(planes, **common) == []
    assert metric_failures(planes, **common, limits={"log_loss": 0.7}) == []  # worse by 0.652: allowed
    (why,) = metric_failures(planes, **common, limits={"log_loss": 0.1, "accuracy": 0.0})
    assert why == "metric log_loss got worse by 0.6519 (0.3797 -> 1.0316), more than gate.metric_limits allows (0.1)"
    # Every rule that refuses is named, not only the first: the example config's run with a log-loss limit.
    loans = {"before": {"accuracy": 0.8217, "macro_f1": 0.8115, "log_loss": 0.5317},
             "after": {"accuracy": 0.8140, "macro_f1": 0.7992, "log_loss": 1.9604}}
    limit, all_worse = metric_failures(loans, **common, limits={"log_loss": 0.1})
    assert limit.startswith("metric log_loss got worse by 1.4287") and all_worse.startswith("every metric got worse")
    # Higher-is-better metrics count a drop; a metric the task does not report is a failure, named.
    reg = {"before": {"rmse": 3.0, "mae": 2.0, "r2": 0.50}, "after": {"rmse": 2.9, "mae": 2.2, "r2": 0.55}}
    nan = {"before": planes["before"], "after": {**planes["after"], "log_loss": float("nan")}}
    (why,) = metric_failures(nan, **common, limits={"log_loss": 0.7})  # could not be computed: not within a limit
    assert why.startswith("metric log_loss got worse by nan")
    (why,) = metric_failures(reg, task="regression", tolerance=0.01, refuse_when_all_worse=True,
                             limits={"mae": 0.1})
    assert why.startswith("metric mae got worse by 0.2000 (2.0000 -> 2.2000)")
    (why,) = metric_failures(reg, task="regression", tolerance=0.01, refuse_when_all_worse=True,
                             limits={"log_loss": 0.1})
    assert why == "gate.metric_limits names log_loss, which a regression run does not report (it reports rmse, mae, r2)"


def test_identical_rows_are_quarantined_or_kept_together_when_the_cap_cuts_between_them(tmp_path) -> None:
    import numpy as np
    import pandas as pd

    from tasks.prune import prune

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"row_id": [f"r{i}" for i in range(40)], "id": range(40), "x": rng.normal(size=40),
                          "label": ["yes", "no"] * 20})
    train.loc[[2, 3], ["x", "label"]] = [0.5, "no"]  # rows 2 and 3: identical apart from their ids
    train.to_parquet(tmp_path / "train.parquet", index=False)
    vals = pd.DataFrame({"row_id": train["row_id"], "value": np.r_[0.01, 0.02, 0.03, 0.03, np.ones(36)]})
    vals.to_parquet(tmp_path / "values.parquet", index=False)
    cfg = config_from_dict({"data": "d.csv", "target": "label", "id_column": "id",
                            "pruning": {"policy": "two_means", "max_prune_fraction": 0.1}})  # 2 of 20 "no" rows: r1 and one of the pair
    out = prune.fn(str(tmp_path / "train.parquet"), str(tmp_path / "values.parquet"), config=cfg,
                   task_kind="classification", run_dir=str(tmp_path))
    assert pd.read_parquet(out["paths"]["quarantine"])["row_id"].tolist() == ["r0", "r1"]  # the pair stays, whole
    assert out["cap_hit"] and out["flagged"] == 4 and out["kept_together"] == 1
    # The run summary's sentence accounts for the flagged row that stayed with its copy (4 flagged, 2 quarantined).
    from tasks.prune import describe_pruning

    said = describe_pruning({**out, "quarantined": out["rows_pruned"], "max_prune_fraction": 0.1})
    assert "; 1 stayed with their identical copies (a row and its copies are quarantined or kept together)" in said
    assert "let 2 go" in said
    # The review table says which kept rows the policy flagged, and what held each back: not just "kept".
    assert out["held_back"] == {"r2": "identical copies", "r3": "max_prune_fraction"}
    # Every row's outcome, lowest value first: the full list behind the review table, held-back rows included.
    decided = pd.read_parquet(out["paths"]["decisions"])
    assert decided["row_id"].tolist()[:5] == ["r0", "r1", "r2", "r3", "r4"] and decided["value"].is_monotonic_increasing
    assert decided["outcome"].tolist()[:5] == ["quarantined", "quarantined", "held back: identical copies",
                                               "held back: max_prune_fraction", "kept"]
    assert decided["flagged"].sum() == out["flagged"] == 4 and set(decided["row_id"]) == set(train["row_id"])
    from tasks.prune import DECISION_OUTCOMES

    assert set(decided["outcome"]) <= set(DECISION_OUTCOMES)
    from tasks.prune import lowest_value_rows

    table = lowest_value_rows(str(tmp_path / "values.parquet"), out["paths"]["kept"], out["paths"]["quarantine"],
                              target="label", n=5, held_back=out["held_back"], id_column="id")
    assert "id" not in table.columns  # row_id already holds the id column's values: shown once
    assert table["reason"].tolist()[2:] == ["kept: flagged, kept with its identical copies",
                                            "kept: flagged, held back by the max_prune_fraction cap", "kept"]
    assert table["reason"].tolist()[:2] == pd.read_parquet(out["paths"]["quarantine"])["lossval_reason"].tolist()


def test_rows_that_differ_only_in_an_excluded_column_are_quarantined_or_kept_together(tmp_path) -> None:
    # LossVal gives rows with identical features and label one value; the prune stage grouped rows identical in
    # every column, so two such rows with different timestamps (excluded) were parted by the cap: one
    # quarantined, its copy kept.
    import numpy as np
    import pandas as pd

    from tasks.prune import prune
    from tasks.value import config_encoder

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"row_id": [f"r{i}" for i in range(40)], "x": rng.normal(size=40),
                          "label": ["yes", "no"] * 20, "ts": [f"2026-01-{i % 28 + 1:02d}" for i in range(40)]})
    train.loc[[2, 3], ["x", "label"]] = [0.5, "no"]  # rows 2 and 3: the same example, exported on two days
    train.to_parquet(tmp_path / "train.parquet", index=False)
    vals = pd.DataFrame({"row_id": train["row_id"], "value": np.r_[0.01, 0.02, 0.03, 0.03, np.ones(36)]})
    vals.to_parquet(tmp_path / "values.parquet", index=False)
    cfg = config_from_dict({"data": "d.csv", "target": "label", "features": {"exclude": ["ts"]},
                            "pruning": {"policy": "two_means", "max_prune_fraction": 0.1}})
    encoder = config_encoder(cfg, "classification", train.columns)
    encoder.fit(train)
    encoder.save(tmp_path / "encoder.json")
    common = dict(config=cfg, task_kind="classification", run_dir=str(tmp_path))
    out = prune.fn(str(tmp_path / "train.parquet"), str(tmp_path / "values.parquet"), **common,
                   encoder=str(tmp_path / "encoder.json"))
    assert pd.read_parquet(out["paths"]["quarantine"])["row_id"].tolist() == ["r0", "r1"]  # the pair stays, whole
    assert out["held_back"]["r2"] == "identical copies"
    apart = prune.fn(str(tmp_path / "train.parquet"), str(tmp_path / "values.parquet"), **common)  # every column
    assert "r2" in pd.read_parquet(apart["paths"]["quarantine"])["row_id"].tolist()


def test_decisions_carry_p_noisy_when_the_mixture_policy_decides(tmp_path) -> None:
    import numpy as np
    import pandas as pd

    from tasks.prune import prune

    train = pd.DataFrame({"row_id": [f"r{i}" for i in range(40)], "x": range(40), "label": ["yes", "no"] * 20})
    train.to_parquet(tmp_path / "train.parquet", index=False)
    prob = np.r_[0.9, 0.8, 0.3, np.full(37, 0.01)]
    pd.DataFrame({"row_id": train["row_id"], "value": np.linspace(0.1, 1.0, 40), "noise_prob": prob}).to_parquet(
        tmp_path / "values.parquet", index=False)
    for policy, has_prob in (("mixture", True), ("two_means", False)):  # P(noisy) is shown where it decided
        cfg = config_from_dict({"data": "d.csv", "target": "label", "pruning": {"policy": policy}})
        out = prune.fn(str(tmp_path / "train.parquet"), str(tmp_path / "values.parquet"), config=cfg,
                       task_kind="classification", run_dir=str(tmp_path))
        decided = pd.read_parquet(out["paths"]["decisions"])
        assert ("noise_prob" in decided.columns) == has_prob
    assert decided.columns.tolist() == ["row_id", "value", "flagged", "outcome"]
    cfg = config_from_dict({"data": "d.csv", "target": "label", "pruning": {"policy": "mixture"}})
    out = prune.fn(str(tmp_path / "train.parquet"), str(tmp_path / "values.parquet"), config=cfg,
                   task_kind="classification", run_dir=str(tmp_path))
    decided = pd.read_parquet(out["paths"]["decisions"])
    assert decided["noise_prob"].tolist()[:3] == [0.9, 0.8, 0.3]
    assert decided["outcome"].tolist()[:3] == ["quarantined", "quarantined", "kept"]  # P(noisy) >= 0.5 went


def test_quarantine_keeps_the_rows_own_value_and_reason_columns(tmp_path) -> None:
    import numpy as np
    import pandas as pd

    from tasks.prune import prune

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"row_id": [f"r{i}" for i in range(40)], "value": rng.normal(5e4, 1e4, 40),
                          "reason": ["education"] * 40, "label": ["yes", "no"] * 20})
    train.to_parquet(tmp_path / "train.parquet", index=False)
    vals = pd.DataFrame({"row_id": train["row_id"], "value": np.r_[np.full(4, 0.01), np.ones(36)]})
    vals.to_parquet(tmp_path / "values.parquet", index=False)
    cfg = config_from_dict({"data": "d.csv", "target": "label", "pruning": {"policy": "two_means"}})
    out = prune.fn(str(tmp_path / "train.parquet"), str(tmp_path / "values.parquet"), config=cfg,
                   task_kind="classification", run_dir=str(tmp_path))
    q = pd.read_parquet(out["paths"]["quarantine"])
    assert out["rows_pruned"] == 4 and q["row_id"].tolist() == ["r0", "r1", "r2", "r3"]
    pd.testing.assert_frame_equal(q[train.columns].reset_index(drop=True), train.iloc[:4])  # whole, unchanged
    assert (q["lossval_value"] == 0.01).all() and q["lossval_reason"].str.contains("two_means|threshold").all()

    # What a reviewer sees (MLflow's lowest_values.json, Prefect's table): each lowest row with its label and columns.
    from tasks.prune import lowest_value_rows

    when = pd.Series(pd.date_range("2026-01-01", periods=40)).where(np.arange(40) % 3 > 0)  # with gaps
    train.assign(when=when).iloc[:4].assign(lossval_value=0.01, lossval_reason="two_means").to_parquet(
        tmp_path / "q.parquet", index=False)
    train.assign(when=when).iloc[4:].to_parquet(tmp_path / "k.parquet", index=False)
    table = lowest_value_rows(str(tmp_path / "values.parquet"), str(tmp_path / "k.parquet"), str(tmp_path / "q.parquet"),
                              target="label", n=6)
    assert table.columns.tolist() == ["row_id", "value", "reason", "label", "data:value", "data:reason", "when"]
    assert table["row_id"].tolist() == ["r0", "r1", "r2", "r3", "r4", "r5"] and table["value"].is_monotonic_increasing
    assert table["reason"].tolist() == ["two_means"] * 4 + ["kept"] * 2
    assert table["label"].tolist() == train["label"].iloc[:6].tolist()
    assert table["data:value"].tolist() == pytest.approx(train["value"].iloc[:6].tolist())  # the input's own 'value'
    assert table["when"].tolist() == [None, "2026-01-02 00:00:00", "2026-01-03 00:00:00", None,
                                       "2026-01-05 00:00:00", "2026-01-06 00:00:00"]
    table.to_json()  # serialises as MLflow's table view needs
    from tasks.prune import _cell_text

    assert [_cell_text(v) for v in (None, float("nan"), pd.NaT, [1, 2], np.array([3]), {"a": 1}, 2.5, [None])] == \
        [None, None, None, "[1, 2]", "[3]", "{'a': 1}", "2.5", "[None]"]
    # Input columns named 'value' and 'data:value': both shown, neither overwritten.
    clash = train.assign(**{"data:value": 7.0})
    clash.iloc[:4].assign(lossval_value=0.01, lossval_reason="two_means").to_parquet(tmp_path / "q2.parquet", index=False)
    clash.iloc[4:].to_parquet(tmp_path / "k2.parquet", index=False)
    both = lowest_value_rows(str(tmp_path / "values.parquet"), str(tmp_path / "k2.parquet"), str(tmp_path / "q2.parquet"),
                             target="label", n=3)
    assert both.columns.tolist() == ["row_id", "value", "reason", "label", "data:data:value", "data:reason", "data:value"]
    assert both["data:value"].tolist() == [7.0] * 3 and both.columns.is_unique
    narrow = lowest_value_rows(str(tmp_path / "values.parquet"), str(tmp_path / "k.parquet"), str(tmp_path / "q.parquet"),
                               target="label", n=3, max_data_columns=2)
    assert narrow.columns.tolist() == ["row_id", "value", "reason", "label", "data:value"]


def test_input_columns_named_like_lossval_s_quarantine_columns_are_refused(tmp_path) -> None:
    from tasks.ingest import ingest

    df = make_frame(30).assign(lossval_reason="x")
    df.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(InputError, match=r"\['lossval_reason'\], which lossval adds to quarantined rows"):
        ingest.fn(str(tmp_path / "d.csv"), dataset="d", target="label", id_column=None, workspace=str(tmp_path / "ws"),
                  stage_dir=str(tmp_path / "stage"))


@pytest.mark.parametrize("folder", [False, True])
def test_a_file_written_while_it_is_read_is_refused_not_snapshotted(tmp_path, monkeypatch, folder: bool) -> None:
    # A delivery rewritten in place between a flow's checks and ingest's read: a model on part of a file.
    import tasks.ingest
    from tasks.ingest import ingest

    (tmp_path / "in").mkdir()
    data = tmp_path / "in" / "d.csv"
    make_frame(40).to_csv(data, index=False)
    real_read = tasks.ingest.read_table

    def read_while_written(path, **kwargs):  # noqa: ANN001, ANN202
        df = real_read(path, **kwargs)
        with open(data, "a") as fh:
            fh.write("r0-99,0.1,0.2,red,no\n")
        return df

    monkeypatch.setattr(tasks.ingest, "read_table", read_while_written)
    with pytest.raises(InputError, match=r"d\.csv changed while it was read .* still being written. Nothing was snapshotted"):
        ingest.fn(str(data.parent if folder else data), dataset="d", target="label", id_column=None,
                  workspace=str(tmp_path / "ws"), stage_dir=str(tmp_path / "stage"))
    assert not (tmp_path / "ws").exists() or not list((tmp_path / "ws").rglob("*.parquet"))
    monkeypatch.setattr(tasks.ingest, "read_table", real_read)  # complete now: snapshotted
    out = ingest.fn(str(data), dataset="d", target="label", id_column=None, workspace=str(tmp_path / "ws"))
    assert out["rows"] == 41


def test_ingest_sets_aside_the_configs_folder_in_the_data_folder_and_refuses_another(tmp_path) -> None:
    # flows.clean passes the config's validation/test folders (config.set_aside_paths()); any other folder named like
    # a data file in the data folder was left out of the snapshot without a word.
    from tasks.ingest import ingest

    (tmp_path / "in" / "holdout.parquet").mkdir(parents=True)
    make_frame(40).to_csv(tmp_path / "in" / "d.csv", index=False)
    make_frame(10).to_parquet(tmp_path / "in" / "holdout.parquet" / "part-0.parquet", index=False)
    config = config_from_dict({"data": "in", "target": "label", "test_path": "in/holdout.parquet"}, base_dir=tmp_path)
    kwargs = {"dataset": "d", "target": "label", "id_column": None, "workspace": str(tmp_path / "ws")}
    assert ingest.fn(config.data, **kwargs, set_aside=config.set_aside_paths())["rows"] == 40
    with pytest.raises(InputError, match=r"1 folder named like a data file \('holdout\.parquet'\) is in the data"):
        ingest.fn(config.data, **kwargs)


def test_a_stored_snapshot_edited_after_it_was_written_is_set_aside_and_written_again(tmp_path, caplog) -> None:
    # Seen by a review: the store trusted a snapshot by its name. A run after an edit trained on the edited rows,
    # pruned them with values cached for the original ones, and `lossval verify` passed; flipped labels crashed.
    import pandas as pd

    from lossval.io import frame_fingerprint
    from tasks.ingest import ingest

    make_frame(40).to_csv(tmp_path / "d.csv", index=False)

    def run() -> dict:
        return ingest.fn(str(tmp_path / "d.csv"), dataset="d", target="label", id_column=None,
                         workspace=str(tmp_path / "ws"))

    first = run()
    stored = Path(first["snapshot"])
    original = pd.read_parquet(stored)
    assert frame_fingerprint(original) == first["snapshot_hash"] and stored.name == f"{first['snapshot_hash']}.parquet"
    assert run()["snapshot"] == str(stored) and "stored snapshot" not in caplog.text  # intact: used as it is
    original.assign(a=original["a"] * 10).to_parquet(stored)  # edited by hand
    again = run()
    assert again["snapshot"] == str(stored) and again["snapshot_hash"] == first["snapshot_hash"]
    pd.testing.assert_frame_equal(pd.read_parquet(stored), original)  # the input's rows again
    [aside] = stored.parent.glob("*.aside")
    assert aside.name.startswith(f"{first['snapshot_hash']}.changed-") and aside.name.endswith(".parquet.aside")
    assert pd.read_parquet(aside)["a"].tolist() == (original["a"] * 10).tolist()  # kept, not deleted
    assert f"stored snapshot {stored} no longer holds the rows its name says" in caplog.text
    stored.write_bytes(b"not parquet")  # damaged: the same
    run()
    pd.testing.assert_frame_equal(pd.read_parquet(stored), original)
    assert len(list(stored.parent.glob("*.aside"))) == 2 and "unreadable (" in caplog.text


def test_declared_categorical_csv_columns_keep_their_codes(tmp_path) -> None:
    import pandas as pd

    from tasks.ingest import ingest

    df = make_frame(30).assign(zip=[f"{i % 7:05d}" for i in range(30)])  # "00003": a code, not the number 3
    df.to_csv(tmp_path / "d.csv", index=False)

    def snapshot(**kwargs) -> pd.DataFrame:
        out = ingest.fn(str(tmp_path / "d.csv"), dataset="d", target="label", id_column=None,
                        workspace=str(tmp_path / "ws"), **kwargs)
        return pd.read_parquet(out["snapshot"])

    assert snapshot()["zip"].tolist()[:3] == [0, 1, 2]  # undeclared: pandas parses the digits
    codes = snapshot(categorical=["zip"])["zip"]
    assert codes.tolist() == df["zip"].tolist() and codes.tolist()[:3] == ["00000", "00001", "00002"]


def test_a_policy_that_would_prune_every_row_is_refused_by_name(tmp_path) -> None:
    import numpy as np
    import pandas as pd

    from tasks.prune import prune

    train = make_frame(40).assign(row_id=[f"r{i}" for i in range(40)])
    train.to_parquet(tmp_path / "train.parquet", index=False)
    pd.DataFrame({"row_id": train["row_id"], "value": np.linspace(0, 1, 40)}).to_parquet(tmp_path / "v.parquet")
    cfg = config_from_dict({"data": "d.csv", "target": "label",
                            "pruning": {"policy": "fraction", "fraction": 1.0, "max_prune_fraction": 1.0}})
    with pytest.raises(InputError, match=r"would keep 0 of 40 training rows; retraining needs at least 10.*"
                                         r"max_prune_fraction"):
        prune.fn(str(tmp_path / "train.parquet"), str(tmp_path / "v.parquet"), config=cfg, task_kind="regression",
                 run_dir=str(tmp_path))
    assert not (tmp_path / "kept.parquet").exists() and not (tmp_path / "quarantine.parquet").exists()


def test_a_classification_run_without_test_rows_is_refused_before_valuing(tmp_path) -> None:
    from lossval.io import assign_row_ids
    from tasks.split import split

    df = make_frame(60)
    df.insert(0, "row_id", assign_row_ids(df).to_numpy())
    df.to_parquet(tmp_path / "snap.parquet", index=False)
    cfg = config_from_dict({"data": "d.csv", "target": "label", "test_fraction": 0.001})
    with pytest.raises(InputError, match=r"d.csv: 0 test row\(s\); the before/after comparison needs at least 2.*"
                                         r"larger test_fraction"):
        split.fn(str(tmp_path / "snap.parquet"), config=cfg, task_kind="classification", run_dir=str(tmp_path))
    assert not list(tmp_path.glob("train.parquet"))


def test_a_curated_validation_file_of_one_row_is_refused_in_words_that_count_it(tmp_path) -> None:
    from lossval.io import assign_row_ids
    from tasks.split import split

    df = make_frame(60)
    snap = df.iloc[1:].reset_index(drop=True)
    snap.insert(0, "row_id", assign_row_ids(snap).to_numpy())
    snap.to_parquet(tmp_path / "snap.parquet", index=False)
    df.iloc[:1].to_csv(tmp_path / "valid.csv", index=False)
    cfg = config_from_dict({"data": "d.csv", "target": "label",
                            "validation": {"strategy": "file", "path": "valid.csv"}}, base_dir=tmp_path)
    with pytest.raises(InputError, match=r"valid\.csv: has 1 row; at least 10 are needed\.$"):  # not "1 rows"
        split.fn(str(tmp_path / "snap.parquet"), config=cfg, task_kind="classification", run_dir=str(tmp_path))


def test_curated_validation_rows_that_are_also_in_the_data_are_warned_about(tmp_path, caplog) -> None:
    import pandas as pd

    from lossval.io import assign_row_ids
    from tasks.split import split

    df = make_frame(100)
    snap = df.iloc[12:].reset_index(drop=True)
    snap.insert(0, "row_id", assign_row_ids(snap).to_numpy())
    snap.to_parquet(tmp_path / "snap.parquet", index=False)

    def run(validation: pd.DataFrame) -> None:
        validation.to_csv(tmp_path / "valid.csv", index=False)
        cfg = config_from_dict({"data": "d.csv", "target": "label", "validation": {"strategy": "file", "path": "valid.csv"}},
                               base_dir=tmp_path)
        split.fn(str(tmp_path / "snap.parquet"), config=cfg, task_kind="classification", run_dir=str(tmp_path))

    run(df.iloc[:12])  # rows the data does not hold
    assert "also appear" not in caplog.text
    run(pd.concat([df.iloc[:12], df.iloc[50:53]]))  # 3 of them are training rows too
    assert f"3 of 15 validation rows also appear, identical, in the data ({tmp_path / 'd.csv'}), first at validation row 12 (data row 38)" in caplog.text
    assert "are not in the data" not in caplog.text
    run(df.iloc[:12].assign(note="checked by hand"))  # a column the data lacks: ignored, and said so
    assert f"valid.csv: column(s) ['note'] are not in the data ({tmp_path / 'd.csv'}) and are ignored." in caplog.text


def test_curated_validation_and_test_files_that_share_rows_are_warned_about(tmp_path, caplog) -> None:
    """A review saw the same 30 rows saved as val.csv and test.csv split without a word: the test then scores rows
    that calibration and the gate's ranges were fitted on."""
    from lossval.io import assign_row_ids
    from tasks.split import split

    df = make_frame(140)
    snap = df.iloc[60:].reset_index(drop=True)
    snap.insert(0, "row_id", assign_row_ids(snap).to_numpy())
    snap.to_parquet(tmp_path / "snap.parquet", index=False)
    df.iloc[:30].to_csv(tmp_path / "valid.csv", index=False)
    cfg = config_from_dict({"data": "d.csv", "target": "label", "validation": {"strategy": "file", "path": "valid.csv"},
                            "test_path": "test.csv"}, base_dir=tmp_path)
    df.iloc[30:60].to_csv(tmp_path / "test.csv", index=False)
    split.fn(str(tmp_path / "snap.parquet"), config=cfg, task_kind="classification", run_dir=str(tmp_path))
    assert "also appear, identical, in the validation file" not in caplog.text
    df.iloc[20:50].to_csv(tmp_path / "test.csv", index=False)  # 10 of the validation rows
    split.fn(str(tmp_path / "snap.parquet"), config=cfg, task_kind="classification", run_dir=str(tmp_path))
    assert (f"{tmp_path / 'test.csv'}: 10 of 30 test rows also appear, identical, in the validation file "
            f"({tmp_path / 'valid.csv'})") in caplog.text


def test_a_curated_csv_reads_its_labels_as_text_when_the_data_holds_them_as_text(tmp_path) -> None:
    import pandas as pd

    from lossval.io import assign_row_ids
    from tasks.split import split

    df = make_frame(100, classes=("0", "1"))  # labels "0"/"1": a CSV would read them back as the numbers 0/1
    snap = df.iloc[20:].reset_index(drop=True)
    snap.insert(0, "row_id", assign_row_ids(snap).to_numpy())
    snap.to_parquet(tmp_path / "snap.parquet", index=False)
    df.iloc[:20].to_csv(tmp_path / "valid.csv", index=False)
    cfg = config_from_dict({"data": "d.csv", "target": "label", "validation": {"strategy": "file", "path": "valid.csv"}},
                           base_dir=tmp_path)
    out = split.fn(str(tmp_path / "snap.parquet"), config=cfg, task_kind="classification", run_dir=str(tmp_path))
    assert sorted(pd.read_parquet(out["paths"]["validation"])["label"].unique()) == ["0", "1"]


def test_unseen_levels_of_a_curated_validation_file_are_warned_about_once(tmp_path) -> None:
    import warnings

    from tasks.value import value

    train = make_frame(80).assign(row_id=[f"r{i}" for i in range(80)])
    valid = make_frame(30, seed=3).assign(row_id=[f"v{i}" for i in range(30)], colour=lambda d: d["colour"].map(
        {c: str(i) for i, c in enumerate(sorted(train["colour"].unique()))}))  # colours as codes
    train.to_parquet(tmp_path / "train.parquet", index=False)
    valid.to_parquet(tmp_path / "validation.parquet", index=False)

    def run(strategy: dict) -> list[str]:
        cfg = config_from_dict({"data": "d.csv", "target": "label", "validation": strategy, "lossval": {"epochs": 2}},
                               base_dir=tmp_path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value.fn(str(tmp_path / "train.parquet"), str(tmp_path / "validation.parquet"), key=f"k{len(strategy)}",
                     config=cfg, workspace=str(tmp_path / "ws"))
        return [str(w.message) for w in caught if issubclass(w.category, UnseenLevelsWarning)]

    # From the data: the value stage is the one place to say it.
    assert [m.startswith("validation split: categorical column 'colour'") for m in run({"strategy": "stratified"})] == [True]
    # A curated file: the split stage said it already, naming the file.
    assert run({"strategy": "file", "path": "validation.parquet"}) == []


def test_the_value_stage_reads_a_regression_target_stored_as_text_as_numbers(tmp_path) -> None:
    import pandas as pd

    from tasks.value import value

    # LossVal.fit refuses text targets (as it refuses text features); the stage passes the numbers the encoder read.
    def frame(n: int, seed: int, prefix: str, as_text: bool) -> pd.DataFrame:
        rows = make_frame(n, seed=seed).assign(row_id=[f"{prefix}{i}" for i in range(n)])
        label = (2 * rows["a"] + rows["b"]).round(4)
        return rows.assign(label=[f"{v:.4f}" for v in label] if as_text else label)

    cfg = config_from_dict({"data": "d.csv", "target": "label", "id_column": "id", "lossval": {"epochs": 2}},
                           base_dir=tmp_path)
    values = {}
    for as_text in (True, False):
        frame(40, 0, "r", as_text).to_parquet(tmp_path / "train.parquet", index=False)
        frame(30, 3, "v", as_text).to_parquet(tmp_path / "validation.parquet", index=False)
        out = value.fn(str(tmp_path / "train.parquet"), str(tmp_path / "validation.parquet"), key="k", config=cfg,
                       workspace=str(tmp_path / f"ws-{as_text}"))
        values[as_text] = pd.read_parquet(out["values"])
    # Each row's text read as its own number: the same values as the numbers themselves give.
    assert len(values[True]) == 40
    pd.testing.assert_frame_equal(values[True], values[False])


def test_the_valuation_params_say_what_the_fit_used_where_lossval_changed_an_option(tmp_path) -> None:
    from lossval.io import read_json
    from tasks.track import valuation_params
    from tasks.value import value

    # 33 rows at the default 32 would leave a one-row last batch (LossVal then uses 31); 30 validation rows are
    # fewer than the default val_subsample of 64. MLflow's valuation.* params once said 32, 64 and average_last 5.
    make_frame(33).assign(row_id=[f"r{i}" for i in range(33)]).to_parquet(tmp_path / "train.parquet", index=False)
    make_frame(30, seed=3).assign(row_id=[f"v{i}" for i in range(30)]).to_parquet(tmp_path / "validation.parquet",
                                                                                   index=False)
    cfg = config_from_dict({"data": "d.csv", "target": "label", "id_column": "id", "lossval": {"epochs": 2}},
                           base_dir=tmp_path)
    out = value.fn(str(tmp_path / "train.parquet"), str(tmp_path / "validation.parquet"), key="k", config=cfg,
                   workspace=str(tmp_path / "ws"))
    used = ("valuation.batch_size", "valuation.val_subsample", "valuation.average_last")
    params = valuation_params(read_json(out["report"]))
    assert [params[k] for k in used] == ["31", "30", "2"]  # 2 epochs: the values average the last 2, not 5
    # a report written before these were recorded still gives the options as configured
    older = valuation_params({k: v for k, v in read_json(out["report"]).items() if k != "resolved"})
    assert [older[k] for k in used] == ["32", "64", "5"]


def test_run_cleaning_outside_a_flow_says_how_to_call_it(tmp_path) -> None:
    from flows.clean import run_cleaning
    from lossval.errors import LossvalError

    with pytest.raises(LossvalError, match=r"inside a Prefect flow.*clean_dataset"):
        run_cleaning(config_from_dict({"data": "d.csv", "target": "y"}), workspace=str(tmp_path / "ws"))
    assert not (tmp_path / "ws").exists()


def test_schema_changes_name_what_the_champion_would_not_take_or_return() -> None:
    import pandas as pd

    from lossval.encoding import TabularEncoder
    from tasks.champion import schema_changes

    rows = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0] * 5, "b": ["x", "y"] * 10, "code": [10, 20, 30, 40] * 5,
                         "label": ["p", "q"] * 10})

    def fitted(df: pd.DataFrame, **options) -> TabularEncoder:
        return TabularEncoder(target="label", task="classification", **options).fit(df)

    champion = fitted(rows)
    assert schema_changes(champion, fitted(rows.copy())) == []
    changed = rows.drop(columns=["b"]).assign(extra=1.5 * rows["a"], label=["p", "q", "r", "q"] * 5)
    assert schema_changes(champion, fitted(changed, categorical=["code"])) == [
        "feature column(s) added: ['extra']", "feature column(s) removed: ['b']",
        "column(s) read as another kind: 'code' numeric -> categorical", "classes changed: new ['r']"]
    regression = TabularEncoder(target="a", task="regression").fit(rows)
    assert schema_changes(champion, regression)[0] == "task classification -> regression"


def test_the_gate_decides_the_same_whatever_the_units_of_a_regression_target() -> None:
    """A reviewer's case: a 10% better mae counted as a tie when the target is in small units (an absolute 5e-5
    tie), so the run was refused as "nothing improved"; the same run in larger units passed."""
    from tasks.gate import metric_failures

    def metrics(scale: float) -> dict:
        return {"before": {"rmse": 3.0e-5 * scale, "mae": 2.0e-5 * scale, "r2": 0.900},
                "after": {"rmse": 3.01e-5 * scale, "mae": 1.8e-5 * scale, "r2": 0.899}}

    for scale in (1.0, 1.0, 1e3, 1e6):
        assert metric_failures(metrics(scale), task="regression", tolerance=0.01, refuse_when_all_worse=True) == []
    worse = {"before": {"rmse": 3.0e-5, "mae": 2.0e-5, "r2": 0.900}, "after": {"rmse": 3.3e-5, "mae": 2.2e-5, "r2": 0.89}}
    (why,) = metric_failures(worse, task="regression", tolerance=0.01, refuse_when_all_worse=True)
    assert why.startswith("every metric got worse: rmse 3.0000e-05 -> 3.3000e-05, mae 2.0000e-05 -> 2.2000e-05")
    noise = {"before": {"rmse": 3.0e6, "mae": 2.0e6, "r2": 0.9}, "after": {"rmse": 3.0e6 + 1.0, "mae": 2.0e6, "r2": 0.9}}
    assert metric_failures(noise, task="regression", tolerance=0.01, refuse_when_all_worse=True) == []  # 3e-7: a tie


def test_the_gates_row_minimum_is_the_pruning_caps_own_count_at_any_size() -> None:
    """At tens of millions of rows the gate's ceil((1 - f) n - 1e-9) asked for one row more than pruning to the cap
    keeps (the cap forgives float round-off relatively), and refused a run pruned exactly to the cap."""
    import numpy as np

    from lossval.pruning import FractionPolicy, prune
    from tasks.gate import min_kept_rows

    assert min_kept_rows(0.45, 41_943_060) == 23_068_683  # was 23,068,684
    assert min_kept_rows(0.18, 31_019_250) == 25_435_785  # was 25,435,786
    values = np.random.default_rng(0).normal(size=341)
    for fraction in (0.0, 0.2, 0.29, 0.45, 1.0):
        kept = int(prune(values, policy=FractionPolicy(1.0), max_prune_fraction=fraction).keep.sum())
        assert kept == min_kept_rows(fraction, 341), fraction


def test_a_new_target_or_labels_of_another_type_are_schema_changes() -> None:
    """Labels 0/1 read again as "0"/"1" have the same text: the old check saw no change, and the champion, unable
    to read the text labels, was never scored. A new target column was no change either."""
    import pandas as pd

    from lossval.encoding import TabularEncoder
    from tasks.champion import schema_changes

    rows = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0] * 5, "price": [5.0, 1.0, 3.0, 2.0, 9.0] * 4,
                         "margin": [0.1, 0.4, 0.2, 0.3] * 5, "label": [0, 1] * 10})
    ints = TabularEncoder(target="label", task="classification", exclude=["price", "margin"]).fit(rows)
    text = TabularEncoder(target="label", task="classification", exclude=["price", "margin"]).fit(
        rows.assign(label=rows["label"].astype(str)))
    assert schema_changes(ints, text) == ["class labels int -> str (the model would return '0' for 0)"]
    assert schema_changes(ints, ints) == []
    price = TabularEncoder(target="price", task="regression", exclude=["margin", "label"]).fit(rows)
    margin = TabularEncoder(target="margin", task="regression", exclude=["price", "label"]).fit(rows)
    assert schema_changes(price, margin) == ["target 'price' -> 'margin'"]  # the same features, another quantity


def test_a_drop_exactly_at_a_tolerance_or_limit_passes_at_every_metric_level() -> None:
    # 0.90 - 0.88 is 0.020000000000000018 in floats: a drop of exactly gate.metric_limits' 0.02 was refused at 26 of
    # 31 accuracy levels on 100 test rows ("got worse by 0.0200 ... more than ... allows (0.02)"), and one of exactly
    # the tolerance at some levels too.
    from tasks.gate import metric_failures, within

    def acc(k: int) -> float:  # accuracy on 100 test rows, as lossval.retrain.evaluate computes it
        return float(np.mean(np.arange(100) < k))

    for k in range(70, 101):
        m = {"before": {"accuracy": acc(k), "macro_f1": 0.5, "log_loss": 0.3},
             "after": {"accuracy": acc(k - 2), "macro_f1": 0.6, "log_loss": 0.2}}
        common = {"task": "classification", "refuse_when_all_worse": True}
        assert metric_failures(m, tolerance=0.02, **common) == [], k
        assert metric_failures(m, tolerance=0.05, limits={"accuracy": 0.02}, **common) == [], k
        assert len(metric_failures(m, tolerance=0.05, limits={"accuracy": 0.01}, **common)) == 1, k  # a real excess
        assert len(metric_failures(m, tolerance=0.01, **common)) == 1, k
    assert within(0.020000000000000018, 0.02, 0.9, 0.88) and not within(0.0200001, 0.02, 0.9, 0.88)
    assert not within(float("nan"), 0.02) and within(-0.5, 0.0)


def test_a_drop_a_metric_limit_allows_is_not_called_unchanged() -> None:
    from tasks.gate import metric_failures

    m = {"before": {"accuracy": 0.90, "macro_f1": 0.88, "log_loss": 0.30},
         "after": {"accuracy": 0.89, "macro_f1": 0.87, "log_loss": 0.30}}
    (why,) = metric_failures(m, task="classification", tolerance=0.02, refuse_when_all_worse=True,
                             limits={"accuracy": 0.02})
    assert why.startswith("accuracy fell (within gate.metric_limits), no metric improved and macro_f1 got worse: "
                          "accuracy 0.9000 -> 0.8900"), why


def test_the_gate_range_checks_numbers_stored_as_text_as_numbers(tmp_path) -> None:
    # One text cell once made a CSV column text; the encoder reads it as numbers, but GX compared strings with the
    # float bounds, raised, and the gate refused a run whose values all lay in range, saying they lay outside it.
    # With both splits as text the column was not range-checked at all.
    import pandas as pd

    import tasks.gate as gate_module
    from lossval.encoding import TabularEncoder

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x": rng.normal(50, 10, 200), "label": ["a", "b"] * 100})
    enc = TabularEncoder(target="label", task="classification").fit(train)
    enc.save(tmp_path / "encoder.json")
    rows = train.assign(row_id=[f"r{i}" for i in range(200)])
    metrics = {"before": {"accuracy": 0.8, "macro_f1": 0.8, "log_loss": 0.4},
               "after": {"accuracy": 0.82, "macro_f1": 0.81, "log_loss": 0.39}}
    config = config_from_dict({"data": "d.csv", "target": "label", "dataset": "textnum",
                               "gate": {"compare_with_champion": False}})

    def run(kept: pd.DataFrame, validation: pd.DataFrame) -> dict:
        kept.to_parquet(tmp_path / "kept.parquet")
        validation.to_parquet(tmp_path / "validation.parquet")
        out = gate_module.gate.fn(str(tmp_path / "kept.parquet"), str(tmp_path / "validation.parquet"),
                                  str(tmp_path / "encoder.json"), metrics, config=config, rows_train=200,
                                  run_dir=str(tmp_path))
        return {**out, "checked": json.loads((tmp_path / "gate.json").read_text())["gx"]}

    as_text = rows.assign(x=rows["x"].map(repr))
    result = run(as_text, rows)  # kept rows as text, curated validation rows as numbers: all in range
    assert result["passed"], result["failures"]
    ranged = [r for r in result["checked"]["validation_results"][0]["expectations"]
              if r["expectation_type"] == "expect_column_values_to_be_between"]
    assert len(ranged) == 1 and ranged[0]["success"]
    result = run(as_text.assign(x=as_text["x"].where(rows.index >= 60, "500.0")), as_text)  # both text, 30% out
    assert not result["passed"] and "expect_column_values_to_be_between on column 'x'" in result["failures"][0]
    assert "(30.0% unexpected, at most 5% allowed)" in result["failures"][0]
    assert "lie outside the validation split" in result["remedies"][0]


def test_a_range_check_s_bounds_are_withheld_when_data_rows_stay_out_of_tracking(tmp_path) -> None:
    # The range checks' bounds are the validation split's min and max widened by a known margin: with log_quarantine
    # off they would give those rows' min and max back, so what leaves the run folder withholds them.
    import pandas as pd

    import tasks.gate as gate_module
    from lossval.encoding import TabularEncoder
    from tasks.gx import WITHHELD, without_range_bounds
    from tasks.track import without_row_values

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"x": rng.normal(50, 10, 200), "label": ["a", "b"] * 100})
    TabularEncoder(target="label", task="classification").fit(train).save(tmp_path / "encoder.json")
    rows = train.assign(row_id=[f"r{i}" for i in range(200)])
    rows.assign(x=rows["x"] + 1000).to_parquet(tmp_path / "kept.parquet")  # every kept row out of range
    rows.to_parquet(tmp_path / "validation.parquet")
    metrics = {"before": {"accuracy": 0.8, "macro_f1": 0.8, "log_loss": 0.4},
               "after": {"accuracy": 0.82, "macro_f1": 0.81, "log_loss": 0.39}}
    config = config_from_dict({"data": "d.csv", "target": "label", "gate": {"compare_with_champion": False}})
    out = gate_module.gate.fn(str(tmp_path / "kept.parquet"), str(tmp_path / "validation.parquet"),
                              str(tmp_path / "encoder.json"), metrics, config=config, rows_train=200,
                              run_dir=str(tmp_path))
    local = json.loads((tmp_path / "gate.json").read_text())
    [check] = [c for c in local["checks"] if c["source"] == "range check"]
    bounds = [f"{check['min_value']:.4g}", f"{check['max_value']:.4g}"]  # as the failure words them
    [failure] = out["failures"]
    assert f"(expected between {bounds[0]} and {bounds[1]})" in failure  # the user's own words: in full
    [shared] = out["failures_without_values"]
    assert shared == failure.replace(f"(expected between {bounds[0]} and {bounds[1]})", f"(expected range {WITHHELD})")
    logged = {**without_row_values(without_range_bounds(local)), "failures": [shared]}  # gate.json as MLflow gets it
    [logged_check] = [c for c in logged["checks"] if c["source"] == "range check"]
    assert logged_check["min_value"] == logged_check["max_value"] == WITHHELD
    [ranged] = [r for v in logged["gx"]["validation_results"] for r in v["expectations"]
                if r["expectation_type"] == "expect_column_values_to_be_between"]
    assert ranged["kwargs"]["min_value"] == ranged["kwargs"]["max_value"] == WITHHELD
    exact = [json.dumps(r["kwargs"][k]) for v in local["gx"]["validation_results"] for r in v["expectations"]
             if r["expectation_type"] == "expect_column_values_to_be_between" for k in ("min_value", "max_value")]
    assert len(exact) == 2 and all(v in json.dumps(local) and v not in json.dumps(logged) for v in exact)
    assert not any(b in json.dumps(logged) for b in bounds)
    assert without_range_bounds({"checks": [{**check, "source": "suite"}]})["checks"][0] == {**check, "source": "suite"}


def test_a_data_check_that_could_not_be_evaluated_says_why_not_that_values_are_out_of_range() -> None:
    import pandas as pd

    from tasks.gate import remedies
    from tasks.gx import RANGE_WHY, _describe, _finding

    broken = {"success": False, "result": {},
              "expectation_config": {"type": "expect_column_values_to_be_between",
                                     "kwargs": {"column": "x", "min_value": 0.0, "max_value": 1.0},
                                     "meta": {"why": RANGE_WHY}},
              "exception_info": {"MetricConfigurationID(...)": {"raised_exception": True, "exception_traceback": "...",
                                                                "exception_message": "'>=' not supported between "
                                                                                     "instances of 'str' and 'float'"}}}
    assert _describe(broken) == ("expect_column_values_to_be_between on column 'x' (expected between 0 and 1) (could not "
                                 "be evaluated: '>=' not supported between instances of 'str' and 'float')")
    [todo] = remedies(gx_failed=[_finding(broken)], metric_rules=[], champion=None, suite="pruned_data", target="y")
    assert "could not be evaluated" in todo and "lie outside" not in todo
    assert pd.isna(_finding({**broken, "exception_info": {}})["error"])


def test_a_row_count_minimum_is_the_remedies_only_when_the_suite_writes_it_and_gate_json_has_it_either_way() -> None:
    from tasks.gate import remedies
    from tasks.gx import _check, _finding

    short = {"success": False, "result": {"observed_value": 40},
             "expectation_config": {"type": "expect_table_row_count_to_be_between",
                                    "kwargs": {"min_value": {"$PARAMETER": "min_rows"}, "max_value": None}}}
    assert _check(short, {"min_rows": 500})["min_value"] == 500  # gate.json: the bound the rows were held to
    assert _finding(short)["min_value"] is None  # lossval's own minimum: not one to lower in the suite
    [todo] = remedies(gx_failed=[_finding(short)], metric_rules=[], champion=None, suite="pruned_data", target="y",
                      rows_train=200)
    assert todo.startswith("Fewer rows were kept than the suite's minimum") and "above the 200" not in todo


def test_a_champion_that_cannot_score_the_rows_refuses_unless_a_schema_change_is_allowed(tmp_path, monkeypatch) -> None:
    """Seen by a reviewer: a champion with int labels, tonight's labels as text: the gate passed an accuracy
    of 0.01, never compared. Now it is refused, by name, unless gate.allow_schema_change."""
    import types

    import pandas as pd

    import lossval.serving
    import tasks.champion as champion_module
    from lossval.encoding import TabularEncoder
    from lossval.retrain import fit_model

    rows = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0] * 5, "label": [0, 1] * 10})
    enc = TabularEncoder(target="label", task="classification").fit(rows)
    net = fit_model(enc.transform(rows), enc.encode_target(rows["label"]), task="classification", n_classes=2,
                    epochs=1, device="cpu", seed=0)
    (tmp_path / "mlflow.db").touch()  # a store exists: the champion is looked up (stubbed below)
    monkeypatch.setattr(champion_module, "_download_champion", lambda uri, name, dst: ("7", {}))
    monkeypatch.setattr(lossval.serving, "LossvalPyfunc",
                        lambda: types.SimpleNamespace(load=lambda **_: types.SimpleNamespace(encoder=enc, network=net)))
    monkeypatch.setattr(champion_module, "schema_changes", lambda old, new: [])  # as before the label-type check
    text = rows.assign(label=rows["label"].astype(str))
    mine = TabularEncoder(target="label", task="classification").fit(text)
    base = {"data": "d.csv", "target": "label", "dataset": "unscored", "tracking": {"uri": f"sqlite:///{tmp_path}/mlflow.db"}}
    record = champion_module.compare_with_champion(config_from_dict(base), str(tmp_path), encoder=mine, test=text,
                                                   after={"accuracy": 0.01})
    assert record["champion"] == "7" and record["metrics"] is None and len(record["failures"]) == 1
    assert "cannot score this run's test rows" in record["failures"][0] and "'label'" in record["failures"][0]
    assert "gate.allow_schema_change: true" in record["failures"][0]
    allowed = config_from_dict({**base, "gate": {"allow_schema_change": True}})
    record = champion_module.compare_with_champion(allowed, str(tmp_path), encoder=mine, test=text,
                                                   after={"accuracy": 0.01})
    assert record["failures"] == [] and "promoted without comparing" in record["note"]
    record = champion_module.compare_with_champion(config_from_dict(base), str(tmp_path), encoder=enc, test=rows,
                                                   after={"accuracy": 0.01})  # same labels: scored, and worse
    assert record["metrics"] is not None and record["worse"] and "worse than the champion's" in record["failures"][0]
    # Worse than the champion by exactly the tolerance: within it, whatever the float round-off (0.8 - 0.1 is
    # 0.7000000000000001).
    monkeypatch.setattr(champion_module, "_score", lambda *args, **kwargs: ({"accuracy": 0.80}, None))
    record = champion_module.compare_with_champion(config_from_dict({**base, "gate": {"metric_tolerance": 0.1}}),
                                                   str(tmp_path), encoder=enc, test=rows, after={"accuracy": 0.70})
    assert not record["worse"] and record["failures"] == []
    # The rules "after" meets against "before" hold against the champion too. Seen by a review: a run worse on every
    # metric replaced the champion (within the accuracy tolerance), and three such runs lost 0.0133 accuracy.
    champ = {"accuracy": 0.9333, "macro_f1": 0.9299, "log_loss": 0.3050}
    monkeypatch.setattr(champion_module, "_score", lambda *args, **kwargs: (dict(champ), None))
    worse = {"accuracy": 0.9233, "macro_f1": 0.9205, "log_loss": 0.3056}

    def compare(gate: dict, after: dict) -> dict:
        return champion_module.compare_with_champion(config_from_dict({**base, "gate": gate}), str(tmp_path),
                                                     encoder=enc, test=rows, after=after)

    record = compare({}, worse)
    assert record["worse"] and record["failures"] == [
        "against the champion's (lossval-unscored version 7) on this run's test rows (champion -> this run): every "
        "metric got worse: accuracy 0.9333 -> 0.9233, macro_f1 0.9299 -> 0.9205, log_loss 0.3050 -> 0.3056 "
        "(gate.refuse_when_all_worse)"]
    assert record["worse_rules"] == ["all_worse"]  # the remedy names gate.refuse_when_all_worse, not the tolerance
    assert compare({"refuse_when_all_worse": False}, worse)["failures"] == []  # the primary rule alone, as before
    assert compare({}, {**worse, "log_loss": 0.3000})["failures"] == []  # one metric better: its call, as before/after
    limited = compare({"metric_limits": {"log_loss": 0.0001}}, {**worse, "macro_f1": 0.94})["failures"]
    assert len(limited) == 1 and "metric log_loss got worse by 0.0006 (0.3050 -> 0.3056), more than" in limited[0]


def test_an_older_snapshot_cleaned_again_is_named_as_a_rollback(tmp_path) -> None:
    from flows.clean import older_snapshot, snapshot_history
    from lossval.io import write_json
    from tasks._paths import Workspace

    ws = Workspace.at(tmp_path)
    assert older_snapshot(snapshot_history(ws, "d"), "aaa") is None  # nothing ingested yet
    write_json([{"snapshot_hash": "aaa", "ingested_at": "2026-12-01T02:00:00+00:00"},
                {"snapshot_hash": "bbb", "ingested_at": "2026-12-02T02:00:00+00:00"}], ws.snapshot_dir("d") / "history.json")
    history = snapshot_history(ws, "d")
    assert older_snapshot(history, "bbb") is None  # the newest again: a rerun
    assert older_snapshot(history, "ccc") is None  # new data
    assert older_snapshot(history, "aaa") == {"first_ingested_at": "2026-12-01T02:00:00+00:00", "newest_snapshot": "bbb",
                                              "newest_ingested_at": "2026-12-02T02:00:00+00:00"}


def test_a_snapshot_much_smaller_than_the_previous_one_is_named(tmp_path) -> None:
    from flows.clean import shrank_from, snapshot_history
    from lossval.io import write_json
    from tasks._paths import Workspace

    ws = Workspace.at(tmp_path)
    assert shrank_from(snapshot_history(ws, "d"), 10) is None  # no history
    write_json([{"snapshot_hash": "aaa", "rows": 1000}], ws.snapshot_dir("d") / "history.json")
    history = snapshot_history(ws, "d")
    assert shrank_from(history, 300) == 1000  # the audit's truncated export: 300 of 1000 rows
    assert shrank_from(history, 500) is None and shrank_from(history, 1200) is None
    from flows.clean import shrink_warning

    said = shrink_warning(config_from_dict({"data": "d.csv", "target": "label", "dataset": "d"}), 300, 1000)
    assert said == ("dataset d: 300 rows, down from 1000 in its previous snapshot; a truncated or partial export? The "
                    "gate compares with the champion on this run's (smaller) test split.")
    curated = config_from_dict({"data": "d.csv", "target": "label", "dataset": "d", "test_path": "t.csv"})
    assert shrink_warning(curated, 300, 1000).endswith("partial export?")  # its test rows did not shrink (a review)


def test_a_champion_that_cannot_be_looked_up_refuses_the_gate_instead_of_passing_it(tmp_path) -> None:
    import pandas as pd

    from lossval.encoding import TabularEncoder
    from tasks.champion import compare_with_champion

    store = tmp_path / "broken.db"
    store.write_bytes(b"not a sqlite database" * 100)  # a store that exists and does not answer
    config = config_from_dict({"data": "d.csv", "target": "label", "dataset": "unread",
                               "tracking": {"uri": f"sqlite:///{store}"}})
    rows = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0] * 5, "label": ["p", "q"] * 10})
    enc = TabularEncoder(target="label", task="classification").fit(rows)
    record = compare_with_champion(config, str(tmp_path), encoder=enc, test=rows, after={"accuracy": 1.0})
    assert record["champion"] is None and record["metrics"] is None and len(record["failures"]) == 1
    assert record["failures"][0].startswith("the champion of lossval-unread could not be read to compare with (")
    assert "gate.compare_with_champion: false" in record["failures"][0]


def test_the_unchanged_lookup_says_why_a_run_goes_ahead_and_tells_an_unreachable_store_from_no_champion(tmp_path):
    from mlflow import MlflowClient

    from tasks.champion import champion_of_run_key

    def lookup(uri: str):
        config = config_from_dict({"data": "d.csv", "target": "label", "dataset": "d", "tracking": {"uri": uri}})
        return champion_of_run_key(config, str(tmp_path), "key")

    fresh = lookup(f"sqlite:///{tmp_path / 'none.db'}")
    assert fresh.champion is None and not fresh.unreachable and fresh.reason.startswith("no champion yet (no MLflow store")
    assert not (tmp_path / "none.db").exists()  # the lookup does not create the store
    store = f"sqlite:///{tmp_path / 'empty.db'}"
    MlflowClient(tracking_uri=store, registry_uri=store).create_registered_model("other-model")
    assert lookup(store) == (None, "no champion yet (lossval-d has no @champion)", False)
    MlflowClient(tracking_uri=store, registry_uri=store).create_registered_model("lossval-d")  # no alias
    assert lookup(store) == (None, "no champion yet (lossval-d has no @champion)", False)
    (tmp_path / "broken.db").write_bytes(b"not a sqlite database" * 100)
    for uri in (f"sqlite:///{tmp_path / 'broken.db'}", "http://127.0.0.1:1"):  # nothing listens on port 1
        down = lookup(uri)
        assert down.champion is None and down.unreachable, down
        assert down.reason.startswith(f"the champion could not be looked up: MLflow tracking at {uri} "), down.reason


@pytest.mark.parametrize("damage", [b'{"oops": 1', b'{"snapshot_hash": "aaa"}', b"\xff\xfe not text", b'[1, 2]'])
def test_a_damaged_snapshot_history_is_set_aside_and_started_anew(tmp_path, damage: bytes) -> None:
    import json

    from flows.clean import snapshot_history
    from tasks._paths import Workspace
    from tasks.ingest import publish_snapshot

    ws = Workspace.at(tmp_path)
    folder = ws.snapshot_dir("d")
    folder.mkdir(parents=True)
    (folder / "history.json").write_bytes(damage)
    (folder / "bbb.parquet").write_bytes(b"stored")  # already in the store: nothing to move
    assert snapshot_history(ws, "d") == []
    snap = {"snapshot": str(folder / "bbb.parquet"), "store_path": str(folder / "bbb.parquet"), "snapshot_hash": "bbb",
            "source": "d.csv", "rows": 3}
    assert publish_snapshot(snap, dataset="d", workspace=str(tmp_path)) == str(folder / "bbb.parquet")
    history = json.loads((folder / "history.json").read_text())
    assert [(h["snapshot_hash"], h["rows"]) for h in history] == [("bbb", 3)]
    aside = sorted(folder.glob("history.damaged-*.json"))
    assert len(aside) == 1 and aside[0].read_bytes() == damage  # kept as it was, for whoever wants to look
    publish_snapshot({**snap, "snapshot_hash": "ccc"}, dataset="d", workspace=str(tmp_path))
    assert [h["snapshot_hash"] for h in snapshot_history(ws, "d")] == ["bbb", "ccc"]


def test_turning_off_data_rows_in_mlflow_gives_a_new_run_key() -> None:
    """A registered version logged with an input example (data rows) must not be reused once they are off."""
    from flows.clean import run_key
    from lossval.config import config_from_dict

    base = {"data": "/d.csv", "target": "y"}
    on = config_from_dict(base)
    off = config_from_dict({**base, "tracking": {"log_quarantine": False}})
    assert run_key(on, "k") != run_key(off, "k") and run_key(off, "k").endswith("-norows")
    assert run_key(on, "k") == run_key(config_from_dict(base), "k")  # and stays put otherwise
    assert run_key(on, "k") != run_key(on, "other")


def test_a_gate_that_decides_differently_gives_a_new_run_key(monkeypatch) -> None:
    """Else a nightly run would repeat a refusal made by an earlier gate, or skip as unchanged, after an upgrade."""
    import tasks.gate
    from flows import clean
    from lossval.config import config_from_dict

    config = config_from_dict({"data": "/d.csv", "target": "y"})
    before = clean.run_key(config, "k")
    assert f"-g{tasks.gate.GATE_VERSION}" in before
    monkeypatch.setattr(clean, "GATE_VERSION", tasks.gate.GATE_VERSION + 1)
    assert clean.run_key(config, "k") != before


def test_keys_the_config_leaves_unread_neither_value_again_nor_register_a_new_version(tmp_path) -> None:
    """The README calls them unused, and warns about them: they must not make a new cache or model version."""
    from flows.clean import run_key
    from lossval.config import config_from_dict
    from tasks.value import valuation_key

    test = tmp_path / "test.csv"
    test.write_text("a,y\n1,0\n2,1\n")
    base = {"data": "/d.csv", "target": "y", "task": "regression", "test_path": str(test),
            "validation": {"strategy": "stratified", "fraction": 0.25}, "pruning": {"policy": "mixture"}}
    plain = config_from_dict(base)
    assert plain.used_only() == plain  # a config that sets no unused key is keyed as before
    unread = config_from_dict({**base, "test_fraction": 0.3, "validation": {**base["validation"], "column": "trusted"},
                               "pruning": {"policy": "mixture", "fraction": 0.05, "threshold": 0.2},
                               "retrain": {"calibrate": False}})
    assert set(unread.unused_keys()) >= {"test_fraction", "validation.column", "pruning.fraction", "pruning.threshold",
                                         "retrain.calibrate"}
    key = valuation_key("snap", plain)
    assert valuation_key("snap", unread) == key and run_key(unread, key) == run_key(plain, key)
    # keys that are read still count
    for changed in ({"validation": {"strategy": "stratified", "fraction": 0.3}},
                    {"pruning": {"policy": "mixture", "min_probability": 0.7}}, {"retrain": {"epochs": 5}}):
        other = config_from_dict({**base, **changed})
        assert run_key(other, valuation_key("snap", other)) != run_key(plain, key), changed


def test_a_label_spelt_two_ways_is_warned_about_once_per_run(tmp_path) -> None:
    import warnings

    from lossval.config import config_from_dict
    from lossval.io import assign_row_ids
    from tasks.split import split

    df = make_frame(120)
    df.loc[df.index[::10], "label"] = "Yes "  # a second spelling of 'yes', in training and validation rows
    df.insert(0, "row_id", assign_row_ids(df).to_numpy())
    df.to_parquet(tmp_path / "snap.parquet", index=False)
    cfg = config_from_dict({"data": "d.csv", "target": "label"}, base_dir=tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        split.fn(str(tmp_path / "snap.parquet"), config=cfg, task_kind="classification", run_dir=str(tmp_path))
    said = [w for w in caught if "differ only in case or spaces" in str(w.message)]
    assert len(said) == 1, [str(w.message) for w in said]


def test_a_test_file_needs_only_the_columns_the_model_uses(tmp_path) -> None:
    # The validation marker and excluded columns are never features: a curated test file need not carry them.
    import pandas as pd

    from lossval.io import assign_row_ids
    from tasks.split import split

    df = make_frame(120).assign(trusted=[i % 4 == 0 for i in range(120)], note=[f"n{i}" for i in range(120)])
    df.insert(0, "row_id", assign_row_ids(df, id_column="id").to_numpy())
    df.to_parquet(tmp_path / "snap.parquet", index=False)
    make_frame(30, seed=1).to_csv(tmp_path / "test.csv", index=False)  # no 'trusted', no 'note'
    cfg = config_from_dict({"data": "d.csv", "target": "label", "id_column": "id", "test_path": "test.csv",
                            "validation": {"strategy": "column", "column": "trusted"},
                            "features": {"exclude": ["note"]}}, base_dir=tmp_path)
    out = split.fn(str(tmp_path / "snap.parquet"), config=cfg, task_kind="classification", run_dir=str(tmp_path))
    test = pd.read_parquet(out["paths"]["test"])
    assert len(test) == 30 and test[["trusted", "note"]].isna().all().all()
    assert list(test.columns) == list(df.columns)  # the data's schema, the absent columns empty
    make_frame(30, seed=1).drop(columns=["b"]).to_csv(tmp_path / "test.csv", index=False)  # a feature: still needed
    with pytest.raises(InputError, match=r"lacks column\(s\) \['b'\] that the data has and the model uses"):
        split.fn(str(tmp_path / "snap.parquet"), config=cfg, task_kind="classification", run_dir=str(tmp_path))


def test_the_pruning_sentence_says_what_the_cap_let_go_before_the_review_put_rows_back() -> None:
    from tasks.prune import describe_pruning

    record = {"policy": "two_means", "flagged": 47, "threshold": 0.9, "quarantined": 39, "protected": 0,
              "kept_together": 0, "reviewed": 2, "cap_hit": True, "class_cap_hit": True,
              "capped_classes": ["malignant"], "max_prune_fraction": 0.2}
    assert describe_pruning(record) == (
        "two_means flagged 47 rows (values below 0.9000); max_prune_fraction 0.2 of each class's rows let 41 go (class "
        "'malignant' had more flagged rows than its share); review put 2 of those back (pruning.keep_ids).")
    plain = {**record, "class_cap_hit": False}
    assert describe_pruning(plain).endswith("let 41 go; review put 2 of those back (pruning.keep_ids). A policy that "
                                            "flags more than the cap may be finding no separate low-value group: see "
                                            "the README, 'When the data is already clean'.")
    assert describe_pruning({**record, "reviewed": 0, "quarantined": 41}).endswith("its share).")
    # The mixture's cut is on P(noisy), not on the values: the sentence gives it (a run before the key: not said).
    mixture = {**record, "policy": "mixture", "threshold": None, "min_probability": 0.7}
    assert describe_pruning(mixture).startswith("mixture flagged 47 rows (P(noisy) at least 0.7); max_prune_fraction")
    assert describe_pruning({**mixture, "min_probability": None}).startswith("mixture flagged 47 rows; ")


def test_a_refusal_s_message_withholds_an_observed_value_when_data_rows_stay_out_of_tracking() -> None:
    # Prefect stores GateFailed's message as the flow run's state message and logs it: with log_quarantine off it
    # words the failures as MLflow does; the full wording stays on the exception, for the user's own terminal.
    from flows.clean import _refusal

    private = config_from_dict({"data": "d.csv", "target": "label", "tracking": {"log_quarantine": False}})
    shared = config_from_dict({"data": "d.csv", "target": "label"})
    withheld = "observed value withheld: tracking.log_quarantine is false; the run folder's gate.json has it"
    record = {"failures": ["metric f1 regressed", "expect_column_max_to_be_between on column 'bmi' (observed 0.1706) "
                                                 "(expected at most -1)"],
              "failures_without_values": ["metric f1 regressed", "expect_column_max_to_be_between on column 'bmi' "
                                                                 f"({withheld}) (expected at most -1)"],
              "remedies": ["Prune less.", "Fix the data."]}
    full = ("d: failed checks: metric f1 regressed; expect_column_max_to_be_between on column 'bmi' (observed 0.1706) "
            "(expected at most -1). What to do: Prune less. Fix the data. Run folder: r")
    refused = _refusal(private, "d: failed checks: ", record, " Run folder: r", summary={"run_id": "x"})
    assert str(refused) == full.replace("(observed 0.1706)", f"({withheld})") and refused.summary == {"run_id": "x"}
    assert refused.local_message == full
    as_before = _refusal(shared, "d: failed checks: ", record, " Run folder: r", summary={})  # not private: as is
    assert str(as_before) == full and as_before.local_message is None
    # A run folder written before the withheld wording existed (a repeated refusal reads its manifest): counted.
    older = _refusal(private, "d: failed checks: ", {k: v for k, v in record.items() if k != "failures_without_values"},
                     " Run folder: r", summary={})
    assert "0.1706" not in str(older) and "2 failed check(s), not quoted" in str(older)
    assert older.local_message == full
    unquoted = _refusal(private, "d: failed checks: ", {**record, "failures": ["a"], "failures_without_values": ["a"],
                                                        "remedies": []}, " Run folder: r", summary={})
    assert str(unquoted) == "d: failed checks: a. Run folder: r" and unquoted.local_message is None  # nothing withheld


def test_a_curated_test_file_of_one_region_na_keeps_it_as_the_text_the_data_has(tmp_path) -> None:
    # A review of the NA-words change: a test file whose region column holds only "NA" (North America) read it as
    # missing on its own (pandas' default), while the data kept "NA" as a level: those rows were scored as a blank.
    import pandas as pd

    from lossval.io import assign_row_ids, read_table
    from tasks.split import split

    rng = np.random.default_rng(0)
    data = pd.DataFrame({"region": rng.choice(["EU", "NA", "US"], 150), "x": rng.normal(size=150)})
    data["label"] = np.where(data["x"] > 0, "a", "b")
    data.to_csv(tmp_path / "d.csv", index=False)
    snap = read_table(tmp_path / "d.csv")
    assert set(snap["region"]) == {"EU", "NA", "US"}
    snap.insert(0, "row_id", assign_row_ids(snap).to_numpy())
    snap.to_parquet(tmp_path / "snap.parquet", index=False)
    test = pd.DataFrame({"region": ["NA"] * 20, "x": rng.normal(size=20)})
    test["label"] = np.where(test["x"] > 0, "a", "b")
    test.to_csv(tmp_path / "test.csv", index=False)
    assert read_table(tmp_path / "test.csv")["region"].isna().all()  # on its own, pandas' reading
    cfg = config_from_dict({"data": "d.csv", "target": "label", "test_path": "test.csv"}, base_dir=tmp_path)
    out = split.fn(str(tmp_path / "snap.parquet"), config=cfg, task_kind="classification", run_dir=str(tmp_path))
    assert pd.read_parquet(out["paths"]["test"])["region"].tolist() == ["NA"] * 20


def test_a_curated_file_s_text_columns_are_listed_from_the_snapshot_without_copying_it(tmp_path, monkeypatch) -> None:
    # The split stage listed the data's text columns of a copy of the whole snapshot without its row_id column: on a
    # large snapshot a second frame in memory only to read the column names. The snapshot itself is looked at now.
    import pandas as pd

    import tasks.split as split_module
    from lossval.io import assign_row_ids, read_table, text_columns_of

    rng = np.random.default_rng(1)
    data = pd.DataFrame({"region": rng.choice(["EU", "NA", "US"], 150), "x": rng.normal(size=150)})
    data["label"] = np.where(data["x"] > 0, "a", "b")
    data.to_csv(tmp_path / "d.csv", index=False)
    snap = read_table(tmp_path / "d.csv")
    snap.insert(0, "row_id", assign_row_ids(snap).to_numpy())
    snap.to_parquet(tmp_path / "snap.parquet", index=False)
    test = pd.DataFrame({"region": ["NA"] * 20, "x": rng.normal(size=20)})
    test["label"] = np.where(test["x"] > 0, "a", "b")
    test.to_csv(tmp_path / "test.csv", index=False)
    seen: list[tuple[list, list]] = []

    def listed(df, **options):
        found = text_columns_of(df, **options)
        seen.append((list(df.columns), found))
        return found

    monkeypatch.setattr(split_module, "text_columns_of", listed)
    cfg = config_from_dict({"data": "d.csv", "target": "label", "test_path": "test.csv"}, base_dir=tmp_path)
    out = split_module.split.fn(str(tmp_path / "snap.parquet"), config=cfg, task_kind="classification",
                                run_dir=str(tmp_path))
    assert seen == [(["row_id", "region", "x", "label"], ["region", "label"])]  # the snapshot as read; no row_id
    assert pd.read_parquet(out["paths"]["test"])["region"].tolist() == ["NA"] * 20


def test_na_words_in_a_column_declared_numeric_are_missing_values_not_counted_as_text(tmp_path) -> None:
    # Seen by a review: CSV text columns keep NA words as text; a features.numeric column with typos (under 90% numbers)
    # did too, so its refusal counted 'NA' as a non-number and named it first, beside the real typos.
    import pandas as pd

    from flows.runner import check_small_data
    from tasks.ingest import ingest

    years = (np.arange(120) % 30).astype(str).astype(object)
    years[1::8], years[2::8] = "NA", "unknown"  # 90 of the 105 values that are not NA words are numbers
    make_frame(120).assign(years=years).to_csv(tmp_path / "d.csv", index=False)
    cfg = config_from_dict({"data": "d.csv", "target": "label", "id_column": "id", "features": {"numeric": ["years"]}},
                           base_dir=tmp_path)
    said = r"d.csv: non-numeric value 'unknown' in numeric column 'years' at row 2 \(15 of 105 non-missing values"
    with pytest.raises(InputError, match=said):
        check_small_data(cfg)  # lossval run's check before Prefect starts
    out = ingest.fn(cfg.data, dataset="d", target="label", id_column="id", workspace=str(tmp_path / "ws"),
                    numeric=list(cfg.numeric))
    snap = pd.read_parquet(out["snapshot"])
    assert int(snap["years"].isna().sum()) == 15 and not snap["years"].eq("NA").any()
    with pytest.raises(InputError, match=said):
        check_encodable(snap.drop(columns="row_id"), cfg, "classification")
    # A curated test file reads them as missing too (the split stage's own read), the data's column being numbers.
    from lossval.io import assign_row_ids
    from tasks.split import split

    rng = np.random.default_rng(3)
    data = pd.DataFrame({"years": rng.integers(0, 30, 150), "x": rng.normal(size=150)})
    data["label"] = np.where(data["x"] > 0, "a", "b")
    data.insert(0, "row_id", assign_row_ids(data).to_numpy())
    data.to_parquet(tmp_path / "snap.parquet", index=False)
    test_years = (np.arange(30) % 30).astype(str).astype(object)
    test_years[1::4], test_years[2::4] = "NA", "unknown"  # 15 numbers, 8 NA words, 7 typos
    test = pd.DataFrame({"years": test_years, "x": rng.normal(size=30)})
    test.assign(label=np.where(test["x"] > 0, "a", "b")).to_csv(tmp_path / "test.csv", index=False)
    cfg = config_from_dict({"data": "d.csv", "target": "label", "test_path": "test.csv",
                            "features": {"numeric": ["years"]}}, base_dir=tmp_path)
    with pytest.raises(InputError, match=r"test.csv: non-numeric value 'unknown' in numeric column 'years' at row 2 "
                                         r"\(7 of 22 non-missing values"):
        split.fn(str(tmp_path / "snap.parquet"), config=cfg, task_kind="classification", run_dir=str(tmp_path))


def test_a_numeric_declaration_of_the_target_or_an_excluded_column_leaves_its_na_words_as_read_before(tmp_path) -> None:
    # Seen by a review: features.numeric made read_table give NA words as missing in every column it names, also ones
    # the encoder does not read as features. An excluded column's 'NA' text became missing (another snapshot hash: a
    # revaluation of unchanged data) and a target class 'NA' became missing labels, refused.
    import pandas as pd

    from flows.runner import check_small_data
    from tasks.ingest import ingest

    df = make_frame(120).assign(notes=["NA", "late", "ok"] * 40)
    df["label"] = df["label"].replace({"no": "NA"})
    df.to_csv(tmp_path / "d.csv", index=False)
    snaps = []
    for numeric in (["notes", "label"], []):
        cfg = config_from_dict({"data": "d.csv", "target": "label", "id_column": "id",
                                "features": {"exclude": ["notes"], "numeric": numeric}}, base_dir=tmp_path)
        check_small_data(cfg)  # lossval run's own read: no labels made missing, refused
        assert cfg.numeric_features() == []  # what the flow gives the ingest stage
        out = ingest.fn(cfg.data, dataset="d", target="label", id_column="id", workspace=str(tmp_path / "ws"),
                        numeric=cfg.numeric_features())
        snap = pd.read_parquet(out["snapshot"])
        assert snap["notes"].tolist()[:3] == ["NA", "late", "ok"] and int(snap["label"].eq("NA").sum()) > 0
        snaps.append(out["snapshot_hash"])
    assert snaps[0] == snaps[1]
    cfg = config_from_dict({"data": "d.csv", "target": "label", "id_column": "id",
                            "features": {"include": ["a", "b", "colour"], "numeric": ["a", "notes", "id"]}},
                           base_dir=tmp_path)
    assert cfg.numeric_features() == ["a"]
