"""Config validation: every error names the key; paths resolve against the config file."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import yaml

from lossval.config import config_from_dict, load_config, mask_uri
from lossval.errors import ConfigError, InputError

BASE = {"data": "data.csv", "target": "y"}


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    cfg_file = tmp_path / "sub" / "c.yaml"
    cfg_file.parent.mkdir()
    cfg_file.write_text(yaml.safe_dump({**BASE, "validation": {"strategy": "file", "path": "v.csv"}}))
    cfg = load_config(cfg_file)
    assert cfg.data == str((tmp_path / "sub" / "data.csv").resolve())
    assert cfg.validation.path == str((tmp_path / "sub" / "v.csv").resolve())
    assert cfg.dataset == "data" and cfg.pruning.policy == "two_means" and cfg.pruning.max_prune_fraction == 0.2
    # The dataset is named after the file without its data suffix, compressed CSVs' included.
    assert config_from_dict({**BASE, "data": "loans.csv.gz"}).dataset == "loans"
    assert config_from_dict({**BASE, "data": "exports/loans.v2"}).dataset == "loans"  # a folder, as before


def test_example_config_is_valid() -> None:
    import warnings

    with warnings.catch_warnings():  # the example sets no key its other choices leave unread
        warnings.simplefilter("error")
        cfg = load_config(Path(__file__).resolve().parents[2] / "examples" / "config.yaml")
    assert cfg.validation.strategy == "column" and cfg.id_column == "application_id"
    assert Path(cfg.data).is_file()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({**BASE, "colour": 1}, "unknown key(s) ['colour']"),
        ({**BASE, "pruning": {"polcy": "fraction"}}, "in section 'pruning'; did you mean 'policy' for 'polcy'?"),
        ({**BASE, "lossval": {"epoch": 3}}, "did you mean 'epochs' for 'epoch'?"),
        ({**BASE, "lossval": {"seed": 3}}, "'seed' belongs at the top level, not in section 'lossval': move it."),
        ({**BASE, "policy": "mixture"}, "'policy' belongs in section 'pruning', not at the top level: move it."),
        ({**BASE, "pruning": {"epochs": 3}},
         "'epochs' belongs in section 'lossval' or in section 'retrain', not in section 'pruning'"),
        ({**BASE, "task": "classification", "gate": {"metric_limits": {"rmse": 0.1}}},
         "'gate.metric_limits' names ['rmse'], which a classification run does not report; use accuracy"),
        ({**BASE, "gate": {"metric_limits": {"log_loss": 0.1, "rmse": 0.1}}},
         "'gate.metric_limits' names metrics of both tasks (['log_loss', 'rmse'])"),
        ({**BASE, "validation": {"strategy": "file", "path": "v.csv"}, "test_path": "./v.csv"},
         "'test_path' and 'validation.path' are the same file"),
        ({**BASE, "pruning": {"max_prune_fraction": -0.1}}, "'pruning.max_prune_fraction' must be in [0, 1]"),
        ({**BASE, "pruning": {"max_prune_fraction": 1.5}}, "'pruning.max_prune_fraction' must be in [0, 1]"),
        ({**BASE, "pruning": {"policy": "magic"}}, "'pruning.policy' must be one of"),
        ({**BASE, "seed": "zero"}, "'seed' must be int"),
        ({**BASE, "seed": True}, "'seed' must be int, got a boolean"),
        ({**BASE, "lossval": {"epochs": "many"}}, "'lossval.epochs' must be int"),
        ({**BASE, "lossval": {"epoch": 3}}, "in section 'lossval'"),
        ({**BASE, "validation": {"strategy": "column"}}, "needs 'validation.column'"),
        ({**BASE, "validation": {"strategy": "latest"}}, "needs 'validation.timestamp_column'"),
        ({"target": "y"}, "'data' is required"),
        ({"data": "d.csv", "target": 0}, "'target' must be str, got int 0. YAML read it as a number: quote it "
                                         "(target: \"0\")"),  # a column named 0: not "required"
        ({"data": "d.csv", "target": ""}, "'target' is required"),
        ({"data": "d.csv", "target": "y", "features": {"include": []}}, "'features.include' is an empty list"),
        ({"data": "data/loans ü.csv", "target": "y"}, "'dataset' 'loans ü' (taken from the data file's name, as no "
                                                      "'dataset' is set: set one) may only hold ASCII letters"),
        ({**BASE, "test_fraction": 0}, "'test_fraction' must be in (0, 0.9]"),
        ({**BASE, "dataset": "a b"}, "may only hold ASCII letters"),
        ({**BASE, "dataset": "prêts"}, "'dataset' 'prêts' may only hold ASCII letters"),
        ({**BASE, "id_column": "y"}, "'id_column' and 'target' are both 'y'"),
        ({**BASE, "features": ["a"]}, "'features' must be a mapping"),
        # nulls and values that used to crash later (exit 1) or pass silently
        ({**BASE, "retrain": {"epochs": None}}, "'retrain.epochs' needs a value"),
        ({**BASE, "gate": {"metric_tolerance": None}}, "'gate.metric_tolerance' needs a value"),
        ({**BASE, "pruning": {"max_prune_fraction": None}}, "'pruning.max_prune_fraction' needs a value"),
        ({**BASE, "validation": {"fraction": None}}, "'validation.fraction' needs a value"),
        ({**BASE, "test_fraction": None}, "'test_fraction' needs a value"),
        ({**BASE, "seed": None}, "'seed' needs a value"),
        ({**BASE, "seed": -1}, "'seed' must be an integer in [0, 2**64)"),
        ({**BASE, "tracking": {"experiment": ""}}, "'tracking.experiment' must be a non-empty name"),
        ({**BASE, "tracking": {"experiment": None}}, "'tracking.experiment' needs a value"),
        ({**BASE, "tracking": {"registered_model": "it's"}}, "'tracking.registered_model' \"it's\" must be a non-empty"),
        ({**BASE, "lossval": {"scaling": None}}, "'lossval.scaling' needs a value"),
        ({**BASE, "gate": {"suite": "no_such_suite"}}, "no shipped suite of that name"),
        ({**BASE, "dataset": ".."}, "not only dots"),
        ({**BASE, "dataset": "."}, "not only dots"),
        ({**BASE, "gate": {"metric_tolerance": float("inf")}}, "'gate.metric_tolerance' must be a finite number"),
        ({**BASE, "gate": {"metric_tolerance": float("nan")}}, "'gate.metric_tolerance' must be a finite number"),
        ({**BASE, "gate": {"metric_limits": {"logloss": 0.1}}}, "'gate.metric_limits' names 'logloss', which is not a "
         "test metric (did you mean 'log_loss'?); classification runs report accuracy, macro_f1, log_loss, regression "
         "runs rmse, mae, r2"),
        ({**BASE, "gate": {"metric_limits": {"log_loss": -0.1}}}, "'gate.metric_limits.log_loss' must be a finite"),
        ({**BASE, "gate": {"metric_limits": {"log_loss": True}}}, "'gate.metric_limits.log_loss' must be a finite"),
        ({**BASE, "gate": {"metric_limits": {"log_loss": float("inf")}}}, "'gate.metric_limits.log_loss' must be"),
        ({**BASE, "gate": {"metric_limits": [0.1]}}, "'gate.metric_limits' must be dict"),
        ({**BASE, "gate": {"metric_limits": None}}, "'gate.metric_limits' needs a value"),
        ({**BASE, "pruning": {"threshold": float("nan")}}, "'pruning.threshold' must be a finite number"),
        ({**BASE, "pruning": {"max_prune_fraction": float("nan")}}, "'pruning.max_prune_fraction' must be in [0, 1]"),
        ({**BASE, "lossval": {"epochs": -2}}, "section 'lossval': epochs must be a positive integer, got -2"),
        ({**BASE, "lossval": {"epochs": 10**12}}, "section 'lossval': epochs must be at most 100000"),
        ({**BASE, "retrain": {"epochs": 10**12}}, "'retrain.epochs' must be between 1 and 100000, got 1000000000000"),
        ({**BASE, "retrain": {"epochs": 0}}, "'retrain.epochs' must be between 1 and 100000, got 0"),
        ({**BASE, "lossval": {"batch_size": 0}}, "section 'lossval': batch_size must be a positive integer"),
        ({**BASE, "lossval": {"batch_size": 1}}, "section 'lossval': batch_size must be >= 2"),
        ({**BASE, "lossval": {"n_layers": 0}}, "section 'lossval': n_layers must be None (the default for the task)"),
        ({**BASE, "lossval": {"device": "gpu0"}}, "'lossval.device' 'gpu0' is not a device"),
        ({**BASE, "lossval": {"activation": "nope"}}, "section 'lossval': activation must be None (the default for "
                                                      "the task) or one of ['gelu', 'relu', 'silu', 'tanh']"),
    ],
)
def test_errors_name_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw, source="cfg.yaml")
    assert message in str(info.value) and str(info.value).startswith("cfg.yaml: ")


def test_a_curated_file_inside_the_data_folder_is_refused(tmp_path: Path) -> None:
    """A folder input reads every data file in it: a validation or test file there would be valued as data too."""
    folder = tmp_path / "exports"
    folder.mkdir()
    for name in ("a.csv", "valid.csv", ".hidden.csv", "notes.txt"):
        (folder / name).write_text("x,y\n1,2\n")
    with pytest.raises(ConfigError, match=r"'validation.path' \(.*valid.csv\) lies in the 'data' folder"):
        config_from_dict({"data": "exports", "target": "y", "validation": {"strategy": "file", "path": "exports/valid.csv"}},
                         base_dir=tmp_path, source="cfg.yaml")
    with pytest.raises(ConfigError, match="'test_path' .* lies in the 'data' folder"):
        config_from_dict({"data": str(folder), "target": "y", "test_path": str(folder / "valid.csv")}, base_dir=tmp_path)
    # files the folder does not read as data: hidden, another suffix, or the folder elsewhere
    for path in (folder / ".hidden.csv", folder / "notes.txt"):
        config_from_dict({"data": str(folder), "target": "y", "test_path": str(path)}, base_dir=tmp_path)
    config_from_dict({"data": str(folder / "a.csv"), "target": "y", "test_path": str(folder / "valid.csv")},
                     base_dir=tmp_path)
    # A folder named like a data file (a Spark-style parquet folder) is not read by the data folder: accepted.
    (folder / "holdout.parquet").mkdir()
    config_from_dict({"data": "exports", "target": "y", "validation": {"strategy": "file", "path": "exports/holdout.parquet"}},
                     base_dir=tmp_path)
    # A symlink in the data folder is read through it, wherever it points: refused, written relative or absolute.
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    (elsewhere / "val.csv").write_text("x,y\n1,2\n")
    (folder / "val.csv").symlink_to(elsewhere / "val.csv")
    for path in ("exports/val.csv", str(folder / "val.csv")):
        with pytest.raises(ConfigError, match="lies in the 'data' folder"):
            config_from_dict({"data": "exports", "target": "y", "validation": {"strategy": "file", "path": path}},
                             base_dir=tmp_path)


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")


def test_a_config_path_that_is_a_broken_link_is_called_one_naming_its_target(tmp_path: Path, monkeypatch) -> None:
    # Seen by a review: a config that is a symbolic link whose target was moved was "not found", which sent the user
    # to a file they could see in the folder.
    import os
    import re

    monkeypatch.chdir(tmp_path)
    os.symlink("moved/c.yaml", "c.yaml")  # relative, as `ln -s` makes one: taken from the link's folder
    with pytest.raises(ConfigError) as caught:
        load_config("c.yaml")
    assert str(caught.value) == (
        f"c.yaml: is a broken symbolic link to 'moved/c.yaml', that is {tmp_path / 'moved' / 'c.yaml'}, which leads "
        "to nothing (the target was moved or deleted, or the links form a loop); point the link at the config file, "
        "or give its path instead.")
    os.symlink("gone", "configs")  # a folder on the path: that link is named
    gone = re.escape(str(tmp_path / "gone"))
    with pytest.raises(ConfigError, match=rf"^configs/c.yaml: cannot be read: the folder configs on its path is a "
                                          rf"broken symbolic link to 'gone', that is {gone}, which leads to "):
        load_config("configs/c.yaml")
    (tmp_path / "moved").mkdir()
    (tmp_path / "moved" / "c.yaml").write_text(yaml.safe_dump(BASE))
    assert load_config("c.yaml").target == "y"  # once its target is back, the link is read as the file


def test_features_categorical_is_read_and_checked() -> None:
    cfg = config_from_dict({**BASE, "features": {"exclude": ["when"], "categorical": ["zip"]}})
    assert cfg.categorical == ("zip",) and cfg.exclude == ("when",)
    assert config_from_dict(BASE).categorical == ()
    with pytest.raises(ConfigError, match="'features.categorical' must be a list of column names"):
        config_from_dict({**BASE, "features": {"categorical": "zip"}})


def test_features_numeric_is_read_and_checked() -> None:
    cfg = config_from_dict({**BASE, "features": {"categorical": ["zip"], "numeric": ["years_employed", "income"]}})
    assert cfg.numeric == ("years_employed", "income") and cfg.categorical == ("zip",)
    assert config_from_dict(BASE).numeric == ()
    with pytest.raises(ConfigError, match="'features.numeric' must be a list of column names"):
        config_from_dict({**BASE, "features": {"numeric": "years_employed"}})
    with pytest.raises(ConfigError, match=r"column\(s\) \['income'\] are in both 'features.numeric' and "
                                          r"'features.categorical'.*remove it from one"):
        config_from_dict({**BASE, "features": {"categorical": ["zip", "income"], "numeric": ["income"]}})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['numerical'\] in section 'features'"):
        config_from_dict({**BASE, "features": {"numerical": ["income"]}})


def test_lossval_options_take_auto_or_a_value() -> None:
    opts = {"weight_lr": "auto", "weight_eps_ratio": 10, "weight_warmup_epochs": 2, "label_cost": "auto"}
    cfg = config_from_dict({**BASE, "lossval": opts})
    assert cfg.lossval == {"weight_lr": "auto", "weight_eps_ratio": 10.0, "weight_warmup_epochs": 2, "label_cost": "auto"}
    with pytest.raises(ConfigError, match="'lossval.weight_warmup_epochs' must be int or str"):
        config_from_dict({**BASE, "lossval": {"weight_warmup_epochs": 1.5}})

    # null is a setting where the constructor takes None: all validation rows, weight_lr = lr, plain Adam
    paper = config_from_dict({**BASE, "lossval": {"val_subsample": None, "weight_lr": None, "weight_eps_ratio": None}})
    assert paper.lossval == {"val_subsample": None, "weight_lr": None, "weight_eps_ratio": None}
    assert paper.flat_params()["lossval.val_subsample"] == "null" and paper.fingerprint("lossval") != cfg.fingerprint("lossval")


def test_params_read_as_the_config_file_writes_them() -> None:
    params = config_from_dict({**BASE, "features": {"exclude": ["ts"]}}).flat_params()
    assert params["exclude"] == '["ts"]' and params["include"] == "null" and params["categorical"] == "[]"
    assert params["numeric"] == "[]"
    assert params["gate.metric_limits"] == "{}" and params["gate.refuse_when_all_worse"] == "true"
    # A column named in French reads as written in MLflow, not as JSON's \u escapes (seen by a review).
    assert config_from_dict({**BASE, "features": {"exclude": ["revenu_numéro"]}}).flat_params()["exclude"] == (
        '["revenu_numéro"]')


def test_the_logged_config_is_a_config_file_that_loads_to_the_same_config(tmp_path: Path) -> None:
    # What the run logs as config/config.json and the manifest holds: the features lists in their section,
    # so load_config takes it back (it refuses them at the top level) and gives the same config.
    (tmp_path / "suite.json").write_text(json.dumps(
        {"name": "mine", "expectations": [{"type": "expect_column_to_exist", "kwargs": {"column": "y"}}]}))
    raw = {**BASE, "dataset": "loans", "id_column": "id", "seed": 7, "test_path": "t.csv",
           "features": {"include": ["a", "b", "zip"], "exclude": ["ts"], "categorical": ["zip"], "numeric": ["a"]},
           "validation": {"strategy": "latest", "timestamp_column": "ts"},
           "lossval": {"epochs": 3, "ce_epsilon": 1e-8, "val_subsample": None},
           "pruning": {"policy": "threshold", "threshold": -0.5}, "retrain": {"mode": "soft"},
           "gate": {"metric_limits": {"accuracy": 0.02}, "suite": "suite.json"},
           "tracking": {"uri": "sqlite:///rel.db", "registered_model": "m"}}
    cfg = config_from_dict(raw, base_dir=tmp_path)
    logged = cfg.public_dict()
    assert logged["features"] == {"include": ["a", "b", "zip"], "exclude": ["ts"], "categorical": ["zip"],
                                  "numeric": ["a"]}
    assert not {"include", "exclude", "categorical", "numeric"} & set(logged)
    for name, text in (("config.json", json.dumps(logged, indent=2)), ("config.yaml", yaml.safe_dump(logged))):
        (tmp_path / "elsewhere").mkdir(exist_ok=True)
        path = tmp_path / "elsewhere" / name  # paths in it are absolute: another folder reads them the same
        path.write_text(text)
        with warnings.catch_warnings():  # every key is written, the unread ones at their defaults: nothing to say
            warnings.simplefilter("error")
            back = load_config(path)
        assert back == cfg and back.fingerprint() == cfg.fingerprint() and back.public_dict() == logged
    defaults = config_from_dict(BASE)  # features unset: include null, the other lists empty
    assert defaults.public_dict()["features"] == {"include": None, "exclude": [], "categorical": [], "numeric": []}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert config_from_dict(defaults.public_dict()) == defaults
    assert "include" in defaults.to_dict()  # what run keys hash keeps its shape: their values are found again


def test_unused_keys_name_what_leaves_them_unread() -> None:
    cfg = config_from_dict({**BASE, "test_path": "t.csv", "task": "regression"})
    unused = cfg.unused_keys()
    assert unused["test_fraction"] == "test_path is set"
    assert unused["pruning.fraction"] == unused["pruning.min_probability"] == "pruning.policy is two_means"
    assert {"validation.path", "validation.column", "validation.timestamp_column"} <= set(unused)
    assert "validation.fraction" not in unused and "pruning.max_prune_fraction" not in unused
    assert "regression" in unused["retrain.calibrate"]
    mixture = config_from_dict({**BASE, "pruning": {"policy": "mixture"}, "validation": {"strategy": "latest",
                                                                                         "timestamp_column": "t"}})
    assert "pruning.min_probability" not in mixture.unused_keys() and "test_fraction" not in mixture.unused_keys()
    assert not {"validation.fraction", "validation.timestamp_column"} & set(mixture.unused_keys())
    assert "retrain.calibrate" in mixture.unused_keys(task="regression")
    assert "retrain.calibrate" not in mixture.unused_keys(task="classification")


def test_a_key_unread_for_the_task_auto_resolved_to_is_named_by_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from lossval.config import unused_for_task

    monkeypatch.setattr("lossval.config._UNUSED_WARNED", set())  # the load's warnings are said once per process
    # task: auto: the load cannot tell that a regression leaves retrain.calibrate unread; the run says it then.
    with pytest.warns(UserWarning, match="'pruning.fraction' is set but has no effect"):
        auto = config_from_dict({**BASE, "retrain": {"calibrate": False}, "pruning": {"fraction": 0.05}})
    assert unused_for_task(auto, "regression", source="c.yaml") == [
        "c.yaml: 'retrain.calibrate' is set but has no effect: the task is regression (only classifiers are "
        "calibrated). Remove it, or change that choice if you meant it to apply."]  # pruning.fraction: named at load
    assert unused_for_task(auto, "classification") == []
    assert unused_for_task(config_from_dict({**BASE, "retrain": {"calibrate": True}}), "regression") == []  # default
    assert unused_for_task(config_from_dict(BASE), "regression") == []
    # A config that sets the task was warned about at load: not again.
    with pytest.warns(UserWarning, match="'retrain.calibrate' is set but has no effect"):
        explicit = config_from_dict({**BASE, "task": "regression", "retrain": {"calibrate": False}})
    assert unused_for_task(explicit, "regression") == []


def test_a_key_set_without_effect_is_warned_about_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**BASE, "test_path": "t.csv", "test_fraction": 0.3,
                                    "pruning": {"policy": "two_means", "fraction": 0.05, "max_prune_fraction": 0.1}}))
    with pytest.warns(UserWarning) as caught:
        load_config(path)
    texts = sorted(str(w.message) for w in caught)
    assert len(texts) == 2, texts
    assert texts[0].startswith(f"{path}: 'pruning.fraction' is set but has no effect: pruning.policy is two_means")
    assert texts[1].startswith(f"{path}: 'test_fraction' is set but has no effect: test_path is set")
    import warnings

    with warnings.catch_warnings():  # a key the choices read, or only defaults: no warning
        warnings.simplefilter("error")
        load_config(path)  # and said once per process: `lossval run` reads its config three times
        monkeypatch.chdir(tmp_path)
        load_config(Path("c.yaml"))  # the CLI's spelling of the same file (the flow gets the resolved path)
        (tmp_path / "link.yaml").symlink_to(path)
        load_config(Path("link.yaml"))  # a link to it, as typed; the flow is handed the file it points to
        config_from_dict({**BASE, "pruning": {"policy": "fraction", "fraction": 0.05}})
        # An unread key at its default value (as in the config.json a run logs, which writes every key) says nothing.
        config_from_dict({**BASE, "test_path": "t.csv", "test_fraction": 0.2,
                          "pruning": {"policy": "two_means", "fraction": 0.1}, "validation": {"path": None}})
        config_from_dict({**BASE, "test_path": "t.csv"})


def test_a_numeric_declaration_of_a_column_that_is_no_feature_is_warned_about(tmp_path: Path) -> None:
    # Seen by a review: features.numeric naming the target or an excluded column was accepted silently, though the
    # encoder reads no such declaration (and read_table leaves those columns as they were).
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**BASE, "id_column": "id", "features": {
        "numeric": ["x", BASE["target"], "id", "notes"], "exclude": ["notes"]}}))
    with pytest.warns(UserWarning) as caught:
        load_config(path)
    [text] = [str(w.message) for w in caught if "features.numeric" in str(w.message)]
    assert text == (f"{path}: 'features.numeric' names {BASE['target']!r} (the target), 'id' (the id column), 'notes' "
                    "(excluded), which are no features: declaring them numeric has no effect. Remove them from "
                    "features.numeric.")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_config(path)  # said once per process
        config_from_dict({**BASE, "features": {"numeric": ["x"]}})  # a feature: nothing to say
        config_from_dict({**BASE, "features": {"numeric": ["x"], "include": ["x", "z"]}})
    with pytest.warns(UserWarning, match=r"names 'z' \(not in features.include\), which is no feature: declaring it"):
        config_from_dict({**BASE, "features": {"numeric": ["z"], "include": ["x"]}})


def test_an_included_column_that_the_features_leave_out_all_the_same_is_warned_about(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Seen by a review: features.include naming the id column, the validation marker or an excluded column ran with
    # that column silently left out (exclude wins), so the model used fewer columns than the config listed.
    monkeypatch.setattr("lossval.config._UNUSED_WARNED", set())
    raw = {**BASE, "id_column": "id", "validation": {"strategy": "column", "column": "v"},
           "features": {"include": ["x", "id", "v", "z"], "exclude": ["z"]}}
    with pytest.warns(UserWarning) as caught:
        config_from_dict(raw)
    [text] = [str(w.message) for w in caught if "features.include" in str(w.message)]
    assert text == ("'features.include' names 'id' (the id column), 'v' (the validation.column), 'z' (in "
                    "features.exclude), which are left out of the features all the same: the model does not use them. "
                    "Remove them from features.include (or, for an excluded column you meant to use, from "
                    "features.exclude).")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config_from_dict({**BASE, "id_column": "id", "features": {"include": ["x", "z"], "exclude": ["id"]}})


def test_a_numeric_declaration_of_the_validation_strategys_own_column_is_warned_about_and_not_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Seen by a review: the split's marker and timestamp columns are no features (tasks.value.feature_exclusions), but
    # declaring them numeric was not warned about, and changed how a CSV read their NA words.
    monkeypatch.setattr("lossval.config._UNUSED_WARNED", set())  # said once per process: another test may have
    marker = {**BASE, "validation": {"strategy": "column", "column": "v"}, "features": {"numeric": ["x", "v"]}}
    with pytest.warns(UserWarning, match=r"names 'v' \(the validation.column\), which is no feature"):
        config = config_from_dict(marker)
    assert config.numeric_features() == ["x"]
    latest = {**BASE, "validation": {"strategy": "latest", "timestamp_column": "ts"}, "features": {"numeric": ["ts"]}}
    with pytest.warns(UserWarning, match=r"names 'ts' \(the validation.timestamp_column\), which is no feature"):
        assert config_from_dict(latest).numeric_features() == []
    # a leftover validation.column the strategy does not read removes no feature: still read as declared
    with pytest.warns(UserWarning, match="'validation.column' is set but has no effect"):
        leftover = config_from_dict({**marker, "validation": {"strategy": "stratified", "column": "v"}})
    assert leftover.numeric_features() == ["x", "v"]


def test_fingerprint_tracks_sections() -> None:
    a = config_from_dict({**BASE, "lossval": {"epochs": 5}})
    b = config_from_dict({**BASE, "lossval": {"epochs": 6}})
    c = config_from_dict({**BASE, "lossval": {"epochs": 5}, "retrain": {"epochs": 3}})
    assert a.fingerprint("lossval") != b.fingerprint("lossval")
    assert a.fingerprint("lossval") == c.fingerprint("lossval") and a.fingerprint() != c.fingerprint()


def test_gate_metric_limits_are_read_and_keyed() -> None:
    # Off by default; a limit changes the gate, so it is part of the run key's gate fingerprint.
    default = config_from_dict(BASE)
    limited = config_from_dict({**BASE, "gate": {"metric_limits": {"log_loss": 1}}})
    assert default.gate.metric_limits == {} and limited.gate.metric_limits == {"log_loss": 1.0}
    assert default.fingerprint("gate") != limited.fingerprint("gate")
    # One param however many limits, so runs with and without limits compare in the same column.
    assert limited.flat_params()["gate.metric_limits"] == '{"log_loss": 1.0}'
    assert default.flat_params()["gate.metric_limits"] == "{}"
    assert set(limited.flat_params()) == set(default.flat_params())
    two = config_from_dict({**BASE, "gate": {"metric_limits": {"log_loss": 0.1, "accuracy": 0.02}}})
    assert two.flat_params()["gate.metric_limits"] == '{"accuracy": 0.02, "log_loss": 0.1}'  # keys sorted
    options = config_from_dict({**BASE, "lossval": {"epochs": 3}}).flat_params()  # a section: a param per key
    assert options["lossval.epochs"] == "3" and "lossval" not in options and default.flat_params()["lossval"] == "{}"


def test_credentials_are_masked() -> None:
    assert mask_uri("http://alice:s3cret@db.example:5000/x") == "http://alice:***@db.example:5000/x"
    assert mask_uri("sqlite:///tmp/mlflow.db") == "sqlite:///tmp/mlflow.db"
    cfg = config_from_dict({**BASE, "tracking": {"uri": "postgresql://u:pw@h/db"}})
    assert cfg.flat_params()["tracking.uri"] == "postgresql://u:***@h/db"
    assert "pw" not in " ".join(cfg.flat_params().values())


def test_a_key_repeated_in_a_mapping_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: d.csv\ntarget: y\npruning:\n  policy: fraction\npruning:\n  max_prune_fraction: 0.1\n")
    with pytest.raises(ConfigError, match="line 5.*key 'pruning' appears twice"):
        load_config(cfg)


def test_yaml_merge_keys_still_work(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: d.csv\ntarget: y\nlossval: &lv\n  epochs: 3\nretrain:\n  <<: {epochs: 4}\n  mode: soft\n")
    loaded = load_config(cfg)
    assert loaded.retrain.epochs == 4 and loaded.retrain.mode == "soft" and loaded.lossval == {"epochs": 3}


def test_paths_with_a_tilde_and_a_relative_mlflow_folder_are_made_absolute(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # YAML does not expand ~ as a shell does: "~/data.csv" was read as a folder named "~" beside the config, and a
    # plain "mlruns" store was found from the cwd, so a nightly run and a manual one logged to different stores.
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    cfg = config_from_dict({**BASE, "data": "~/d.csv", "test_path": "~/t.csv",
                            "tracking": {"uri": "sqlite:///~/store.db"}}, base_dir=tmp_path / "cfg")
    assert cfg.data == str(home / "d.csv") and cfg.test_path == str(home / "t.csv")
    assert cfg.tracking.uri == f"sqlite:///{home / 'store.db'}"
    folder = config_from_dict({**BASE, "tracking": {"uri": "mlruns"}}, base_dir=tmp_path)
    assert folder.tracking.uri == str((tmp_path / "mlruns").resolve())
    home_folder = config_from_dict({**BASE, "tracking": {"uri": "~/mlruns"}}, base_dir=tmp_path)
    assert home_folder.tracking.uri == str(home / "mlruns")
    for kept in ("http://127.0.0.1:5000", "file:///abs/mlruns", "databricks", "/abs/mlruns"):
        assert config_from_dict({**BASE, "tracking": {"uri": kept}}, base_dir=tmp_path).tracking.uri == kept
    # The check that a curated file does not lie in the data folder reads ~ as well (it saw "<config>/~/...").
    (home / "dfolder").mkdir(parents=True)
    for name in ("d.csv", "v.csv"):
        (home / "dfolder" / name).write_text("x,y\n1,0\n")
    with pytest.raises(ConfigError, match="lies in the 'data' folder"):
        config_from_dict({**BASE, "data": "~/dfolder", "validation": {"strategy": "file", "path": "~/dfolder/v.csv"}},
                         base_dir=tmp_path / "cfg")


def test_relative_sqlite_uri_and_suite_names(tmp_path: Path) -> None:
    raw = {**BASE, "tracking": {"uri": "sqlite:///rel.db"}, "gate": {"suite": "pruned_data"}}
    cfg = config_from_dict(raw, base_dir=tmp_path)
    assert cfg.tracking.uri == f"sqlite:///{(tmp_path / 'rel.db').resolve()}"  # beside the config, not the cwd
    assert cfg.gate.suite == "pruned_data"  # a shipped suite's name stays a name
    suite = json.dumps({"name": "mine", "expectations": [{"type": "expect_column_to_exist", "kwargs": {"column": "y"}}]})
    (tmp_path / "my.json").write_text(suite)
    assert config_from_dict({**raw, "gate": {"suite": "my.json"}}, base_dir=tmp_path).gate.suite == str(
        (tmp_path / "my.json").resolve())
    absolute = config_from_dict({**BASE, "tracking": {"uri": "sqlite:////abs/m.db"}}, base_dir=tmp_path)
    assert absolute.tracking.uri == "sqlite:////abs/m.db"
    memory = config_from_dict({**BASE, "tracking": {"uri": "sqlite:///:memory:"}}, base_dir=tmp_path)
    assert memory.tracking.uri == "sqlite:///:memory:"
    (tmp_path / "mine.json").write_text(suite)
    assert config_from_dict({**BASE, "gate": {"suite": "mine"}}, base_dir=tmp_path).gate.suite == str(
        (tmp_path / "mine.json").resolve())  # a name beside the config comes first, as before


def test_the_lossval_section_takes_every_constructor_argument_but_task_seed_and_verbose() -> None:
    import inspect

    from lossval.config import _LOSSVAL_KEYS
    from lossval.valuation import LossVal

    arguments = set(inspect.signature(LossVal.__init__).parameters) - {"self", "task", "seed", "verbose"}
    assert set(_LOSSVAL_KEYS) == arguments  # the README promises this; a new LossVal option must be added here
    cfg = config_from_dict({**BASE, "lossval": {"ce_epsilon": 1e-8, "epochs": 3}})
    assert cfg.lossval["ce_epsilon"] == 1e-8
    # YAML 1.1 reads 1e-8 (no dot) as text; a float key takes it as the number it spells.
    raw = yaml.safe_load("lossval: {ce_epsilon: 1e-8, lr: 5e-3, weight_lr: auto}\ngate: {metric_tolerance: 1e-2}")
    assert raw["lossval"]["ce_epsilon"] == "1e-8"
    cfg = config_from_dict({**BASE, **raw})
    assert (cfg.lossval["ce_epsilon"], cfg.lossval["lr"], cfg.lossval["weight_lr"]) == (1e-8, 5e-3, "auto")
    assert cfg.gate.metric_tolerance == 0.01
    with pytest.raises(ConfigError, match="'lossval.lr' must be float, got str 'fast'"):
        config_from_dict({**BASE, "lossval": {"lr": "fast"}})


def test_a_large_seed_loads_and_torch_gets_its_low_32_bits() -> None:
    from lossval.config import torch_seed

    cfg = config_from_dict({**BASE, "seed": 20240101120000})  # a timestamp-style seed, as configs hold them
    assert cfg.seed == 20240101120000 and torch_seed(cfg.seed) == 20240101120000 % 2**32
    assert torch_seed(2**32 + 5) == 5 and torch_seed(7) == 7


def test_a_column_name_yaml_reads_as_a_mapping_or_a_number_is_explained() -> None:
    import yaml

    from lossval.config import config_from_dict
    from lossval.errors import ConfigError
    from lossval.io import yaml_name

    raw = yaml.safe_load("features:\n  exclude: [Unnamed: 0, 2021]\n")  # unquoted: a mapping
    with pytest.raises(ConfigError, match=r"read one item as \{'Unnamed': 0\}: quote column names that contain ': '"):
        config_from_dict({"data": "d.csv", "target": "y", **raw})
    for name in ("Unnamed: 0", "2021", "yes", "null", "a, b", "[x]", "plain", "x#1", " padded"):
        assert yaml.safe_load(f"[{yaml_name(name)}]") == [name] and yaml.safe_load(f"k: {yaml_name(name)}") == {"k": name}
    assert yaml_name("plain") == "plain" and yaml_name("2021") == '"2021"'


def test_an_empty_config_file_is_called_empty(tmp_path) -> None:
    from lossval.config import load_config

    (tmp_path / "c.yaml").write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match=r"c.yaml: the config file is empty; it needs at least 'data' and 'target'"):
        load_config(tmp_path / "c.yaml")


def test_keep_ids_resolves_beside_the_config_is_checked_now_and_leaves_unset_keys_as_they_were(tmp_path: Path) -> None:
    base = {"data": "d.csv", "target": "y"}
    # Pinned before pruning.keep_ids existed: unset, it must not give every workspace new run keys.
    plain = config_from_dict(dict(base), base_dir="/tmp")
    assert plain.fingerprint("pruning", "retrain", "gate") == "d2dcae6eaef28fc8"
    assert plain.fingerprint() == "23d09867da5fd60c"
    with pytest.raises(InputError, match=r"reviewed\.csv.*no such file.*pruning\.keep_ids"):
        config_from_dict({**base, "pruning": {"keep_ids": "reviewed.csv"}}, base_dir=tmp_path)
    # Read at load, not after valuation (a review): a list emptied to its header, a file without ids.
    (tmp_path / "reviewed.csv").write_text("row_id\n")
    with pytest.raises(InputError, match=r"reviewed\.csv: pruning\.keep_ids: file has a header but no rows.* List the "
                                         r"row ids to put back in a 'row_id' column .*or remove pruning\.keep_ids"):
        config_from_dict({**base, "pruning": {"keep_ids": "reviewed.csv"}}, base_dir=tmp_path)
    (tmp_path / "reviewed.csv").write_text("id\n7\n")
    with pytest.raises(InputError, match=r"pruning\.keep_ids: the file needs a 'row_id' column or 'key'"):
        config_from_dict({**base, "id_column": "key", "pruning": {"keep_ids": "reviewed.csv"}}, base_dir=tmp_path)
    (tmp_path / "reviewed.csv").write_text("row_id\n7\n")
    cfg = config_from_dict({**base, "pruning": {"keep_ids": "reviewed.csv"}}, base_dir=tmp_path)
    assert cfg.pruning.keep_ids == str(tmp_path / "reviewed.csv")
    assert cfg.fingerprint("pruning") != config_from_dict(dict(base), base_dir=tmp_path).fingerprint("pruning")
