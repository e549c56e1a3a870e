"""MLflow bookkeeping: runs a killed process left RUNNING, registering at the same moment, params too long to keep."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lossval.config import config_from_dict
from lossval.io import pid_namespace
from tasks.track import (CONFIG_ARTIFACT, PARAM_VALUE_LIMIT, _process_tags, _process_token, close_abandoned_runs,
                         fit_params, promote, replacing)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{root / 'mlflow.db'}", root


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_runs_left_running_by_a_killed_process_are_closed_and_live_ones_left_alone(store) -> None:
    import socket

    uri, root = store
    client = _client(uri)
    exp = client.create_experiment("housekeeping", artifact_location=(root / "art").as_uri())
    host = socket.gethostname()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        killed_token = _process_token(child.pid)
    finally:
        child.kill()
        child.wait()
    assert killed_token is not None

    def running(tags):
        return client.create_run(exp, tags=tags).info.run_id

    killed = running({"lossval_host": host, "lossval_process": killed_token})
    # This process's pid with another start time: a pid reused since, not the process that logged the run.
    reused_pid = running({"lossval_host": host, "lossval_process": f"{os.getpid()}:1"})
    alive = running({"lossval_host": host, "lossval_process": _process_token(os.getpid())})
    elsewhere = running({"lossval_host": host + "-other", "lossval_process": killed_token})
    # A container sharing this host name: its pids are its own (a reviewer saw a live run marked KILLED).
    container = running({"lossval_host": host, "lossval_process": killed_token, "lossval_pid_ns": "4026531999x"})
    someone_else = running({})
    assert _process_tags()["lossval_pid_ns"] == pid_namespace()

    assert sorted(close_abandoned_runs(client, exp)) == sorted([killed, reused_pid])
    status = {rid: client.get_run(rid).info.status
              for rid in (killed, reused_pid, alive, elsewhere, container, someone_else)}
    assert status == {killed: "KILLED", reused_pid: "KILLED", alive: "RUNNING", elsewhere: "RUNNING",
                      container: "RUNNING", someone_else: "RUNNING"}
    assert "ended without closing" in client.get_run(killed).data.tags["lossval_abandoned"]
    assert close_abandoned_runs(client, exp) == []  # nothing left to close


def test_two_runs_registering_at_the_same_moment_register_one_version(store, tmp_path: Path, monkeypatch) -> None:
    from mlflow import MlflowClient

    uri, _ = store
    config = config_from_dict({"data": "d.csv", "target": "y", "dataset": "race",
                               "tracking": {"uri": uri, "experiment": "race"}})
    client = _client(uri)
    exp = client.create_experiment("race")
    run_ids = [client.create_run(exp).info.run_id for _ in range(2)]
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    search = MlflowClient.search_model_versions

    def slow_search(self, *args, **kwargs):  # widen the gap between looking for the version and registering it
        found = search(self, *args, **kwargs)
        time.sleep(0.5)
        return found

    monkeypatch.setattr(MlflowClient, "search_model_versions", slow_search)
    results: list[dict] = []

    def register(run_id: str) -> None:
        results.append(promote.fn(config=config, workspace=str(tmp_path), model_source=str(model_dir),
                                  run_id=run_id, run_key="same-key", gate_passed=True))

    threads = [threading.Thread(target=register, args=(rid,)) for rid in run_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 2
    assert sorted(r["reused"] for r in results) == [False, True]
    assert len(search(client, "name='lossval-race'")) == 1


def test_params_too_long_for_mlflow_say_they_were_cut() -> None:
    columns = [f"column_{i}" for i in range(800)]  # a features.include list longer than MLflow keeps
    full = config_from_dict({"data": "/data/x.csv", "target": "y", "features": {"include": columns}}).flat_params()
    params = fit_params(full)
    assert len(params["include"]) == PARAM_VALUE_LIMIT and params["include"].startswith('["column_0", "column_1"')
    assert params["include"].endswith(f" ... [cut: {len(full['include'])} characters in all; the whole config is the "
                                      f"artifact {CONFIG_ARTIFACT}]")
    assert {k: v for k, v in params.items() if k != "include"} == {k: v for k, v in full.items() if k != "include"}


def _registrar(uri: str, tmp_path: Path, dataset: str):
    """An MLflow client, and ``register(key, **promote_kwargs)``: a new run of ``dataset`` promoted past a gate (passed
    unless ``gate_passed=False``), its result with the run's ``run_id``."""
    config = config_from_dict({"data": "d.csv", "target": "y", "dataset": dataset,
                               "tracking": {"uri": uri, "experiment": dataset}})
    client = _client(uri)
    exp = client.create_experiment(dataset)
    model_dir = tmp_path / "model"
    model_dir.mkdir()

    def register(key: str, *, gate_passed: bool = True, model_source: str = str(model_dir), **kwargs) -> dict:
        run_id = client.create_run(exp).info.run_id
        return {**promote.fn(config=config, workspace=str(tmp_path), model_source=model_source, run_id=run_id,
                             run_key=key, gate_passed=gate_passed, **kwargs), "run_id": run_id}

    return client, register


def test_a_champion_that_changes_says_which_it_replaced(store, tmp_path: Path) -> None:
    client, register = _registrar(store[0], tmp_path, "rollback")
    client.create_registered_model("lossval-rollback", tags={"dataset": "kept as it was"})  # registered before tags
    first, second, again = register("old-config"), register("new-config"), register("old-config")
    assert client.get_registered_model("lossval-rollback").tags == {  # missing tags added, existing ones left
        "dataset": "kept as it was", "target": "y", "task": "auto", "created_by": "lossval"}
    assert (first["version"], first["previous_champion"]) == ("1", None)
    assert (second["version"], second["previous_champion"]) == ("2", "1")
    assert (again["version"], again["reused"], again["previous_champion"]) == ("1", True, "2")  # rerun of an older config
    assert replacing(again["version"], again["previous_champion"]) == \
        " (replacing version 2: an older version is champion again)"
    assert replacing("2", "1") == " (replacing version 1)" and replacing("1", "1") == replacing("1", None) == ""


def test_a_run_overtaken_between_its_gate_and_promotion_stays_challenger(store, tmp_path: Path) -> None:
    client, promote_after_gate = _registrar(store[0], tmp_path, "overtaken")

    def register(key: str, compared: str | None) -> dict:  # the gate compared with version ``compared``
        return promote_after_gate(key, gate_champion={"champion": compared})

    # Both gated while there was no champion; "strong" promoted first, then "weak" arrives.
    strong, weak = register("strong", None), register("weak", None)
    assert (strong["champion"], strong["refused"]) == (True, None)
    assert weak["champion"] is False and weak["champion_version"] == strong["version"] != weak["version"]
    assert weak["refused"].startswith(f"the champion changed while this run was gated: it is version {strong['version']}, "
                                      "and the gate compared with no champion")
    aliases = {a: str(client.get_model_version_by_alias("lossval-overtaken", a).version) for a in ("champion", "challenger")}
    assert aliases == {"champion": strong["version"], "challenger": weak["version"]}
    assert "not promoted" in client.get_model_version("lossval-overtaken", weak["version"]).description
    # Gated against the champion that is still there: promoted, replacing it.
    third = register("third", strong["version"])
    assert (third["champion"], third["refused"], third["previous_champion"]) == (True, None, strong["version"])
    # Two runs of one key gated at once: the first promoted its model; the second finds that same model champion.
    twin = register("third", strong["version"])
    assert (twin["version"], twin["reused"], twin["champion"], twin["refused"]) == (third["version"], True, True, None)
    assert replacing(twin["version"], twin["previous_champion"]) == ""  # nothing replaced


def test_a_reused_version_says_the_latest_gate_decision_not_the_first(store, tmp_path: Path) -> None:
    client, register = _registrar(store[0], tmp_path, "regated")

    def version(number: str):
        return client.get_model_version("lossval-regated", number)

    first = register("same-key")
    assert "Passed the gate." in version("1").description and "gate_run" not in version("1").tags
    # The same run key gated again and refused: still champion (a refusal does not demote), and said so.
    again = register("same-key", gate_passed=False)
    assert (again["version"], again["reused"], again["champion"], again["champion_version"]) == ("1", True, False, "1")
    assert "Champion since an earlier run of the same data and config passed the gate; the latest run's gate refused " \
        "it" in version("1").description and "challenger only" not in version("1").description
    assert (version("1").tags["gate"], version("1").tags["gate_run"], version("1").tags["source_run"]) == \
        ("failed", again["run_id"], first["run_id"])  # who registered it is unchanged
    # Once another version is champion, the same refusal leaves it challenger only.
    register("other-key")
    register("same-key", gate_passed=False)
    assert "Refused by the gate: challenger only." in version("1").description
    assert "Passed the gate" not in version("1").description


def test_a_refused_version_says_why_in_its_description(store, tmp_path: Path) -> None:
    client, register = _registrar(store[0], tmp_path, "why")
    register("first")  # the champion
    config = config_from_dict({"data": "d.csv", "target": "y", "dataset": "why",
                               "tracking": {"uri": store[0], "experiment": "why"}})
    run_id = client.create_run(client.get_experiment_by_name("why").experiment_id,
                               tags={"gate_failures": "accuracy fell by 0.031 (more than gate.metric_tolerance 0.01)"}
                               ).info.run_id
    refused = promote.fn(config=config, workspace=str(tmp_path), model_source=str(tmp_path / "model"), run_id=run_id,
                         run_key="second", gate_passed=False)
    description = client.get_model_version("lossval-why", refused["version"]).description
    assert "Refused by the gate: challenger only. Why: accuracy fell by 0.031 (more than gate.metric_tolerance 0.01)." \
        in description
    assert "Why:" not in client.get_model_version("lossval-why", "1").description  # passed: nothing to explain


def test_a_reused_version_whose_model_files_are_gone_is_registered_again(store, tmp_path: Path) -> None:
    client, register = _registrar(store[0], tmp_path, "gone")
    first = register("same-key")  # its source, the test's empty model folder, holds no model files
    relogged = tmp_path / "relogged"
    relogged.mkdir()
    second = register("same-key", model_source=str(relogged))  # track() logged the model again, elsewhere
    assert (second["version"], second["reused"]) == ("2", False) and first["version"] == "1"
    assert client.get_model_version("lossval-gone", "2").source == str(relogged)
    third = register("same-key", model_source=str(relogged))  # the source track() was given back: reused as before
    assert (third["version"], third["reused"]) == ("2", True)


def test_the_registered_model_s_target_and_task_tags_follow_its_champion(store, tmp_path: Path) -> None:
    client, register = _registrar(store[0], tmp_path, "retargeted")
    register("first")
    assert client.get_registered_model("lossval-retargeted").tags["target"] == "y"
    config = config_from_dict({"data": "d.csv", "target": "churned", "task": "classification", "dataset": "retargeted",
                               "tracking": {"uri": store[0], "experiment": "retargeted"}})
    run_id = client.create_run(client.get_experiment_by_name("retargeted").experiment_id).info.run_id
    refused = promote.fn(config=config, workspace=str(tmp_path), model_source=str(tmp_path / "model"), run_id=run_id,
                         run_key="new-target", gate_passed=False)
    assert refused["champion"] is False and client.get_registered_model("lossval-retargeted").tags["target"] == "y"
    run_id = client.create_run(client.get_experiment_by_name("retargeted").experiment_id).info.run_id
    promote.fn(config=config, workspace=str(tmp_path), model_source=str(tmp_path / "model"), run_id=run_id,
               run_key="new-target-promoted", gate_passed=True)
    tags = client.get_registered_model("lossval-retargeted").tags
    assert (tags["target"], tags["task"], tags["dataset"]) == ("churned", "classification", "retargeted")


def test_the_registered_model_s_description_says_what_its_champion_returns_for_its_task(store, tmp_path: Path) -> None:
    uri = store[0]
    client = _client(uri)
    exp = client.create_experiment("described")

    def promoted(task: str, key: str, target: str = "y") -> str:
        config = config_from_dict({"data": "d.csv", "target": target, "dataset": "described",
                                   "tracking": {"uri": uri, "experiment": "described"}})
        run_id = client.create_run(exp, tags={"task": task}).info.run_id  # track() tags the task the run resolved
        promote.fn(config=config, workspace=str(tmp_path), model_source=str(tmp_path), run_id=run_id, run_key=key,
                   gate_passed=True)
        return client.get_registered_model("lossval-described").description

    said = promoted("regression", "first")
    assert "probabilit" not in said and "predicted target" in said  # a regression model returns no probabilities
    said = promoted("classification", "second", target="churned")  # a new target, and task, took over as champion
    assert "predicted class" in said and "probability[<class>] column per class" in said
    client.update_registered_model("lossval-described", description="Ours: the churn model.")  # a team's own words
    assert promoted("regression", "third") == "Ours: the churn model."


def test_a_refused_runs_description_keeps_its_verdict_remedies_and_registry_line_within_mlflows_limit() -> None:
    """A reviewer's run with 100 drifted columns: the description passed MLflow's 8000-character tag limit when
    promote() rewrote it, so it ended mid-word without "What to do" or the registry line, and the deciding metric
    failure, listed after 100 range failures, showed nowhere."""
    from tasks.track import DESCRIPTION_LIMIT, GATE_ARTIFACT, REGISTRATION_PENDING, _cut, _run_description

    config = config_from_dict({"data": "d.csv", "target": "y", "dataset": "wide"})
    metrics = {"before": {"accuracy": 0.9, "macro_f1": 0.9, "log_loss": 0.3},
               "after": {"accuracy": 0.9, "macro_f1": 0.8, "log_loss": 0.5}}
    stages = {"split": {"rows": {"train": 1000}}, "prune": {"rows_kept": 800, "rows_pruned": 200},
              "retrain": {"metrics": metrics}, "value": {}}
    pruning = {"policy": "two_means", "flagged": 300, "quarantined": 200, "protected": 0, "cap_hit": True,
               "class_cap_hit": False, "capped_classes": [], "max_prune_fraction": 0.2, "threshold": 0.5}
    deciding = "accuracy unchanged, no metric improved and macro_f1, log_loss got worse (gate.refuse_when_all_worse)"
    ranges = [f"expect_column_values_to_be_between(x{i}): 53.3% unexpected " + "sample values " * 20 for i in range(100)]
    gate = {"passed": False, "failures": [deciding, *ranges], "remedies": ["Prune less. " * 10, "Check the data. " * 10]}
    text = _run_description(config, stages, gate, pruning)
    assert text.endswith("\n\n" + REGISTRATION_PENDING) and len(text) <= DESCRIPTION_LIMIT + len(REGISTRATION_PENDING) + 2
    assert deciding in text and "What to do: Prune less." in text
    assert f"and 93 more (every one is in the artifact {GATE_ARTIFACT})" in text
    registered = text.replace(REGISTRATION_PENDING, "Model registry: lossval-wide version 1 is challenger only. " * 20)
    assert len(registered) < 8000  # what promote() writes back fits MLflow's tag limit whole
    assert _cut("abc", 10, "x") == "abc"
    cut = _cut("a" * 100, 60, "the rest is in f.json")
    assert len(cut) <= 60 and cut.endswith("[cut: 100 characters in all; the rest is in f.json]")


@pytest.mark.parametrize("store", ["workspace's own", "user's own"])
def test_artifacts_outside_the_workspace_are_found_and_the_default_experiment_named(store, tmp_path: Path,
                                                                                    monkeypatch) -> None:
    # MLflow's own Default experiment keeps its artifacts under the folder its store was first opened from, written
    # as a plain path: tracking.experiment: Default put a run's model there, outside the workspace, and nothing said.
    # A new user's run with tracking: {uri: "sqlite:///ml.db", experiment: Default} did the same with a store of the
    # user's choosing, where the warning the README promises did not come: a folder MLflow picked is nobody's choice.
    from tasks.track import _artifacts_elsewhere, _elsewhere_warning, _mlflow

    workspace, elsewhere = tmp_path / "ws", tmp_path / "started-here"
    workspace.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    uri = f"sqlite:///{workspace / 'mlflow.db'}" if store == "workspace's own" else f"sqlite:///{tmp_path / 'own.db'}"
    with _mlflow(uri, "Default", str(workspace)) as (client, default_id):
        found = _artifacts_elsewhere(client, default_id, uri, str(workspace))
        assert found is not None and Path(found).is_relative_to(elsewhere)
        said = _elsewhere_warning("Default", default_id, found)
        assert "MLflow's own default experiment" in said and "Set tracking.experiment to a name of your own" in said
    with _mlflow(uri, "lossval-own", str(workspace)) as (client, own_id):  # created by lossval: in the workspace
        assert _artifacts_elsewhere(client, own_id, uri, str(workspace)) is None
        assert "it was moved or copied" in _elsewhere_warning("lossval-own", own_id, "/else")
    # An experiment the user made with a location of their own (a moved workspace's too) is left as it is.
    with _mlflow(uri, "lossval-own", str(tmp_path / "another-workspace")) as (client, own_id):
        assert _artifacts_elsewhere(client, own_id, uri, str(tmp_path / "another-workspace")) is None
