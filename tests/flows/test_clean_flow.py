"""End-to-end runs of the cleaning flow, sharing one Prefect harness and one workspace."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lossval.cli import main
from lossval.config import load_config
from lossval.demo import make_demo_data
from lossval.io import file_sha256
from lossval.manifest import verify_run
from lossval.pruning import format_value
from tests.flows._runlog import kept_run_log

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_harness")]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ws")


def _config(workspace: Path, dataset: str, **overrides) -> Path:
    data = make_demo_data(dataset=dataset, noise=0.1, seed=0, out_dir=workspace / "data" / dataset)
    cfg = {"dataset": f"t-{dataset}", "data": str(data.train_path), "target": data.target, "id_column": "id",
           "validation": {"strategy": "file", "path": str(data.validation_path)}, "test_path": str(data.test_path),
           "lossval": {"epochs": 8}, "retrain": {"epochs": 15}, "tracking": {"experiment": "lossval-tests"}}
    cfg.update(overrides)
    path = workspace / "data" / dataset / f"config-{len(list((workspace / 'data' / dataset).glob('config*')))}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _mlflow(workspace: Path):
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{workspace / 'mlflow.db'}")
    return mlflow, MlflowClient()


def _latest_manifest(workspace: Path, dataset: str) -> dict:
    runs = sorted((workspace / "runs").glob(f"t-{dataset}-*/manifest.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(runs[-1].read_text())


def test_classification_run_end_to_end(workspace: Path, capsys, tmp_path: Path) -> None:
    cfg = _config(workspace, "breast_cancer")
    inputs = {p: file_sha256(p) for p in (workspace / "data" / "breast_cancer").glob("*.parquet")}
    assert main(["run", str(cfg), "--workspace", str(workspace)]) == 0
    out = capsys.readouterr().out
    assert "is champion" in out
    assert {p: file_sha256(p) for p in inputs} == inputs  # input files untouched

    manifest = _latest_manifest(workspace, "breast_cancer")
    run_dir = Path(manifest["outputs"]["kept"]).parent
    assert verify_run(run_dir) == []
    rows = manifest["rows"]
    assert rows["train"] == rows["kept"] + rows["quarantine"] and rows["quarantine"] > 0
    assert rows["quarantine"] <= 0.2 * rows["train"]
    pruning = manifest["pruning"]
    assert pruning["policy"] == "two_means" and pruning["quarantined"] == rows["quarantine"]
    assert pruning["max_prune_fraction"] == 0.2
    quarantine = pd.read_parquet(manifest["outputs"]["quarantine"])
    # Every flagged row is quarantined unless class protection or the cap held it back; the cap holds for all
    # rows and for each class, and when it bound, some class (or the whole) lost exactly its budget.
    if pruning["cap_hit"]:
        sizes = pd.read_parquet(manifest["outputs"]["train"])["diagnosis"].astype(str).value_counts()
        lost = quarantine["diagnosis"].astype(str).value_counts()
        assert all(lost.get(c, 0) <= int(0.2 * k) for c, k in sizes.items())
        assert any(lost.get(c, 0) == int(0.2 * k) for c, k in sizes.items()) or rows["quarantine"] == int(
            0.2 * rows["train"])
    else:
        assert rows["quarantine"] == pruning["flagged"] - pruning["protected"]
    assert f"pruning: two_means flagged {pruning['flagged']} rows (values below {format_value(pruning['threshold'])})" in out
    assert {"lossval_value", "lossval_reason", "diagnosis", "id"} <= set(quarantine.columns)
    assert quarantine["lossval_reason"].notna().all()
    values = pd.read_parquet(manifest["outputs"]["values"])
    assert list(values.columns) == ["row_id", "value", "rank"] and len(values) == rows["train"]

    mlflow, client = _mlflow(workspace)
    exp = client.get_experiment_by_name("lossval-tests")
    parent = client.get_run(manifest["mlflow"]["run_id"])
    assert parent.data.tags["dataset"] == "t-breast_cancer"
    assert parent.data.tags["snapshot"] == manifest["snapshot_hash"]
    assert parent.data.tags["gate"] == "passed"
    assert parent.data.tags["prefect_flow_run_id"] == manifest["flow_run_id"] != "local"
    # The MLflow run spans the pipeline run, not only its tracking step (created last): it starts when the flow began,
    # before the split stage wrote its files, and ends after the gate wrote its result.
    started_ms = dt.datetime.fromisoformat(manifest["started"]).timestamp() * 1000  # the manifest's, to the second
    assert started_ms <= parent.info.start_time < started_ms + 1000
    assert parent.info.start_time <= run_dir.joinpath("train.parquet").stat().st_mtime * 1000
    assert parent.info.end_time >= run_dir.joinpath("gate.json").stat().st_mtime * 1000
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlflow.note.content"].endswith(  # written once the version is registered
        f"Gate: passed.\n\nModel registry: lossval-t-breast_cancer version {manifest['model']['version']} is champion.")
    m = parent.data.metrics
    for key in ("before_accuracy", "after_accuracy", "before_macro_f1", "after_log_loss", "rows_train", "rows_kept",
                "rows_pruned", "prune_fraction"):
        assert key in m
    assert m["rows_train"] == rows["train"] and m["rows_pruned"] == rows["quarantine"]
    assert m["rows_flagged"] == pruning["flagged"] and parent.data.tags["prune_cap_hit"] == str(pruning["cap_hit"]).lower()
    assert parent.data.params["pruning.policy"] == "two_means" and parent.data.params["gate.metric_limits"] == "{}"
    assert m["threshold"] == pytest.approx(pruning["threshold"])  # the cut, next to the rows it flagged
    # Every config key is a param, defaults included; the tag names those this run's choices leave unread.
    assert parent.data.params["test_fraction"] == "0.2" and parent.data.params["pruning.fraction"] == "0.1"
    unread = parent.data.tags["params_unused"]
    assert "test_fraction (test_path is set)" in unread and "pruning.fraction (pruning.policy is two_means)" in unread
    assert "validation.path" not in unread and "retrain.calibrate" not in unread  # read: strategy file, a classifier
    # What the valuation ran with, "auto" and None resolved: the config's lossval section holds only changes.
    report = json.loads(Path(manifest["outputs"]["values"]).with_name("valuation.json").read_text())
    assert parent.data.params["lossval.epochs"] == parent.data.params["valuation.epochs"] == "8"
    assert parent.data.params["valuation.n_layers"] == "3" and parent.data.params["valuation.activation"] == "relu"
    assert parent.data.params["valuation.label_cost"] == str(report["settings"]["label_cost"])
    assert float(parent.data.params["valuation.blur"]) == report["blur"] > 0
    assert parent.data.params["valuation.device"] == "cpu" and "valuation.verbose" not in parent.data.params
    children = client.search_runs([exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(r.data.tags["stage"] for r in children) == ["gate", "ingest", "prune", "retrain", "split", "value"]
    [valued] = [r for r in children if r.data.tags["stage"] == "value"]
    [retrained] = [r for r in children if r.data.tags["stage"] == "retrain"]
    # The retrain device, next to the valuation's: with a valuation deployment the two may differ.
    assert manifest["devices"] == {"valuation": "cpu", "retrain": "cpu"} and retrained.data.tags["device"] == "cpu"
    [pruned] = [r for r in children if r.data.tags["stage"] == "prune"]
    assert pruned.data.metrics["rows_flagged"] == m["rows_flagged"] and "flagged" not in pruned.data.metrics
    assert pruned.data.metrics["rows_protected"] == m["rows_protected"] == pruning["protected"]  # the parent's too
    assert pruned.data.metrics["rows_kept_together"] == m["rows_kept_together"] == pruning["kept_together"]
    assert pruned.data.tags["prune_cap_hit"] == parent.data.tags["prune_cap_hit"]  # tags under the parent's names
    assert pruned.data.tags["prune_class_cap_hit"] == str(pruning["class_cap_hit"]).lower()
    assert not {"cap_hit", "class_cap_hit"} & set(pruned.data.tags) and pruned.data.tags["policy"] == "two_means"
    shape = {k: int(retrained.data.params[k]) for k in ("n_inputs", "n_outputs", "n_layers", "width")}  # params,
    assert shape["n_outputs"] == 2 and min(shape.values()) >= 1  # breast_cancer: two classes
    assert set(shape).isdisjoint(retrained.data.metrics)  # not metrics charted next to results
    assert "seconds" in retrained.data.metrics
    assert retrained.data.metrics["after_accuracy"] == pytest.approx(manifest["metrics"]["after"]["accuracy"])
    assert retrained.data.metrics["before_log_loss"] == pytest.approx(manifest["metrics"]["before"]["log_loss"])
    assert "values_from" not in valued.data.tags  # valued by this run
    losses = client.get_metric_history(valued.info.run_id, "epoch_loss")  # the valuation's training curve
    epochs = json.loads(Path(manifest["outputs"]["values"]).with_name("valuation.json").read_text())["history"]["loss"]
    assert [m.step for m in losses] == list(range(len(epochs))) and len(epochs) > 1
    assert [m.value for m in losses] == pytest.approx(epochs)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"values", "plots", "gate", "lowest_values.json", "config", "quarantine"} <= artifacts
    logged_quarantine = pd.read_parquet(client.download_artifacts(parent.info.run_id, "quarantine/quarantine.parquet"))
    pd.testing.assert_frame_equal(logged_quarantine, pd.read_parquet(manifest["outputs"]["quarantine"]))
    logged_config = json.loads(Path(client.download_artifacts(parent.info.run_id, "config/config.json")).read_text())
    # The whole config as written, however long its params; the manifest's names the task it resolved to.
    assert logged_config == {**manifest["config"], "task": "auto"} and manifest["config"]["task"] == "classification"
    # A config file of its own: it loads (the features lists in their section) to the config this run read.
    (tmp_path / "config.json").write_text(json.dumps(logged_config))
    import warnings

    with warnings.catch_warnings(record=True) as caught:  # every key is written, unread ones at their defaults
        warnings.simplefilter("always")
        assert load_config(tmp_path / "config.json") == load_config(cfg)
    assert not [w for w in caught if "has no effect" in str(w.message)]
    assert logged_config["features"]["exclude"] == [] and "exclude" not in logged_config
    lowest = json.loads(Path(client.download_artifacts(parent.info.run_id, "lowest_values.json")).read_text())
    assert lowest["columns"][:5] == ["row_id", "value", "rank", "reason", "diagnosis"]  # the target, then the row
    assert "id" not in lowest["columns"]  # the id column: its values are the row ids, shown once
    assert len(lowest["data"]) == 20 and [r[2] for r in lowest["data"]] == list(range(1, 21))  # ranks 1-20
    reasons = [dict(zip(lowest["columns"], r)) for r in lowest["data"]]
    for r in reasons:  # a kept row two_means flagged (below its cut) says so, and what held it back (the cap here)
        if r["reason"].startswith("kept"):
            flagged = r["value"] < pruning["threshold"]
            assert r["reason"] == ("kept: flagged, held back by the max_prune_fraction cap" if flagged else "kept"), r
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "values")] == [
        "values/decisions.parquet", "values/valuation.json", "values/values.parquet"]
    assert parent.data.tags["lossval_version"] and parent.data.tags["values_version"].isdigit()
    assert manifest["versions"]["values_version"] == parent.data.tags["values_version"] and manifest["versions"]["torch"]
    assert "quarantined" in parent.data.tags["mlflow.note.content"]  # the run's description in the UI
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "plots")] == ["plots/values_histogram.png"]
    # the run folder's manifest, as written there after tracking (model and MLflow run included)
    logged_manifest = json.loads(Path(client.download_artifacts(parent.info.run_id, "run/manifest.json")).read_text())
    assert logged_manifest == manifest and logged_manifest["mlflow"]["status"] == "ok" and logged_manifest["model"]
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as prefect:  # the run's Prefect artifacts, under keys of its own dataset
        keys = ["lossval-summary-t-breast-cancer", "lossval-lowest-values-t-breast-cancer"]
        published = prefect.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
    assert {a.key for a in published} == set(keys)
    [table] = [a for a in published if a.key == keys[1]]  # the same table, labels included
    table = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert [r["reason"] for r in table] == [r["reason"] for r in reasons]
    assert "id" not in table[0] and "diagnosis" in table[0]
    model = client.get_registered_model("lossval-t-breast_cancer")
    assert model.tags == {"dataset": "t-breast_cancer", "target": "diagnosis", "task": "classification",
                          "created_by": "lossval"}
    assert "probability[<class>] column per class" in model.description
    champion = client.get_model_version_by_alias("lossval-t-breast_cancer", "champion")
    challenger = client.get_model_version_by_alias("lossval-t-breast_cancer", "challenger")
    assert str(champion.version) == str(challenger.version) == manifest["model"]["version"]
    assert champion.tags["dataset"] == "t-breast_cancer" and champion.tags["snapshot"] == manifest["snapshot_hash"]
    assert champion.tags["lossval_run_id"] == manifest["run_id"] and champion.tags["gate"] == "passed"
    assert float(champion.tags["after_accuracy"]) == pytest.approx(manifest["metrics"]["after"]["accuracy"], rel=1e-5)

    # The registered model loads (built from code, no pickle) and predicts from the data's own columns,
    # for another batch size, as the encoder and network the run used would.
    import numpy as np

    model = mlflow.pyfunc.load_model("models:/lossval-t-breast_cancer@champion")
    test = pd.read_parquet(manifest["outputs"]["test"])
    predicted = model.predict(test.drop(columns=["row_id", "diagnosis"]).iloc[:17])
    from lossval.encoding import TabularEncoder
    from lossval.retrain import TabularModel

    enc = TabularEncoder.load(manifest["outputs"]["encoder"])
    probability = [f"probability[{c}]" for c in enc.classes_]
    assert list(predicted.columns) == ["prediction", *probability] and len(predicted) == 17
    assert np.allclose(predicted[probability].sum(axis=1), 1.0, atol=1e-5)
    net = TabularModel(enc.transform(test).shape[1], len(enc.classes_), task="classification")
    import torch

    net.load_state_dict(torch.load(manifest["outputs"]["model_state"], weights_only=True))
    # Calibrated on the validation split (retrain.calibrate, the default): the saved and the registered
    # model carry the temperature the manifest and MLflow report.
    assert float(net.temperature) == pytest.approx(manifest["temperature"]["after"]) and net.temperature != 1.0
    assert float(parent.data.metrics["temperature_after"]) == pytest.approx(manifest["temperature"]["after"])
    expected = net(torch.as_tensor(enc.transform(test)[:17], dtype=torch.float32)).detach().numpy()
    assert np.allclose(predicted[probability].to_numpy(), expected, atol=1e-6)
    assert (predicted["prediction"].to_numpy() == enc.decode_target(expected.argmax(axis=1))).all()
    first = enc.feature_columns_[0]
    whole = test.drop(columns=["row_id", "diagnosis"]).iloc[:5].round()
    whole[first] = whole[first].astype("int64")  # a float column whose batch holds whole numbers, read as int64
    expected = net(torch.as_tensor(enc.transform(whole), dtype=torch.float32)).detach().numpy()
    assert np.allclose(model.predict(whole)[probability].to_numpy(), expected, atol=1e-6)
    lacking = test.drop(columns=["row_id", "diagnosis", first]).iloc[:3]
    from mlflow.exceptions import MlflowException

    # A missing feature column is named, not guessed, as an error the scoring server answers with (HTTP 400).
    with pytest.raises(MlflowException, match=rf"missing inputs \[{re.escape(repr(first))}\]"):
        model.predict(lacking)
    version = client.get_model_version("lossval-t-breast_cancer", champion.version)
    assert "feature columns" in version.description
    assert [c["name"] for c in json.loads(model.metadata.get_input_schema().to_json())][:2] == list(enc.feature_columns_[:2])


def test_rerun_with_same_snapshot_and_config_skips_valuation(workspace: Path, monkeypatch) -> None:
    cfg = sorted((workspace / "data" / "breast_cancer").glob("config-*.yaml"))[0]
    first = _latest_manifest(workspace, "breast_cancer")
    import lossval.valuation

    def must_not_run(*args, **kwargs):
        raise AssertionError("LossVal.fit ran although the valuation is cached")

    monkeypatch.setattr(lossval.valuation.LossVal, "fit", must_not_run)
    assert main(["run", str(cfg), "--workspace", str(workspace)]) == 0
    second = _latest_manifest(workspace, "breast_cancer")
    assert second["run_id"] != first["run_id"]
    assert second["outputs"]["values"] == first["outputs"]["values"]
    assert second["model"] == {**first["model"], "reused": True,  # no duplicate registry version
                               "previous_champion": first["model"]["version"]}  # itself: no change of champion
    assert verify_run(Path(second["outputs"]["kept"]).parent) == []
    assert (first["valuation_cached"], second["valuation_cached"]) == (False, True)
    _, client = _mlflow(workspace)
    assert client.get_run(second["mlflow"]["run_id"]).data.tags["valuation_cached"] == "true"
    note = client.get_run(second["mlflow"]["run_id"]).data.tags["mlflow.note.content"]
    values_line = next(line for line in note.splitlines() if line.startswith("Values: "))
    assert values_line.endswith("reused from an earlier run on the same snapshot and settings.") and (
        "values reused" not in values_line), values_line  # not "Values: values reused"
    assert note.endswith(f"version {second['model']['version']} (this run key's earlier run registered it; not "
                         "registered again) is champion.")
    value_stage = client.search_runs([client.get_run(second["mlflow"]["run_id"]).info.experiment_id],
                                     filter_string=f"tags.mlflow.parentRunId = '{second['mlflow']['run_id']}' "
                                                   "and tags.stage = 'value'")[0]
    assert value_stage.data.tags["cached"] == "true"  # the stage run says its figures are the earlier run's
    valued_at = json.loads(Path(first["outputs"]["values"]).with_name("valuation.json").read_text())["valued_at"]
    assert value_stage.data.tags["values_from"] == (f"an earlier run, valued at {valued_at}: valuation_seconds and "
                                                    "epoch_loss are that fit's")
    import datetime as dt

    assert dt.datetime.fromisoformat(valued_at) >= dt.datetime.fromisoformat(first["started"])  # during the first run
    # The model that version already holds is not logged a second time (about 0.5 MB a night).
    assert "model" not in {a.path for a in client.list_artifacts(second["mlflow"]["run_id"])}
    assert "model" in {a.path for a in client.list_artifacts(first["mlflow"]["run_id"])}
    assert second["mlflow"]["model_source"] == first["mlflow"]["model_source"]


def test_a_cached_encoder_this_lossval_cannot_read_is_valued_again(workspace: Path) -> None:
    cfg = sorted((workspace / "data" / "breast_cancer").glob("config-*.yaml"))[0]
    encoder = Path(_latest_manifest(workspace, "breast_cancer")["outputs"]["encoder"])
    saved = json.loads(encoder.read_text())
    encoder.write_text(json.dumps({**saved, "version": 0}))  # as an older lossval would have written it
    assert main(["run", str(cfg), "--workspace", str(workspace)]) == 0
    manifest = _latest_manifest(workspace, "breast_cancer")
    assert manifest["valuation_cached"] is False and json.loads(encoder.read_text()) == saved


def test_cached_values_another_release_wrote_under_this_key_are_valued_again(workspace: Path) -> None:
    # A valuation worker not yet upgraded writes its values under the caller's key (which names this
    # release's VALUES_VERSION): the next run that reads them values again instead of trusting them.
    from lossval.valuation import VALUES_VERSION

    cfg = sorted((workspace / "data" / "breast_cancer").glob("config-*.yaml"))[0]
    report = Path(_latest_manifest(workspace, "breast_cancer")["outputs"]["values"]).with_name("valuation.json")
    saved = json.loads(report.read_text())
    report.write_text(json.dumps({**saved, "values_version": VALUES_VERSION - 1}))
    assert main(["run", str(cfg), "--workspace", str(workspace)]) == 0
    assert _latest_manifest(workspace, "breast_cancer")["valuation_cached"] is False
    assert json.loads(report.read_text())["values_version"] == VALUES_VERSION


def test_values_that_are_not_the_ones_their_report_was_written_with_are_valued_again(workspace: Path) -> None:
    # Seen by a reviewer: a run stopped while it valued again (over an older release's values) left the old
    # values.parquet beside the new report; the next run reused them ("values: reused"), pruned by them, and verify
    # passed. The report now carries its values' sha256.
    from lossval.io import file_sha256

    cfg = sorted((workspace / "data" / "breast_cancer").glob("config-*.yaml"))[0]
    values = Path(_latest_manifest(workspace, "breast_cancer")["outputs"]["values"])
    report = json.loads(values.with_name("valuation.json").read_text())
    assert report["values_sha256"] == file_sha256(values)
    table = pd.read_parquet(values)
    table.assign(value=table["value"].to_numpy()[::-1]).to_parquet(values, index=False)  # other values, same report
    assert main(["run", str(cfg), "--workspace", str(workspace)]) == 0
    assert _latest_manifest(workspace, "breast_cancer")["valuation_cached"] is False
    assert pd.read_parquet(values).equals(table)
    assert json.loads(values.with_name("valuation.json").read_text())["values_sha256"] == file_sha256(values)


def test_values_rewritten_while_a_run_uses_them_are_recorded_as_the_run_read_them(workspace: Path, monkeypatch,
                                                                                      caplog) -> None:
    # Seen by a reviewer: the manifest hashed values/<key>/ at the end of the run; another run that valued the same key
    # again meanwhile left a manifest naming values this run never read, and `lossval verify` passed.
    import flows.clean as clean
    from lossval.io import file_sha256
    from lossval.manifest import verify_run

    cfg = sorted((workspace / "data" / "breast_cancer").glob("config-*.yaml"))[0]
    values = Path(_latest_manifest(workspace, "breast_cancer")["outputs"]["values"])
    report = values.with_name("valuation.json")
    original, digest, original_report = values.read_bytes(), file_sha256(values), report.read_bytes()
    gate = clean.gate

    def gate_then_another_run_writes(*args, **kwargs):
        out = gate(*args, **kwargs)
        table = pd.read_parquet(values)
        table.assign(value=table["value"].to_numpy()[::-1]).to_parquet(values, index=False)
        report.write_text(json.dumps({**json.loads(original_report), "clipped": {"another": 99}}))
        return out

    monkeypatch.setattr(clean, "gate", gate_then_another_run_writes)
    try:
        assert main(["run", str(cfg), "--workspace", str(workspace)]) == 0
        manifest = _latest_manifest(workspace, "breast_cancer")
        assert manifest["sha256"]["values"] == digest
        assert manifest["clipped"] == json.loads(original_report)["clipped"]  # the report this run read, too
        assert any("rewritten by another run while this run used it" in r.getMessage() for r in caplog.records)
        run_dir = Path(manifest["outputs"]["kept"]).parent
        assert any("values" in problem for problem in verify_run(run_dir))
    finally:
        values.write_bytes(original)
        report.write_bytes(original_report)
    assert verify_run(run_dir) == []


def _rerun_with_pruning(workspace: Path, monkeypatch, name: str, pruning: dict) -> dict:
    """Run the first breast_cancer config again with another ``pruning`` section, LossVal.fit forbidden (the values
    must be reused); the new run's manifest."""
    first_cfg = sorted((workspace / "data" / "breast_cancer").glob("config-*.yaml"))[0]
    cfg = yaml.safe_load(first_cfg.read_text())
    cfg["pruning"] = pruning
    new_cfg = first_cfg.with_name(f"config-{name}.yaml")
    new_cfg.write_text(yaml.safe_dump(cfg))
    import lossval.valuation

    def must_not_run(*args, **kwargs):
        raise AssertionError("LossVal.fit ran although only the pruning changed")

    monkeypatch.setattr(lossval.valuation.LossVal, "fit", must_not_run)
    assert main(["run", str(new_cfg), "--workspace", str(workspace)]) in (0, 3)
    return _latest_manifest(workspace, "breast_cancer")


def test_a_new_pruning_setting_reuses_the_values_and_registers_a_new_version(workspace: Path, monkeypatch) -> None:
    first = _latest_manifest(workspace, "breast_cancer")
    # the cap holds rows back
    second = _rerun_with_pruning(workspace, monkeypatch, "fraction",
                                 {"policy": "fraction", "fraction": 0.04, "max_prune_fraction": 0.02})
    assert second["outputs"]["values"] == first["outputs"]["values"]
    assert second["pruning"]["policy"] == "fraction" and second["rows"]["quarantine"] != first["rows"]["quarantine"]
    assert second["model"]["reused"] is False and second["model"]["version"] != first["model"]["version"]
    # The lowest-value table (MLflow's, as Prefect's) says which kept rows the policy flagged and the cap held back.
    pruning = second["pruning"]
    held = pruning["flagged"] - pruning["quarantined"] - pruning["protected"]
    assert pruning["cap_hit"] and held > 0 and pruning["flagged"] <= 20  # all of them among the table's 20 rows
    _, client = _mlflow(workspace)
    lowest = json.loads(Path(client.download_artifacts(second["mlflow"]["run_id"], "lowest_values.json")).read_text())
    said = [dict(zip(lowest["columns"], r))["reason"] for r in lowest["data"]]
    assert said.count("kept: flagged, held back by the max_prune_fraction cap") == held
    assert said.count("kept") == 20 - pruning["flagged"]


def test_rows_a_reviewer_puts_back_are_kept_on_the_rerun_from_the_same_values(workspace: Path, monkeypatch,
                                                                             caplog) -> None:
    first_cfg = sorted((workspace / "data" / "breast_cancer").glob("config-*.yaml"))[0]
    manifests = sorted((workspace / "runs").glob("t-breast_cancer-*/manifest.json"), key=lambda p: p.stat().st_mtime)
    first = json.loads(manifests[0].read_text())  # the first config's run: two_means, the default cap
    quarantined = pd.read_parquet(first["outputs"]["quarantine"])
    put_back = quarantined["row_id"].head(2).tolist()
    # The reviewer's list: the quarantine cut down to two rows, plus an id that is no training row.
    reviewed = pd.concat([quarantined[quarantined["row_id"].isin(put_back)],
                          quarantined.head(1).assign(row_id="no-such-row")])
    reviewed.to_parquet(first_cfg.with_name("reviewed.parquet"))
    second = _rerun_with_pruning(workspace, monkeypatch, "reviewed", {"keep_ids": "reviewed.parquet"})
    assert second["outputs"]["values"] == first["outputs"]["values"]
    now = pd.read_parquet(second["outputs"]["quarantine"])
    # Exactly the two rows came back; nothing else moved (the cap's room is not handed on).
    assert set(now["row_id"]) == set(quarantined["row_id"]) - set(put_back)
    assert set(put_back) <= set(pd.read_parquet(second["outputs"]["kept"])["row_id"])
    decisions = pd.read_parquet(second["outputs"]["decisions"]).set_index("row_id")
    assert (decisions.loc[put_back, "outcome"] == "held back: reviewed").all()
    pruning = second["pruning"]
    assert pruning["reviewed"] == 2 and pruning["keep_ids"]["listed"] == 3 and pruning["keep_ids"]["found"] == 2
    assert pruning["keep_ids"]["path"] == str(first_cfg.with_name("reviewed.parquet"))
    # In MLflow the param is only the file's path, the same when the list in it changes: the run says which list.
    _, client = _mlflow(workspace)
    run = client.get_run(second["mlflow"]["run_id"]).data
    assert run.params["pruning.keep_ids"] == pruning["keep_ids"]["path"] and run.metrics["rows_reviewed"] == 2
    assert run.tags["keep_ids"] == (f"sha256 {pruning['keep_ids']['sha256'][:16]}: 3 row id(s) listed, 2 of them "
                                    f"training rows of this run ({pruning['keep_ids']['path']})")
    assert "keep_ids" not in client.get_run(first["mlflow"]["run_id"]).data.tags
    assert "1 of the 3 row id(s)" in caplog.text and "'no-such-row'" in caplog.text
    assert second["model"]["version"] != first["model"]["version"]  # another pruning: another registered version
    assert verify_run(Path(second["outputs"]["kept"]).parent) == []


def test_a_cache_record_that_names_pickle_is_moved_aside_unread(workspace: Path) -> None:
    from tests.reliability._helpers import write_pickle_record

    cfg = sorted((workspace / "data" / "breast_cancer").glob("config-*.yaml"))[0]
    first = _latest_manifest(workspace, "breast_cancer")
    values = Path(first["outputs"]["values"])
    record = workspace / "prefect-results" / f"lossval-value-{values.parent.name}"
    assert json.loads(record.read_text())["metadata"]["serializer"]["type"] == "json"
    before = values.read_bytes()
    marker = workspace / "unpickled"
    write_pickle_record(record, marker)  # Prefect would unpickle this on a cache hit
    assert main(["run", str(cfg), "--workspace", str(workspace)]) == 0
    assert not marker.exists()
    assert len(list((record.parent / "rejected").iterdir())) == 1
    assert json.loads(record.read_text())["metadata"]["serializer"]["type"] == "json"  # valued again, fresh record
    assert Path(_latest_manifest(workspace, "breast_cancer")["outputs"]["values"]).read_bytes() == before


def test_gate_failure_exits_3_and_leaves_champion(workspace: Path, capsys) -> None:
    impossible = workspace / "impossible.json"
    impossible.write_text(json.dumps({"name": "impossible", "expectations": [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 10**9, "max_value": None}}]}))
    _, client = _mlflow(workspace)
    champion_before = str(client.get_model_version_by_alias("lossval-t-breast_cancer", "champion").version)
    cfg = _config(workspace, "breast_cancer", gate={"suite": str(impossible)})
    assert main(["run", str(cfg), "--workspace", str(workspace)]) == 3
    out, err = capsys.readouterr()
    assert "expect_table_row_count_to_be_between" in err and "nothing promoted" in err
    # a minimum above the training rows: no pruning can meet it, so the remedy is the suite's, not "prune less"
    assert ("What to do: The suite's minimum row count (1000000000) is above the " in err
            and f" training rows, so no pruning can meet it: lower that minimum in the suite ({impossible}, "
                "expectations[0]). Run folder: " in err), err
    assert str(client.get_model_version_by_alias("lossval-t-breast_cancer", "champion").version) == champion_before
    challenger = client.get_model_version_by_alias("lossval-t-breast_cancer", "challenger").version
    assert int(challenger) > int(champion_before)
    manifest = _latest_manifest(workspace, "breast_cancer")
    # The refused run is complete and reported: where it is, what it did, which model is what.
    run_dir = str(workspace / "runs" / manifest["run_id"])
    assert f"Run folder: {run_dir}" in err and f"outputs: {run_dir}" in out
    assert f"-> {manifest['rows']['kept']} kept" in out and "accuracy  before" in out
    assert (f"gate FAILED; model lossval-t-breast_cancer version {challenger} is challenger only; the champion is "
            f"still version {champion_before}") in out
    assert manifest["gate"]["passed"] is False
    assert client.get_run(manifest["mlflow"]["run_id"]).data.tags["gate"] == "failed"
    assert manifest["gate"]["remedies"] == json.loads((Path(run_dir) / "gate.json").read_text())["remedies"]
    assert len(manifest["gate"]["remedies"]) == 1
    assert f"What to do: {manifest['gate']['remedies'][0]}" in client.get_run(
        manifest["mlflow"]["run_id"]).data.tags["mlflow.note.content"]
    assert client.get_run(manifest["mlflow"]["run_id"]).data.tags["mlflow.note.content"].endswith(
        f"Model registry: lossval-t-breast_cancer version {challenger} is challenger only; version {champion_before} "
        "stays champion.")


@pytest.mark.parametrize(("expectation", "message"), [
    ({"type": "expect_column_values_to_be_nonnull_typo", "kwargs": {"column": "${target}"}},
     "invalid expectation suite 'mistaken': expectations[0] (expect_column_values_to_be_nonnull_typo on column "),
    ({"type": "expect_column_values_to_not_be_null", "kwargs": {"colum": "${target}"}},
     "invalid expectation suite 'mistaken': expectations[0] (expect_column_values_to_not_be_null): unknown argument "
     "'colum' (did you mean 'column'?)"),
    ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "mean radius typo"}},
     "names column(s) ['mean radius typo'], which the checked rows do not have"),
])
def test_a_suite_that_cannot_be_used_is_refused_before_any_work_naming_its_file(workspace: Path, capsys, monkeypatch,
                                                                                 expectation: dict, message: str) -> None:
    import lossval.valuation

    def must_not_run(*args, **kwargs):
        raise AssertionError("the run valued rows although its gate suite cannot be used")

    monkeypatch.setattr(lossval.valuation.LossVal, "fit", must_not_run)
    suite = workspace / "mistaken.json"
    suite.write_text(json.dumps({"name": "mistaken", "expectations": [expectation]}))
    cfg = _config(workspace, "breast_cancer", gate={"suite": str(suite)})
    runs = workspace / "runs"
    runs_before = sorted(runs.iterdir()) if runs.exists() else []  # none when this test runs alone
    assert main(["run", str(cfg), "--workspace", str(workspace)]) == 2
    err = capsys.readouterr().err
    assert f"{suite}: expectation suite 'mistaken'" in err or f"{suite}: {message}" in err, err
    assert message in err and "Traceback" not in err  # one line, not GX's logged traceback
    assert (sorted(runs.iterdir()) if runs.exists() else []) == runs_before  # nothing left behind


def _variant(workspace: Path, name: str, change, *, curated_too: bool = False) -> Path:
    """A config of the breast_cancer run on its training file (and its validation and test files) changed by ``change``."""
    folder = workspace / "data" / "breast_cancer"
    base = yaml.safe_load(sorted(folder.glob("config-*.yaml"))[0].read_text())

    def changed(source: str, part: str) -> str:
        frame = pd.read_csv(source) if source.endswith(".csv") else pd.read_parquet(source)
        change(frame).to_parquet(folder / f"{name}-{part}.parquet", index=False)
        return str(folder / f"{name}-{part}.parquet")

    cfg = {**base, "data": changed(base["data"], "train")}
    if curated_too:
        cfg["test_path"] = changed(base["test_path"], "test")
        cfg["validation"] = {**base["validation"], "path": changed(base["validation"]["path"], "validation")}
    config = folder / f"variant-{name}.yaml"
    config.write_text(yaml.safe_dump(cfg))
    return config


def test_the_gate_compares_with_the_champion_on_the_run_s_own_test_rows(workspace: Path, capsys) -> None:
    import numpy as np

    _, client = _mlflow(workspace)
    champion = str(client.get_model_version_by_alias("lossval-t-breast_cancer", "champion").version)

    def scramble(df: pd.DataFrame) -> pd.DataFrame:  # a bad export: 45% of labels drawn at random
        rng = np.random.default_rng(3)
        hit = rng.random(len(df)) < 0.45
        return df.assign(diagnosis=np.where(hit, rng.permutation(df["diagnosis"].to_numpy()), df["diagnosis"]))

    capsys.readouterr()
    assert main(["run", str(_variant(workspace, "scrambled", scramble)), "--workspace", str(workspace)]) == 3
    out, err = capsys.readouterr()
    gate = _latest_manifest(workspace, "breast_cancer")["gate"]
    assert gate["champion"]["champion"] == champion and gate["champion"]["schema_changes"] == []
    theirs, mine = gate["champion"]["metrics"]["accuracy"], _latest_manifest(workspace, "breast_cancer")["metrics"]
    assert mine["after"]["accuracy"] < theirs - 0.01
    assert f"worse than the champion's (lossval-t-breast_cancer version {champion})" in err
    assert f"champion {theirs:.4f}" in out and f"(champion = version {champion}" in out
    assert str(client.get_model_version_by_alias("lossval-t-breast_cancer", "champion").version) == champion
    parent = client.get_run(_latest_manifest(workspace, "breast_cancer")["mlflow"]["run_id"]).data
    assert parent.metrics["champion_accuracy"] == pytest.approx(theirs) and parent.tags["champion_version_compared"] == champion

    # A new column changes what @champion takes: refused by name, unless the change is declared meant.
    wider = _variant(workspace, "wider", lambda df: df.assign(channel=np.where(np.arange(len(df)) % 3, "web", "branch")),
                     curated_too=True)
    assert main(["run", str(wider), "--workspace", str(workspace)]) == 3
    assert "schema differs from the champion" in capsys.readouterr().err
    assert _latest_manifest(workspace, "breast_cancer")["gate"]["champion"]["schema_changes"] == [
        "feature column(s) added: ['channel']"]
    allowed = yaml.safe_load(wider.read_text())
    allowed["gate"] = {"allow_schema_change": True}
    wider.write_text(yaml.safe_dump(allowed))
    main(["run", str(wider), "--workspace", str(workspace)])
    gate = _latest_manifest(workspace, "breast_cancer")["gate"]
    assert gate["champion"]["schema_changes"] and not any("schema" in f for f in gate["failures"])
    # The later tests of this module run the original columns: give them their champion back.
    client.set_registered_model_alias("lossval-t-breast_cancer", "champion", champion)


def test_regression_run_end_to_end(workspace: Path) -> None:
    cfg = _config(workspace, "diabetes", pruning={"policy": "mixture", "max_prune_fraction": 0.15},
                  gate={"metric_tolerance": 1.0, "refuse_when_all_worse": False, "metric_limits": {"mae": 1e6}},
                  tracking={"experiment": "lossval-tests", "log_quarantine": False})
    assert main(["run", str(cfg), "--workspace", str(workspace)]) == 0
    manifest = _latest_manifest(workspace, "diabetes")
    _, client = _mlflow(workspace)  # log_quarantine: false keeps the pruned rows out of the tracking store
    assert manifest["rows"]["quarantine"] > 0
    run_id = manifest["mlflow"]["run_id"]
    assert "quarantine" not in {a.path for a in client.list_artifacts(run_id)}
    # Nor any other data row or value of one: the review table has no data columns, the model no input example,
    # the gate result no GX samples of unexpected values (the run folder keeps them all).
    lowest = json.loads(Path(client.download_artifacts(run_id, "lowest_values.json")).read_text())
    assert set(lowest["columns"]) == {"row_id", "value", "rank", "noise_prob", "reason"}
    assert "input_example.json" not in {Path(a.path).name for a in client.list_artifacts(run_id, "model")}
    logged_gate = Path(client.download_artifacts(run_id, "gate/gate.json")).read_text()
    assert "partial_unexpected_list" not in logged_gate and '"unexpected_percent"' in logged_gate
    assert "partial_unexpected_list" in Path(manifest["outputs"]["gate"]).read_text()
    assert manifest["task"] == "regression"
    # The gate applied the configured limit (far above any change here) and recorded it.
    assert json.loads(Path(manifest["outputs"]["gate"]).read_text())["metric_limits"] == {"mae": 1e6}
    described = client.get_registered_model("lossval-t-diabetes").description  # a regressor: no probabilities
    assert "predicted target" in described and "probabilit" not in described
    params = client.get_run(run_id).data.params  # one param, as in a run without limits: one column to compare
    assert params["gate.metric_limits"] == '{"mae": 1000000.0}' and "gate.metric_limits.mae" not in params
    assert set(manifest["metrics"]["after"]) == {"rmse", "mae", "r2"} and manifest["temperature"] is None
    assert manifest["rows"]["quarantine"] <= 0.15 * manifest["rows"]["train"]
    values = pd.read_parquet(manifest["outputs"]["values"])
    assert "noise_prob" in values.columns and values["noise_prob"].between(0, 1).all()
    assert verify_run(Path(manifest["outputs"]["kept"]).parent) == []
    # The mixture's cut is on P(noisy): the pruning sentence says it (there is no value threshold to quote).
    assert "Pruning: mixture flagged " in client.get_run(run_id).data.tags["mlflow.note.content"]
    assert "rows (P(noisy) at least 0.5)" in client.get_run(run_id).data.tags["mlflow.note.content"]


def test_without_data_rows_in_mlflow_a_summary_check_s_observed_value_is_withheld(workspace: Path, capsys) -> None:
    # A column's max (or mean) is a value of the rows: with log_quarantine off it must not reach MLflow's description,
    # tags or artifacts, nor Prefect's, as GX's samples of unexpected values do not; the run folder (the user's) has it.
    suite = workspace / "observed.json"
    suite.write_text(json.dumps({"name": "observed", "expectations": [
        {"type": "expect_column_max_to_be_between", "kwargs": {"column": "bmi", "max_value": -1}},
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "bp", "min_value": 5}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}]}))
    cfg = _config(workspace, "diabetes", lossval={"epochs": 3}, retrain={"epochs": 3},
                  gate={"suite": str(suite), "metric_tolerance": 1.0, "refuse_when_all_worse": False},
                  tracking={"experiment": "lossval-tests", "log_quarantine": False})
    cfg.write_text(yaml.safe_dump({**yaml.safe_load(cfg.read_text()), "dataset": "t-observed"}))  # its own model
    assert main(["run", str(cfg), "--workspace", str(workspace)]) == 3
    manifest = _latest_manifest(workspace, "observed")
    kept = pd.read_parquet(manifest["outputs"]["kept"])
    local = json.loads(Path(manifest["outputs"]["gate"]).read_text())
    assert [c["observed"] for c in local["checks"][:3]] == [pytest.approx(kept["bmi"].max(), rel=1e-3),
                                                         pytest.approx(kept["bp"].mean(), rel=1e-3), len(kept)]
    shown = [repr(local["checks"][0]["observed"]), repr(local["checks"][1]["observed"])]  # as the failures word them
    assert all(f"(observed {v})" in " ".join(manifest["gate"]["failures"]) for v in shown)
    assert f"(observed {shown[0]})" in capsys.readouterr().err  # the user's own terminal says it

    _, client = _mlflow(workspace)
    run_id = manifest["mlflow"]["run_id"]
    tags = client.get_run(run_id).data.tags
    logged_gate = json.loads(Path(client.download_artifacts(run_id, "gate/gate.json")).read_text())
    logged_manifest = json.loads(Path(client.download_artifacts(run_id, "run/manifest.json")).read_text())
    withheld = "observed value withheld: tracking.log_quarantine is false; the run folder's gate.json has it"
    exact = [json.dumps(r["result"]["observed_value"]) for v in local["gx"]["validation_results"]
             for r in v["expectations"]
             if r["expectation_type"] in ("expect_column_max_to_be_between", "expect_column_mean_to_be_between")]
    assert len(exact) == 2 and all(v in json.dumps(local) for v in exact)  # as GX found them, in full
    for where, text in [("description", tags["mlflow.note.content"]), ("gate_failures tag", tags["gate_failures"]),
                        ("gate.json", json.dumps(logged_gate)), ("manifest.json", json.dumps(logged_manifest))]:
        assert not any(f"(observed {v})" in text for v in shown), f"{where} logs an observed value of the rows: {text}"
        assert not any(v in text for v in exact), f"{where} logs an observed value of the rows: {text}"
    for text in (tags["mlflow.note.content"], tags["gate_failures"], *logged_gate["failures"],
                 *logged_manifest["gate"]["failures"]):
        assert "expect_column_max_to_be_between on column 'bmi'" not in text or withheld in text
    assert tags["gate_failures"].count(withheld) == 2 and "(expected at most -1)" in tags["gate_failures"]
    checks = logged_gate["checks"]
    assert [c["observed"] for c in checks[:2]] == [withheld.split("value ", 1)[1]] * 2
    assert checks[2]["observed"] == len(kept)  # a row count is no value of a row: it stays
    # The range checks' bounds are the validation split's min and max widened by a known margin: withheld too.
    ranged = [(c["column"], c["min_value"], c["max_value"]) for c in local["checks"] if c["source"] == "range check"]
    assert ranged and all(isinstance(lo, float) for _, lo, _ in ranged)
    assert [(c["column"], c["min_value"], c["max_value"]) for c in checks if c["source"] == "range check"] == [
        (column, withheld.split("value ", 1)[1], withheld.split("value ", 1)[1]) for column, _, _ in ranged]
    bounds = [json.dumps(r["kwargs"][k]) for v in local["gx"]["validation_results"] for r in v["expectations"]
              if r["expectation_type"] == "expect_column_values_to_be_between" for k in ("min_value", "max_value")]
    assert len(bounds) == 2 * len(ranged) and not any(b in json.dumps(logged_gate) for b in bounds)
    observed = [r["result"].get("observed_value") for v in logged_gate["gx"]["validation_results"]
                for r in v["expectations"] if r["expectation_type"] == "expect_table_row_count_to_be_between"]
    assert observed == [len(kept)]
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as prefect:  # Prefect's summary of the run withholds them too
        [summary] = prefect.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(
            any_=["lossval-summary-t-observed"])), limit=1)
    assert summary.data.count(withheld) == 2 and not any(f"(observed {v})" in summary.data for v in shown), summary.data
    # The refusal's message is the flow run's state message, and Prefect's run log quotes it (the engine's
    # "Encountered exception" and "Finished in state" lines, sent to the server): withheld there too.
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # the run's log lines are sent in batches: all of them on the server now
    with get_client(sync_client=True) as prefect:
        state = prefect.read_flow_run(manifest["flow_run_id"]).state
        logs = prefect.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[manifest["flow_run_id"]])))
    assert state.is_failed() and "GateFailed" in state.message and state.message.count(withheld) == 2, state.message
    assert [line.message for line in logs if "nothing promoted to champion" in line.message]  # the engine's lines
    for where, text in [("state message", state.message), *(("run log", line.message) for line in logs)]:
        assert not any(f"(observed {v})" in text for v in shown), f"Prefect's {where} quotes an observed value: {text}"
        assert not any(v in text for v in exact), f"Prefect's {where} quotes an observed value: {text}"
    # So does the nightly report's reason (its lossval-nightly artifact), read from the run's summary; a run folder
    # written before the withheld wording existed has its failures counted, not quoted.
    from flows.nightly import _refusal_reason

    reason = _refusal_reason(manifest)
    assert reason.count(withheld) == 2 and not any(f"(observed {v})" in reason for v in shown), reason
    older = {**manifest, "gate": {k: v for k, v in manifest["gate"].items() if k != "failures_without_values"}}
    assert _refusal_reason(older) == ("failed checks: 2 failed check(s), not quoted: tracking.log_quarantine is false; "
                                      "the run folder's gate.json has them")
    shared = {**older, "config": {**older["config"], "tracking": {**older["config"]["tracking"], "log_quarantine": True}}}
    assert _refusal_reason(shared) == "failed checks: " + "; ".join(manifest["gate"]["failures"])  # not private: as is


def test_the_task_is_decided_once_for_every_stage(workspace: Path, capsys) -> None:
    # 22 integer scores, two of them only in trusted rows: the whole data reads as a number
    # (regression), the training rows alone would read as 20 classes. Every stage must agree.
    import numpy as np

    rng = np.random.default_rng(0)
    n = 300
    score = np.r_[np.arange(20).repeat(14), [20, 21] * 10][:n]
    df = pd.DataFrame({"x1": rng.normal(size=n) + score / 5, "x2": rng.normal(size=n), "score": score,
                       "trusted": np.r_[np.zeros(280, dtype=bool), np.ones(20, dtype=bool)] | (np.arange(n) % 10 == 0)})
    df.loc[1, "x2"] = 10001.0  # a typo; row ids hash the content, and this row then lands in the training split
    df.loc[3, "x2"] = 10003.0  # and this one in the test split (SPLIT_VERSION 3's draw; row 6 under version 2)
    folder = workspace / "data" / "int22"
    folder.mkdir(parents=True, exist_ok=True)
    df.to_csv(folder / "scores.csv", index=False)
    cfg = folder / "config.yaml"
    cfg.write_text(yaml.safe_dump({"dataset": "t-int22", "data": str(folder / "scores.csv"), "target": "score",
                                   "validation": {"strategy": "column", "column": "trusted"},
                                   "features": {"exclude": ["trusted"]}, "lossval": {"epochs": 3},
                                   "retrain": {"epochs": 3, "calibrate": False},
                                   "tracking": {"experiment": "lossval-tests"},
                                   "gate": {"metric_tolerance": 1.0, "refuse_when_all_worse": False}}))
    with kept_run_log(logging.WARNING) as log:
        assert main(["run", str(cfg), "--workspace", str(workspace)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    # task: auto: the load could not say that a regression leaves retrain.calibrate unread; the run says it, once.
    unread = f"{cfg}: 'retrain.calibrate' is set but has no effect: the task is regression"
    assert sum(unread in line for line in log) == 1, log
    manifest = _latest_manifest(workspace, "int22")
    report = json.loads(Path(manifest["outputs"]["values"]).with_name("valuation.json").read_text())
    assert manifest["task"] == report["task"] == "regression"
    assert set(manifest["metrics"]["after"]) == {"rmse", "mae", "r2"}
    assert (pd.read_parquet(manifest["outputs"]["train"])["x2"] == 10001.0).sum() == 1  # LossVal clips it, and says so:
    assert report["clipped"] == {"x2": 1} and report["duplicate_rows"] == 0
    assert manifest["clipped"] == {"x2": 1} and manifest["duplicate_rows"] == 0
    assert manifest["test_outliers"] == {"x2": 1}  # reported, since the test metrics include it
    assert ("values: 1 training value clipped as an outlier (clip_outliers), in x2: a typo, or a heavy-tailed column "
            "(per column: manifest 'clipped')") in out
    assert "test rows: 1 value beyond the training rows' widened range, in x2: the test metrics" in out
    _, client = _mlflow(workspace)
    parent = client.get_run(manifest["mlflow"]["run_id"])
    assert parent.data.metrics["clipped_values"] == 1 and parent.data.metrics["duplicate_rows"] == 0
    assert parent.data.tags["lossval_run_id"] == manifest["run_id"]
    assert Path(parent.data.tags["run_dir"], "manifest.json").is_file()  # from MLflow to the run folder
    assert "Values: 1 training value clipped as an outlier (clip_outliers), in x2: a typo" in parent.data.tags[
        "mlflow.note.content"]


def test_bad_config_exits_2_before_starting_anything(workspace: Path, capsys) -> None:
    bad = workspace / "bad.yaml"
    bad.write_text(yaml.safe_dump({"data": "x.csv", "target": "y", "pruning": {"max_prune_fraction": 1.5}}))
    assert main(["run", str(bad), "--workspace", str(workspace / "other")]) == 2
    err = capsys.readouterr().err
    assert "pruning.max_prune_fraction" in err and "Traceback" not in err
    assert not (workspace / "other").exists()


def test_a_caller_s_mlflow_run_and_process_state_are_left_alone(workspace: Path, tmp_path: Path) -> None:
    # lossval's flow inside another team's flow, inside their own MLflow run on their own store.
    import logging
    import os
    import warnings

    import matplotlib
    import mlflow
    from mlflow import MlflowClient
    from prefect import flow

    from flows.clean import clean_dataset

    theirs = f"sqlite:///{tmp_path / 'their.db'}"
    mlflow.set_tracking_uri(theirs)
    mlflow.set_experiment("their-training")
    cfg = _config(workspace, "breast_cancer", lossval={"epochs": 3}, retrain={"epochs": 3},
                  gate={"metric_tolerance": 1.0, "refuse_when_all_worse": False})
    cfg.write_text(yaml.safe_dump({**yaml.safe_load(cfg.read_text()), "dataset": "t-inside"}))

    def state() -> dict:
        return {"env": {k: v for k, v in os.environ.items() if k.startswith(("MLFLOW_", "TORCHINDUCTOR"))},
                "uri": mlflow.get_tracking_uri(), "showwarning": warnings.showwarning,
                "backend": matplotlib.get_backend(),
                "levels": {n: logging.getLogger(n).level for n in ("mlflow", "alembic", "great_expectations")}}

    @flow(name="their-pipeline")
    def their_pipeline() -> str:
        with mlflow.start_run(run_name="their-run") as run:
            mlflow.log_param("their_param", 1)
            clean_dataset(str(cfg), workspace=str(workspace))
            mlflow.log_metric("their_metric", 1.0)  # their run is still theirs, on their store
        return run.info.run_id

    before = state()
    try:
        run_id = their_pipeline()
        assert state() == before
    finally:
        mlflow.set_tracking_uri(None)
    run = MlflowClient(theirs).get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics == {"their_metric": 1.0}
    manifest = _latest_manifest(workspace, "inside")
    assert manifest["mlflow"]["status"] == "ok" and manifest["model"]["version"] == "1"


def test_a_run_refused_by_its_data_leaves_no_run_folder(tmp_path: Path, capsys) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    data = tmp_path / "d.csv"
    pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60), "y": ["x"] * 59 + ["z"]}).to_csv(data, index=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"dataset": "t-refused", "data": str(data), "target": "y",
                                   "tracking": {"experiment": "lossval-tests"}}))
    ws = tmp_path / "ws"
    assert main(["run", str(cfg), "--workspace", str(ws)]) == 2
    assert "class(es) 'z'" in capsys.readouterr().err
    assert not (ws / "runs").exists()  # nothing was produced, so no empty folder pretends otherwise


def test_a_rerun_whose_registered_model_files_are_gone_logs_and_registers_the_model_again(tmp_path: Path, capsys) -> None:
    import shutil

    from tasks.champion import unusable_model

    cfg = _config(tmp_path, "breast_cancer", lossval={"epochs": 3}, retrain={"epochs": 3, "mode": "soft"})
    ws = tmp_path / "ws"
    assert main(["run", str(cfg), "--workspace", str(ws)]) == 0
    _, client = _mlflow(ws)
    first = client.get_model_version("lossval-t-breast_cancer", "1")
    # Soft retraining is said as such: the model saw every training row, weighted.
    assert first.description.startswith("Retrained on every training row of t-breast_cancer, quarantined ones included, each "
                                        "weighted by its lossval value (retrain.mode: soft). Passed the gate.")
    uri = f"sqlite:///{ws / 'mlflow.db'}"
    assert unusable_model(uri, first.source) is None
    shutil.rmtree(next(ws.glob("mlartifacts/*/artifacts/model/artifacts")))  # a cleaning that went too far
    assert "No such artifact: 'artifacts'" in unusable_model(uri, first.source)
    capsys.readouterr()
    # Same snapshot and config: the champion (version 1, unreadable now) refuses the gate, and the model is logged
    # and registered again instead of pointing the challenger at files that are gone.
    assert main(["run", str(cfg), "--workspace", str(ws)]) == 3
    assert "could not be read to compare with" in capsys.readouterr().err
    second = client.get_model_version_by_alias("lossval-t-breast_cancer", "challenger")
    assert str(second.version) == "2" and second.source != first.source and unusable_model(uri, second.source) is None
    assert _latest_manifest(ws, "breast_cancer")["model"]["reused"] is False


def test_demo_command_runs_the_pipeline_and_reports_the_noise_match(tmp_path: Path, capsys) -> None:
    # The README's main command: it must keep working end to end.
    assert main(["demo", "--workspace", str(tmp_path), "--epochs", "10"]) == 0
    out = capsys.readouterr().out
    f1 = float(out.split("F1 ")[1].split(")")[0])
    assert f1 >= 0.5, out
    assert "ui --backend-store-uri sqlite:///" in out
    manifest = next((tmp_path / "runs").glob("demo-breast_cancer-*/manifest.json"))
    assert verify_run(manifest.parent) == []
    # the detection figures only the demo knows, on its MLflow run for a reviewer of the UI
    _, client = _mlflow(tmp_path)
    logged = client.get_run(json.loads(manifest.read_text())["mlflow"]["run_id"]).data.metrics
    assert round(logged["demo_f1"], 2) == f1 and logged["demo_noisy"] == int(out.split("train split: ")[1].split()[0])
    # the figures the terminal showed, each under its own name (a range check let precision and recall trade places)
    precision, recall = map(float, re.search(r"\(precision ([0-9.]+), recall ([0-9.]+), F1 ", out).groups())
    assert (round(logged["demo_precision"], 2), round(logged["demo_recall"], 2)) == (precision, recall), out
    assert logged["demo_recall"] == pytest.approx(logged["demo_true_positives"] / logged["demo_noisy"], rel=1e-12)


def test_a_new_values_version_values_again_instead_of_reusing_old_values(workspace: Path, monkeypatch) -> None:
    # An upgrade that changes LossVal's defaults bumps VALUES_VERSION; the same snapshot and
    # config must then not be served values computed under the old defaults. (Last in the
    # module: its run becomes the latest manifest, which earlier tests read.)
    import tasks.value

    cfg = sorted((workspace / "data" / "breast_cancer").glob("config-*.yaml"))[0]
    before = _latest_manifest(workspace, "breast_cancer")
    monkeypatch.setattr(tasks.value, "VALUES_VERSION", tasks.value.VALUES_VERSION + 1000)
    assert main(["run", str(cfg), "--workspace", str(workspace)]) == 0
    after = _latest_manifest(workspace, "breast_cancer")
    assert after["outputs"]["values"] != before["outputs"]["values"]
    report = json.loads((Path(after["outputs"]["values"]).parent / "valuation.json").read_text())
    assert report["values_version"] == tasks.value.VALUES_VERSION
    assert report["settings"]["weight_warmup_epochs"] == 0 and report["settings"]["label_cost"] == 1.0


def test_a_run_s_own_output_it_cannot_read_back_exits_1_saying_check_the_disk(tmp_path: Path, capsys,
                                                                              monkeypatch) -> None:
    # Seen by a review: the run's own outputs were hashed with the InputError meant for delivered files, so a disk
    # error reading the run's model file exited 2 telling the user to deliver the data again.
    import errno

    import lossval.io

    real_open = open

    def failing_disk(file, mode="r", *args, **kwargs):
        if "b" in mode and "r" in mode and Path(file).name == "model_after.pt":
            raise OSError(errno.EIO, "Input/output error", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(lossval.io, "open", failing_disk, raising=False)  # what lossval.io opens, file_sha256 too
    cfg = _config(tmp_path, "breast_cancer")
    assert main(["run", str(cfg), "--workspace", str(tmp_path / "ws")]) == 1
    err = capsys.readouterr().err
    assert "lossval: error: " in err and "model_after.pt: this run's own output file cannot be read back " \
        "(Input/output error)" in err and "check the disk" in err, err
    assert "deliver it again" not in err and "Traceback" not in err


def test_a_features_numeric_column_s_na_words_are_missing_in_the_run_s_own_read(tmp_path: Path, capsys,
                                                                                monkeypatch) -> None:
    # Seen by a review: the ingest stage kept a features.numeric column's NA words as text when the column held many
    # typos, so the split stage's refusal counted 'NA' among them. Larger data skips the check before Prefect starts.
    import numpy as np

    monkeypatch.setattr("flows.runner.PRECHECK_MAX_BYTES", 0)
    years = (np.arange(120) % 30).astype(str).astype(object)
    years[1::8], years[2::8] = "NA", "unknown"  # 90 of the 105 values that are not NA words are numbers
    rng = np.random.default_rng(0)
    x = rng.normal(size=120)
    pd.DataFrame({"id": [f"r{i}" for i in range(120)], "x": x, "years": years,
                  "label": np.where(x > 0, "a", "b")}).to_csv(tmp_path / "d.csv", index=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"dataset": "t-numeric-na", "data": str(tmp_path / "d.csv"), "target": "label",
                                   "id_column": "id", "features": {"numeric": ["years"]},
                                   "tracking": {"experiment": "lossval-tests"}}))
    assert main(["run", str(cfg), "--workspace", str(tmp_path / "ws")]) == 2
    err = capsys.readouterr().err
    assert "non-numeric value 'unknown' in numeric column 'years' at row 2 (15 of 105 non-missing values" in err, err


def test_an_unreachable_store_is_asked_once_before_a_run_goes_ahead(tmp_path: Path, monkeypatch) -> None:
    # Seen by a review: the repeated-refusal lookup asked a store the unchanged lookup had just found unreachable, so
    # the run waited up to MLflow's request timeout a second time before its warning.
    import socket

    from prefect import flow

    import flows.clean
    import tasks.champion
    from lossval.config import config_from_dict

    with socket.socket() as s:  # bound, never listening: a connection there is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        asked: list[str] = []
        opened = tasks.champion.mlflow_client
        monkeypatch.setattr(tasks.champion, "mlflow_client", lambda uri: asked.append(uri) or opened(uri))
        warned: list[str] = []

        class Log:
            def info(self, *args) -> None:
                pass

            def warning(self, msg, *args) -> None:
                warned.append(msg % args)

        class Ran(Exception):
            pass

        monkeypatch.setattr(flows.clean, "get_run_logger", Log)

        def ran(*args, **kwargs):  # the first step after the lookups: the run went ahead
            raise Ran

        monkeypatch.setattr(flows.clean, "snapshot_history", ran)
        rows = pd.DataFrame({"id": [f"r{i}" for i in range(40)], "x": [float(i) for i in range(40)],
                             "label": ["a", "b"] * 20})
        rows.to_csv(tmp_path / "d.csv", index=False)
        config = config_from_dict({"dataset": "t-down", "data": str(tmp_path / "d.csv"), "target": "label",
                                   "id_column": "id", "lossval": {"device": "cpu"},  # cpu: a refusal may repeat
                                   "tracking": {"uri": f"http://127.0.0.1:{port}"}})

        @flow
        def cleaning() -> dict:
            return flows.clean.run_cleaning(config, workspace=str(tmp_path / "ws"), skip_unchanged=True)

        with pytest.raises(Ran):
            cleaning()
    assert asked == [f"http://127.0.0.1:{port}"]  # once, by the unchanged lookup
    assert any(w.startswith("dataset t-down runs: the champion could not be looked up: ") and "unless the store "
               "answers by the time the run is gated and tracked, nothing is promoted" in w for w in warned), warned
