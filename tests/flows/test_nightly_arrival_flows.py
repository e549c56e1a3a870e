"""The nightly and new-data flows in-process (the shared Prefect harness); the server tests run them deployed."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lossval.errors import ConfigError, GateFailed, InputError, NightlyFailed, SetupError, WorkspaceError
from lossval.demo import make_demo_data
from lossval.landing import read_lock_log
from tests.flows._runlog import kept_run_log

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_harness")]


def _demo_config(folder: Path, **overrides) -> Path:
    data = make_demo_data(dataset="breast_cancer", noise=0.1, seed=0, out_dir=folder / "data")
    cfg = {"data": str(data.train_path), "target": data.target, "id_column": "id",
           "validation": {"strategy": "file", "path": str(data.validation_path)}, "test_path": str(data.test_path),
           "lossval": {"epochs": 4}, "retrain": {"epochs": 8}, "gate": {"metric_tolerance": 1.0, "refuse_when_all_worse": False},
           "tracking": {"experiment": "lossval-nightly-tests"}, **overrides}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("nightly")
    good = _demo_config(root / "good")
    broken = root / "broken.yaml"
    broken.write_text(yaml.safe_dump({"data": str(root / "missing.csv"), "target": "diagnosis"}))
    impossible = root / "impossible.json"  # a gate suite no data passes: the run completes, the gate refuses it
    impossible.write_text(json.dumps({"name": "impossible", "expectations": [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 10**9, "max_value": None}}]}))
    refused = _demo_config(root / "refused", gate={"metric_tolerance": 1.0, "refuse_when_all_worse": False,
                                                   "suite": str(impossible)})
    datasets = root / "datasets.yaml"
    datasets.write_text(yaml.safe_dump({"datasets": [{"name": "broken", "config": str(broken)},
                                                     {"name": "good", "config": str(good), "landing": "incoming"},
                                                     {"name": "refused", "config": str(refused)}]}))
    (root / "landing" / "incoming").mkdir(parents=True)
    secret = root / "outside" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text("diagnosis,x\nbenign,1\n")
    (root / "landing" / "incoming" / "link.csv").symlink_to(secret)
    return {"root": root, "datasets": datasets, "landing": root / "landing", "ws": root / "ws", "secret": secret,
            "refused": refused}


@pytest.fixture
def run_log() -> Iterator[list[str]]:
    """Prefect's flow and task run log records (WARNING and above)."""
    with kept_run_log(logging.WARNING) as lines:
        yield lines


def test_nightly_cleans_every_dataset_and_reports_the_failed_and_the_refused_one(setup: dict[str, Path],
                                                                                  run_log: list[str]) -> None:
    from flows.nightly import nightly

    state = nightly(datasets_file=str(setup["datasets"]), workspace=str(setup["ws"]), return_state=True)
    assert state.is_failed()  # bad input fails the night; the refusal alone would not
    assert state.message.startswith("1 of 3 dataset(s) failed (broken) and 1 refused by the quality gate (refused). "
                                    "broken: ")
    assert "missing.csv" in state.message  # the error names the file
    with pytest.raises(NightlyFailed, match="1 of 3 dataset") as failed:  # what a caller of nightly() gets
        state.result()
    assert failed.value.report["failed"] == ["broken"] and failed.value.report["refused"] == ["refused"]
    # Bad input and a refusal are expected outcomes: one line each, no traceback.
    assert not [line for line in run_log if "Traceback" in line], run_log
    [warning] = [line for line in run_log if "this run did not change the champion" in line]
    assert warning.startswith("WARNING dataset refused: ") and "Failed checks: expect_table_row_count_to_be_between" in warning
    assert len([line for line in run_log if line.startswith("ERROR dataset broken failed: InputError")]) == 1
    # deployed from prefect.yaml without LOSSVAL_DATASETS: Prefect deploys "", refused by name at once
    empty = nightly(datasets_file="", workspace=str(setup["ws"]), return_state=True)
    assert empty.is_failed() and "LOSSVAL_DATASETS" in str(empty.result(raise_on_failure=False))
    [report_path] = (setup["ws"] / "nightly").glob("*.json")
    report = json.loads(report_path.read_text())
    assert report["failed"] == ["broken"] and report["refused"] == ["refused"]
    broken, good, refused = report["datasets"]
    assert broken["state"] == "Failed" and "InputError" in broken["error"]
    assert good["state"] == "Completed" and good["kept"] > 0 and good["quarantined"] > 0
    manifest = json.loads((setup["ws"] / "runs" / good["run_id"] / "manifest.json").read_text())
    assert manifest["dataset"] == "good"  # the datasets file's name wins over the config's
    assert [r["holder"] for r in read_lock_log(setup["ws"] / "locks", "good")] != []
    # The refused run is complete: the report says where it is, what it kept and why the gate refused it.
    assert refused["state"] == "Refused" and "error" not in refused
    assert refused["run_dir"] == str(setup["ws"] / "runs" / refused["run_id"])
    manifest = json.loads((Path(refused["run_dir"]) / "manifest.json").read_text())
    assert manifest["gate"]["passed"] is False and manifest["gate"]["failures"] == refused["gate_failures"]
    assert refused["gate_failures"][0].startswith("expect_table_row_count_to_be_between")
    assert refused["gate_remedies"] == manifest["gate"]["remedies"] and refused["gate_remedies"][0].startswith(
        "The suite's minimum row count (1000000000) is above the")
    assert refused["reason"] == "failed checks: " + "; ".join(refused["gate_failures"])
    assert (refused["kept"], refused["quarantined"]) == (manifest["rows"]["kept"], manifest["rows"]["quarantine"])
    assert refused["mlflow_run_id"] == manifest["mlflow"]["run_id"]


def test_a_bad_entry_or_a_held_lock_fails_that_dataset_only(setup: dict[str, Path]) -> None:
    from flows.nightly import locks_dir, nightly
    from lossval.landing import dataset_lock

    datasets = setup["root"] / "typo.yaml"
    broken = setup["root"] / "broken.yaml"
    datasets.write_text(yaml.safe_dump({"datasets": [{"name": "typo", "config": str(broken), "cron": "x"},
                                                     {"name": "busy", "config": str(broken)},
                                                     {"name": "broken", "config": str(broken)}]}))
    ws = setup["ws"] / "entries"
    start = time.monotonic()
    with dataset_lock(locks_dir(ws), "busy", timeout=0, holder="a stuck run"):
        state = nightly(datasets_file=str(datasets), workspace=str(ws), lock_timeout_s=0.5, return_state=True)
    assert time.monotonic() - start < 60  # the held lock did not hold the night (default: an hour)
    report = state.result(raise_on_failure=False).report
    assert report["failed"] == ["typo", "busy", "broken"]
    typo, busy, broken_record = report["datasets"]
    assert "unknown key(s) ['cron']" in typo["error"] and "typo.yaml" in typo["error"]
    assert busy["error"].startswith("LockTimeout") and "a stuck run" in busy["error"], busy["error"]
    assert "missing.csv" in broken_record["error"]  # the entries after the bad ones still ran
    with pytest.raises(ConfigError, match="lock_timeout_s must be a number of seconds >= 0, got nan"):
        nightly(datasets_file=str(datasets), workspace=str(ws), lock_timeout_s=float("nan"))


def test_a_name_an_unusable_entry_repeats_fails_both_entries_and_the_summary_names_them(setup, monkeypatch) -> None:
    # The usable 'dup' ran beside the unusable one, and the night's summary then failed with KeyError: 'error'.
    import flows.nightly
    from flows.nightly import nightly

    cleaned: list[str] = []
    monkeypatch.setattr(flows.nightly, "run_cleaning", lambda config, **kw: cleaned.append(config.dataset) or {
        "run_id": "r", "rows": {"kept": 1, "quarantine": 0}})
    good = str(setup["root"] / "good" / "config.yaml")
    datasets = setup["root"] / "dup-names.yaml"
    typo = {"name": "dup", "config": good, "landing": "dup-eu", "cron": "x"}
    datasets.write_text(yaml.safe_dump({"datasets": [{"name": "dup", "config": good}, typo]}))
    state = nightly(datasets_file=str(datasets), workspace=str(setup["ws"] / "dup-names"), return_state=True)
    assert state.is_failed() and cleaned == []  # which entry was meant is the editor's call: neither runs
    assert state.message.startswith("2 of 2 dataset(s) failed (dup, dup). dup: "), state.message
    assert "duplicate name(s) ['dup']" in state.message and "unknown key(s) ['cron']" in state.message
    report = state.result(raise_on_failure=False).report
    assert [r["state"] for r in report["datasets"]] == ["Failed", "Failed"]


def test_the_report_lists_every_entry_in_the_datasets_files_order(setup, monkeypatch) -> None:
    # Seen by a reviewer: the unusable entries came first and the rest after them, so the report did not read
    # against the file.
    import flows.nightly
    from flows.nightly import nightly

    monkeypatch.setattr(flows.nightly, "run_cleaning", lambda config, **kw: {"run_id": f"r-{config.dataset}",
                                                                            "rows": {"kept": 1, "quarantine": 0}})
    good = str(setup["root"] / "good" / "config.yaml")
    datasets = setup["root"] / "in-order.yaml"
    datasets.write_text(yaml.safe_dump({"datasets": [{"name": "a", "config": good},
                                                     {"name": "b", "config": good, "cron": "x"},
                                                     {"name": "c", "config": good}]}))
    report = nightly(datasets_file=str(datasets), workspace=str(setup["ws"] / "in-order"),
                     return_state=True).result(raise_on_failure=False).report
    assert [(r["dataset"], r["state"]) for r in report["datasets"]] == [("a", "Completed"), ("b", "Failed"),
                                                                        ("c", "Completed")]
    assert report["failed"] == ["b"] and "unknown key(s) ['cron']" in report["datasets"][1]["error"]


def test_a_bad_pipeline_config_is_reported_at_the_nights_start_and_the_others_still_run(setup, monkeypatch,
                                                                                         run_log: list[str]) -> None:
    # Seen by a reviewer: a config with a typo was only found when its turn came, possibly hours into the night.
    import flows.nightly
    from flows.nightly import nightly

    logged_before_cleaning: list[list[str]] = []

    def cleaning(config, **kw):  # noqa: ANN001, ANN202
        logged_before_cleaning.append(list(run_log))
        return {"run_id": f"r-{config.dataset}", "rows": {"kept": 1, "quarantine": 0}}

    monkeypatch.setattr(flows.nightly, "run_cleaning", cleaning)
    good = yaml.safe_load((setup["root"] / "good" / "config.yaml").read_text())
    typo = setup["root"] / "typo-config.yaml"
    typo.write_text(yaml.safe_dump({**good, "lossval": {"epoch": 4}}))
    bad_value = setup["root"] / "bad-value.yaml"
    bad_value.write_text(yaml.safe_dump({**good, "lossval": {"epochs": -1}}))
    no_yaml = setup["root"] / "no-yaml.yaml"
    no_yaml.write_text("data: [unclosed\n")
    datasets = setup["root"] / "bad-configs.yaml"
    good_path = str(setup["root"] / "good" / "config.yaml")
    datasets.write_text(yaml.safe_dump({"datasets": [{"name": "first", "config": good_path},
                                                     {"name": "typo", "config": str(typo)},
                                                     {"name": "bad-value", "config": str(bad_value)},
                                                     {"name": "no-yaml", "config": str(no_yaml)},
                                                     {"name": "last", "config": good_path}]}))
    state = nightly(datasets_file=str(datasets), workspace=str(setup["ws"] / "bad-configs"), return_state=True)
    report = state.result(raise_on_failure=False).report
    assert [(r["dataset"], r["state"]) for r in report["datasets"]] == [
        ("first", "Completed"), ("typo", "Failed"), ("bad-value", "Failed"), ("no-yaml", "Failed"),
        ("last", "Completed")]
    assert report["failed"] == ["typo", "bad-value", "no-yaml"]
    errors = {r["dataset"]: r["error"] for r in report["datasets"] if r["state"] == "Failed"}
    assert errors["typo"].startswith(f"ConfigError: {typo}: unknown key(s) ['epoch'] in section 'lossval'")
    assert errors["bad-value"].startswith(f"ConfigError: {bad_value}: ") and "epochs" in errors["bad-value"]
    assert errors["no-yaml"].startswith(f"ConfigError: {no_yaml}: not valid YAML at line 2")
    # the unknown key's error, with its list of valid keys, is longer than the report keeps: cut, and said so
    assert errors["typo"].endswith("characters in all; the whole error is in this night's Prefect log]")
    # each bad config was logged whole, once and in one line, before the first dataset was cleaned
    assert len(logged_before_cleaning) == 2, logged_before_cleaning
    for name, error in errors.items():
        line = f"ERROR dataset {name} failed: {error.split(' ... [cut: ')[0]}"
        assert [logged.startswith(line) for logged in logged_before_cleaning[0]].count(True) == 1, run_log
        assert [logged.startswith(line) for logged in run_log].count(True) == 1, run_log
    assert any(logged.endswith("'weight_warmup_epochs', 'width'].") for logged in run_log), run_log
    assert not [line for line in run_log if "Traceback" in line], run_log


def test_two_nights_started_in_the_same_second_keep_both_reports(setup, monkeypatch) -> None:
    # Two nightly deployments (two datasets files) on one workspace and one 02:00 schedule wrote one file.
    import datetime
    import types

    import flows.nightly
    from flows.nightly import nightly

    class At0200(datetime.datetime):
        @classmethod
        def now(cls, tz=None):  # noqa: ANN001, ANN206
            return datetime.datetime(2026, 12, 7, 2, 0, 0, tzinfo=datetime.timezone.utc)

    monkeypatch.setattr(flows.nightly, "dt", types.SimpleNamespace(datetime=At0200, timezone=datetime.timezone))
    monkeypatch.setattr(flows.nightly, "run_cleaning", lambda config, **kw: {"run_id": f"r-{config.dataset}",
                                                                            "rows": {"kept": 1, "quarantine": 0}})
    good, ws = str(setup["root"] / "good" / "config.yaml"), setup["ws"] / "same-second"
    reports = []
    for name in ("team-a", "team-b"):
        datasets = setup["root"] / f"{name}.yaml"
        datasets.write_text(yaml.safe_dump({"datasets": [{"name": name, "config": good}]}))
        reports.append(nightly(datasets_file=str(datasets), workspace=str(ws)))
    written = sorted((ws / "nightly").glob("*.json"))
    assert sorted(json.loads(p.read_text())["datasets"][0]["dataset"] for p in written) == ["team-a", "team-b"]
    assert {p.name for p in written} == {f"20261207T020000Z-{r['flow_run_id']}.json" for r in reports}


def test_the_report_says_why_nothing_was_promoted() -> None:
    from flows.nightly import _refusal_reason

    gate = {"gate": {"failures": ["expect_x: 3 rows"]}, "model": {"refused": None}}
    assert _refusal_reason(gate) == "failed checks: expect_x: 3 rows"
    changed = {"gate": {"failures": []}, "model": {"refused": "the champion changed while this run was gated: ..."}}
    assert _refusal_reason(changed).startswith("the champion changed while this run was gated")
    assert _refusal_reason({"gate": {"failures": []}, "model": None}) is None


def test_a_refusal_is_repeated_without_a_run_only_after_a_comparison_a_rerun_would_make_again() -> None:
    from tasks.track import _compared_champion

    assert _compared_champion(None) is None  # gate.compare_with_champion off
    assert _compared_champion({"champion": None, "failures": [], "metrics": None}) == "none"  # no champion yet
    assert _compared_champion({"champion": "3", "failures": ["worse"], "metrics": {"accuracy": 0.9}}) == "3"
    unreadable = {"champion": None, "failures": ["could not be read (server down)"], "metrics": None}
    assert _compared_champion(unreadable) is None  # may answer next night
    assert _compared_champion({"champion": "3", "failures": ["schema differs"], "metrics": None}) is None
    # Only a tracked and registered refusal, with what its report reads, is repeated.
    from tasks.champion import _complete_refusal

    good = {"run_id": "r1", "gate": {"passed": False, "failures": ["x"], "remedies": ["y"]},
            "rows": {"kept": 9, "quarantine": 1}, "model": {"version": "2"}, "mlflow": {"status": "ok", "run_id": "m1"}}
    assert _complete_refusal(good, "m1")
    assert not _complete_refusal(good, "m2")  # the version was gated by another run since
    assert not _complete_refusal({**good, "mlflow": {"status": "failed", "run_id": "m1"}, "model": None}, "m1")
    assert not _complete_refusal({**good, "gate": {"passed": False, "failures": ["x"]}}, "m1")  # an older manifest
    assert not _complete_refusal({**good, "gate": {**good["gate"], "passed": True}}, "m1")
    assert not _complete_refusal(["not", "a", "manifest"], "m1")


def test_a_night_whose_only_problem_is_a_refusal_completes(setup: dict[str, Path], run_log: list[str]) -> None:
    from flows.nightly import nightly

    datasets = setup["root"] / "refused-only.yaml"
    datasets.write_text(yaml.safe_dump({"datasets": [{"name": "refused", "config": str(setup["refused"])}]}))
    ws = setup["ws"] / "refusals"
    state = nightly(datasets_file=str(datasets), workspace=str(ws), return_state=True)
    assert state.is_completed(), state.message
    assert state.message == "0 of 1 dataset(s) promoted; 1 refused by the quality gate, champion unchanged: refused"
    report = state.result()
    [record] = report["datasets"]
    assert report["failed"] == [] and report["refused"] == ["refused"] and record["state"] == "Refused"
    assert (ws / "runs" / record["run_id"] / "manifest.json").is_file() and record["repeated"] is False
    assert [json.loads(p.read_text()) for p in (ws / "nightly").glob("*.json")] == [report]
    assert not [line for line in run_log if "Traceback" in line], run_log
    # The next night, the same data and config, and the same (no) champion: refused again, without a run.
    with kept_run_log(logging.INFO) as log:
        again = nightly(datasets_file=str(datasets), workspace=str(ws))
    # Seen by a review: "dataset refused runs: ..." was logged just before "... so it was not run again".
    assert not [line for line in log if "dataset refused runs:" in line], log
    assert any("so it was not run again" in line for line in log), log
    [repeat] = again["datasets"]
    assert again["refused"] == ["refused"] and repeat["state"] == "Refused" and repeat["repeated"] is True
    assert {k: repeat[k] for k in ("run_id", "run_dir", "gate_failures", "gate_remedies", "kept", "quarantined")} == \
        {k: record[k] for k in ("run_id", "run_dir", "gate_failures", "gate_remedies", "kept", "quarantined")}
    assert [p.name for p in (ws / "runs").iterdir()] == [record["run_id"]]  # no second run folder
    assert any("not run again" in line for line in run_log)
    assert any("and there is still no champion, so it was not run again" in line for line in run_log), run_log


def test_a_night_on_the_champions_own_data_and_config_runs_nothing_again(setup: dict[str, Path]) -> None:
    from flows.nightly import nightly

    datasets = setup["root"] / "good-only.yaml"
    good = {"name": "good", "config": str(setup["root"] / "good" / "config.yaml")}
    datasets.write_text(yaml.safe_dump({"datasets": [good]}))
    ws = setup["ws"] / "unchanged"
    with kept_run_log(logging.INFO) as log:
        [first] = nightly(datasets_file=str(datasets), workspace=str(ws))["datasets"]
    assert first["state"] == "Completed"
    # a run that goes ahead says why
    assert [line for line in log if "dataset good runs:" in line] == [
        f"INFO dataset good runs: no champion yet (no MLflow store at sqlite:///{ws.resolve() / 'mlflow.db'})"]
    folders = sorted(p.name for p in (ws / "runs").iterdir())
    state = nightly(datasets_file=str(datasets), workspace=str(ws), return_state=True)
    assert state.is_completed() and state.message == "0 of 1 dataset(s) cleaned; 1 unchanged since their champion's run: good"
    report = state.result()
    [same] = report["datasets"]
    assert report["unchanged"] == ["good"] and report["failed"] == report["refused"] == []
    assert same["state"] == "Unchanged" and same["champion_version"] == "1" and same["run_id"] == first["run_id"]
    assert same["run_dir"] == str(ws / "runs" / first["run_id"]) and same["mlflow_run_id"] == first["mlflow_run_id"]
    assert sorted(p.name for p in (ws / "runs").iterdir()) == folders  # nothing written, no .partial left
    # Asked to, it runs all the same; and another config of the same data is another run key: it runs.
    [again] = nightly(datasets_file=str(datasets), workspace=str(ws), rerun_unchanged=True)["datasets"]
    assert again["state"] == "Completed" and again["run_id"] != first["run_id"]
    shutil.rmtree(ws / "runs" / first["run_id"])  # the champion's run folder deleted: its outputs are made again
    shutil.rmtree(ws / "runs" / again["run_id"])  # (the version now names the latest run that gated it)
    with kept_run_log(logging.INFO) as log:
        [remade] = nightly(datasets_file=str(datasets), workspace=str(ws))["datasets"]
    [why] = [line for line in log if "dataset good runs:" in line]
    assert why.startswith("INFO dataset good runs: the champion (version 1) is this data's, but the folder of the run "
                          f"that gated it ({ws / 'runs' / again['run_id']}) has no manifest.json"), why
    assert remade["state"] == "Completed" and (ws / "runs" / remade["run_id"] / "manifest.json").is_file()
    [same] = nightly(datasets_file=str(datasets), workspace=str(ws))["datasets"]  # and it points to the new folder
    assert same["state"] == "Unchanged" and same["run_id"] == remade["run_id"]
    # beside a failing dataset, the message names the failed one before its error, not after the unchanged one
    both = setup["root"] / "good-and-broken.yaml"
    both.write_text(yaml.safe_dump({"datasets": [good, {"name": "broken", "config": str(setup["root"] / "broken.yaml")}]}))
    state = nightly(datasets_file=str(both), workspace=str(ws), return_state=True)
    assert state.is_failed() and state.message.startswith(
        "1 of 2 dataset(s) failed (broken); 1 unchanged since their champion's run: good. broken: "), state.message
    other = setup["root"] / "good" / "other.yaml"
    other.write_text(yaml.safe_dump({**yaml.safe_load(Path(good["config"]).read_text()), "retrain": {"epochs": 6}}))
    datasets.write_text(yaml.safe_dump({"datasets": [{**good, "config": str(other)}]}))
    with kept_run_log(logging.INFO) as log:
        [changed] = nightly(datasets_file=str(datasets), workspace=str(ws))["datasets"]
    assert [line for line in log if "dataset good runs:" in line] == [
        "INFO dataset good runs: the champion (version 1) came from another run key: the data, curated validation or "
        "test files, config or lossval version differ"]
    assert changed["state"] == "Completed" and len(list((ws / "runs").iterdir())) == len(folders) + 1  # 2 removed


@pytest.mark.parametrize("exc, traceback", [(InputError("x.csv: no column 'y'"), False),
                                            (GateFailed("nothing promoted"), False),
                                            (NightlyFailed("1 of 2 dataset(s) failed", report={}), False),
                                            # no worker on the valuation's pool (a review saw two tracebacks)
                                            (SetupError("valuation run v did not finish within 40s"), False),
                                            # a run's own output unreadable: the message names it and what to do
                                            (WorkspaceError("runs/r/metrics.json: cannot be read back"), False),
                                            (RuntimeError("a bug"), True)])
def test_prefect_logs_expected_errors_in_one_line_and_bugs_with_their_traceback(run_log: list[str], exc: Exception,
                                                                                traceback: bool) -> None:
    from flows._log import quiet_expected_errors

    from prefect.settings import PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW, temporary_settings

    quiet_expected_errors()
    with temporary_settings({PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"}):  # no flow run here
        for name in ("prefect.flow_runs", "prefect.task_runs"):
            try:
                raise exc
            except Exception:
                logging.getLogger(name).error("Task run failed with exception: %r", exc, exc_info=True)
                # a deployed run's engine repeats the flow's exception when it exits: dropped unless a bug
                logging.getLogger(name).error("Engine execution exited with unexpected exception", exc_info=True)
    failed = [line for line in run_log if line.startswith("ERROR Task run failed")]
    repeats = [line for line in run_log if line.startswith("ERROR Engine execution exited")]
    assert len(failed) == 2 and len(repeats) == (2 if traceback else 0) and len(run_log) == len(failed) + len(repeats)
    for line in failed + repeats:
        assert ("Traceback" in line) is traceback
    for line in failed:
        assert line.startswith(f"ERROR Task run failed with exception: {exc!r}")
        assert ("Traceback" in line) is traceback and (len(line.splitlines()) > 1) is traceback


@pytest.mark.parametrize("path", ["../outside/secret.csv", "incoming/link.csv", "{secret}"])
def test_arrival_refuses_a_path_outside_the_landing_folder_before_reading(setup, monkeypatch, path: str) -> None:
    import lossval.io
    import tasks.ingest
    from flows.arrival import arrival
    from lossval.landing import UnsafePathError

    def must_not_read(*args, **kwargs):
        raise AssertionError("a file was read although its path was refused")

    monkeypatch.setattr(lossval.io, "read_table", must_not_read)
    monkeypatch.setattr(tasks.ingest, "read_table", must_not_read)
    state = arrival(path=path.format(secret=setup["secret"]), datasets_file=str(setup["datasets"]),
                    landing_dir=str(setup["landing"]), workspace=str(setup["ws"] / "escape"), return_state=True)
    assert state.is_failed()
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, UnsafePathError) and "Nothing was read" in str(exc)
    assert not (setup["ws"] / "escape").exists()


def test_arrival_refuses_an_event_whose_dataset_disagrees_with_the_path(setup) -> None:
    from flows.arrival import arrival

    (setup["landing"] / "incoming" / "a.csv").write_text("diagnosis,x\nbenign,1\n")
    kw = {"datasets_file": str(setup["datasets"]), "landing_dir": str(setup["landing"]),
          "workspace": str(setup["ws"] / "mismatch"), "return_state": True}
    state = arrival(path="incoming/a.csv", dataset="refused", **kw)
    assert state.is_failed() and "lands in 'incoming', dataset 'good'; refusing a mismatched event" in state.message
    for named in ("good", "incoming"):  # the dataset's name (watcher with --datasets) or its landing folder's
        state = arrival(path="incoming/a.csv", dataset=named, **kw)
        assert "mismatched" not in state.message, state.message  # past the check (this tiny file then fails)
    state = arrival(path="nowhere__a.csv", datasets_file=str(setup["datasets"]), landing_dir=str(setup["landing"]),
                    workspace=str(setup["ws"] / "mismatch"), return_state=True)
    assert state.is_failed() and "not found in the landing folder" in state.message
    # A NaN wait would never time out on a held lock: refused before the file is read or a lock is made.
    state = arrival(path="incoming/a.csv", lock_timeout_s=float("nan"), **{**kw, "workspace": str(setup["ws"] / "nan")})
    assert state.is_failed() and "lock_timeout_s must be a number of seconds >= 0, got nan" in state.message
    assert not (setup["ws"] / "nan").exists()


def test_an_older_landed_file_does_not_replace_a_newer_one(setup, run_log: list[str]) -> None:
    from flows.arrival import arrival

    source = Path(yaml.safe_load((setup["root"] / "good" / "config.yaml").read_text())["data"])
    data, suffix = source.read_bytes(), source.suffix
    incoming = setup["landing"] / "incoming"
    newer, older = incoming / f"order_new{suffix}", incoming / f"order_old{suffix}"
    newer.write_bytes(data)
    older.write_bytes(data)
    now = time.time_ns()
    os.utime(older, ns=(now - 60 * 10**9, now - 60 * 10**9))  # landed a minute earlier...
    ws = setup["ws"] / "order"
    kw = {"datasets_file": str(setup["datasets"]), "landing_dir": str(setup["landing"]), "workspace": str(ws)}
    first = arrival(path=f"incoming/{newer.name}", **kw)  # ...but its run got the lock second
    late = arrival(path=f"incoming/{older.name}", **kw)
    assert late["superseded"] is True and "run_id" not in late
    assert late["newer"]["relative"] == f"incoming/{newer.name}" and late["newer"]["run_id"] == first["run_id"]
    assert [p.name for p in (ws / "runs").iterdir()] == [first["run_id"]]  # nothing cleaned, nothing promoted
    assert any(f"incoming/{older.name} is older than incoming/{newer.name}, whose data was already cleaned for dataset "
               f"good (run {first['run_id']})" in line for line in run_log), run_log
    again = arrival(path=f"incoming/{newer.name}", **kw)  # the same event again (a client resending after an outage)
    assert again["already_cleaned"] is True and again["cleaned_by"] == first["run_id"] and "run_id" not in again
    assert [p.name for p in (ws / "runs").iterdir()] == [first["run_id"]]
    # An event for a file written again since it landed (its size differs): nothing cleaned; its next landing
    # brings a new event. (An event without mtime_ns, from an older watcher, is checked on what it has.)
    changed = arrival(path=f"incoming/{newer.name}", size=str(len(data) + 1), mtime_ns="", **kw)
    assert changed["changed_since_landing"] is True and "run_id" not in changed
    # The same name, size and mtime, but another file renamed over it: a new delivery, cleaned.
    st = newer.stat()
    replacement = incoming / ".order_new.tmp"
    replacement.write_bytes(data)
    os.utime(replacement, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(replacement, newer)
    replaced = arrival(path=f"incoming/{newer.name}", **kw)
    assert "already_cleaned" not in replaced  # checked as new; and its data is the champion's own: not run again
    assert replaced["unchanged"] is True and replaced["champion"]["run_id"] == first["run_id"] and "run_id" not in replaced
    assert [p.name for p in (ws / "runs").iterdir()] == [first["run_id"]]

    # The nightly run cleans the newest landed file, not the config's older `data`...
    from flows.nightly import clean_entry

    config_path = str(setup["root"] / "good" / "config.yaml")

    def nightly_file() -> str:
        run = clean_entry(name="good", config_path=config_path, workspace=str(ws))
        return Path(json.loads((ws / "runs" / run["run_id"] / "manifest.json").read_text())["config"]["data"]).name

    assert nightly_file() == newer.name
    # ...until a deliberate rollback: then the rolled-back file, and a repeated event for the newer one does not
    # undo the rollback...
    forced = arrival(path=f"incoming/{older.name}", force=True, **kw)
    assert forced["run_id"] != first["run_id"] and forced["landed"]["relative"] == f"incoming/{older.name}"
    record = json.loads((ws / "locks" / "good.arrival.json").read_text())
    assert record["relative"] == f"incoming/{older.name}" and record["rolled_back_from"]["run_id"] == first["run_id"]
    repeated = arrival(path=f"incoming/{newer.name}", **kw)
    assert repeated["superseded"] is True and repeated["rolled_back"] is True and "run_id" not in repeated
    assert nightly_file() == older.name
    # ...not while a new delivery is being written over it in place...
    older.write_bytes(data[: len(data) // 2])
    state = clean_entry(name="good", config_path=config_path, workspace=str(ws), return_state=True)
    assert state.is_failed() and "changed since run" in state.message and "being written in place" in state.message
    # ...and refuses, saying how to go on, when that file was removed.
    older.unlink()
    state = clean_entry(name="good", config_path=config_path, workspace=str(ws), return_state=True)
    assert state.is_failed() and "newest landed file" in state.message and "good.arrival.json" in state.message


def _land(setup: dict[str, Path], ages: dict[str, int]) -> dict[str, Path]:
    """Files ``incoming/<name>.csv`` of the good dataset, each modified ``ages[name]`` seconds ago."""
    now, files = time.time_ns(), {}
    for name, age in ages.items():
        files[name] = setup["landing"] / "incoming" / f"{name}.csv"
        files[name].write_text("diagnosis,x\nbenign,1\n")
        os.utime(files[name], ns=(now - age * 10**9,) * 2)
    return files


def _recording_cleanings(setup: dict[str, Path], monkeypatch, name: str) -> tuple[Path, dict, list[str]]:
    """A workspace ``name``, the arrival flow's keyword arguments, and the file names the arrival and nightly flows
    clean, in order (their run_cleaning replaced by one that records the file and succeeds)."""
    import flows.arrival
    import flows.nightly

    ws = setup["ws"] / name
    kw = {"datasets_file": str(setup["datasets"]), "landing_dir": str(setup["landing"]), "workspace": str(ws)}
    cleaned: list[str] = []

    def fake_cleaning(config, **kwargs):  # noqa: ANN001, ANN003, ANN202
        cleaned.append(Path(config.data).name)
        return {"run_id": f"r-{len(cleaned)}"}

    monkeypatch.setattr(flows.arrival, "run_cleaning", fake_cleaning)
    monkeypatch.setattr(flows.nightly, "run_cleaning", fake_cleaning)
    return ws, kw, cleaned


def _scripted(outcomes: list):  # noqa: ANN202
    """A stand-in for run_cleaning giving ``outcomes`` in turn (an exception is raised): the cleaning itself is
    tested above; these tests are about which file runs and what the records keep."""
    left = iter(outcomes)

    def cleaning(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        outcome = next(left)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return cleaning


def test_a_rollback_the_gate_refuses_leaves_the_record_on_the_newer_file(setup, monkeypatch) -> None:
    import flows.arrival
    from flows.arrival import arrival

    _land(setup, {"rb_old": 60, "rb_new": 0})
    ws = setup["ws"] / "refused-rollback"
    kw = {"datasets_file": str(setup["datasets"]), "landing_dir": str(setup["landing"]), "workspace": str(ws)}
    monkeypatch.setattr(flows.arrival, "run_cleaning", _scripted([
        {"run_id": "r-new"}, GateFailed("refused", summary={"run_id": "r-old"}), {"run_id": "r-old-2"}]))
    arrival(path="incoming/rb_new.csv", **kw)
    state = arrival(path="incoming/rb_old.csv", force=True, return_state=True, **kw)
    assert state.is_failed()
    record = json.loads((ws / "locks" / "good.arrival.json").read_text())
    assert record["relative"] == "incoming/rb_new.csv" and "rolled_back_from" not in record  # nothing rolled back
    arrival(path="incoming/rb_old.csv", force=True, **kw)  # promoted this time: now it is a rollback
    record = json.loads((ws / "locks" / "good.arrival.json").read_text())
    assert (record["relative"], record["run_id"]) == ("incoming/rb_old.csv", "r-old-2")
    assert record["rolled_back_from"]["run_id"] == "r-new"


def test_a_newer_file_whose_arrival_run_failed_is_cleaned_by_the_nightly_run(setup, monkeypatch) -> None:
    # No new event comes for it (the watcher reported it): the nightly run cleaned the older file, night after night.
    import flows.arrival
    import flows.nightly
    from flows.arrival import arrival
    from flows.nightly import clean_entry
    from lossval.errors import LossvalError

    _land(setup, {"fa_old": 60, "fa_new": 0})
    ws = setup["ws"] / "failed-arrival"
    kw = {"datasets_file": str(setup["datasets"]), "landing_dir": str(setup["landing"]), "workspace": str(ws)}
    fake_arrival_cleaning = _scripted([{"run_id": "r-old"}, LossvalError("MLflow tracking server unreachable")])
    cleaned: list[str] = []

    def fake_nightly_cleaning(config, **kwargs):
        cleaned.append(Path(config.data).name)
        return {"run_id": f"r-nightly-{len(cleaned)}"}

    monkeypatch.setattr(flows.arrival, "run_cleaning", fake_arrival_cleaning)
    monkeypatch.setattr(flows.nightly, "run_cleaning", fake_nightly_cleaning)
    arrival(path="incoming/fa_old.csv", **kw)
    assert not (ws / "locks" / "good.attempt.json").exists()  # a finished run leaves no attempt behind
    assert arrival(path="incoming/fa_new.csv", return_state=True, **kw).is_failed()
    assert [a["relative"] for a in json.loads((ws / "locks" / "good.attempt.json").read_text())["attempts"]] == [
        "incoming/fa_new.csv"]
    config_path = str(setup["root"] / "good" / "config.yaml")
    clean_entry(name="good", config_path=config_path, workspace=str(ws))
    assert cleaned == ["fa_new.csv"]  # the newer file, not the older one last recorded
    record = json.loads((ws / "locks" / "good.arrival.json").read_text())
    assert (record["relative"], record["run_id"]) == ("incoming/fa_new.csv", "r-nightly-1")
    assert not (ws / "locks" / "good.attempt.json").exists()
    clean_entry(name="good", config_path=config_path, workspace=str(ws))  # and from then on, as any recorded file
    assert cleaned == ["fa_new.csv", "fa_new.csv"]
    # A failed forced rollback to an older file changes nothing: the nightly run stays on the newest file.
    monkeypatch.setattr(flows.arrival, "run_cleaning", lambda *a, **k: (_ for _ in ()).throw(LossvalError("down")))
    assert arrival(path="incoming/fa_old.csv", force=True, return_state=True, **kw).is_failed()
    clean_entry(name="good", config_path=config_path, workspace=str(ws))
    assert cleaned[-1] == "fa_new.csv"


def test_a_newer_file_whose_arrival_run_never_got_the_lock_is_cleaned_by_the_nightly_run(setup, monkeypatch) -> None:
    # The attempt was recorded only once the lock was held: an arrival run that timed out waiting for it (or was
    # killed while waiting, or met a config typo) left no trace, and the nightly run cleaned the older file.
    from flows.arrival import arrival
    from flows.nightly import clean_entry, locks_dir
    from lossval.landing import dataset_lock

    _land(setup, {"lt_old": 60, "lt_new": 0})
    ws, kw, cleaned = _recording_cleanings(setup, monkeypatch, "lock-timeout")
    arrival(path="incoming/lt_old.csv", **kw)
    with dataset_lock(locks_dir(str(ws)), "good", timeout=0):  # another run holds the dataset
        assert arrival(path="incoming/lt_new.csv", lock_timeout_s=0.2, return_state=True, **kw).is_failed()
    assert cleaned == ["lt_old.csv"]
    clean_entry(name="good", config_path=str(setup["root"] / "good" / "config.yaml"), workspace=str(ws))
    assert cleaned == ["lt_old.csv", "lt_new.csv"]
    assert not (ws / "locks" / "good.attempt.json").exists()
    # Outcomes that clean nothing (an older file, a repeated event) leave no attempt behind either.
    assert arrival(path="incoming/lt_old.csv", **kw)["superseded"]
    assert arrival(path="incoming/lt_new.csv", **kw)["already_cleaned"]
    assert not (ws / "locks" / "good.attempt.json").exists()


def test_a_file_rewritten_since_its_event_is_never_left_for_the_nightly_run(setup, monkeypatch) -> None:
    # The attempt was recorded before the event's size and time were compared: a file being rewritten in place
    # (partial) whose arrival run then waited for the lock was cleaned, partial, by the nightly run.
    import flows.arrival
    from flows.arrival import arrival
    from flows.nightly import clean_entry, locks_dir
    from lossval.landing import dataset_lock

    files = _land(setup, {"rw_old": 60, "rw": 0})
    ws, kw, cleaned = _recording_cleanings(setup, monkeypatch, "rewritten")
    arrival(path="incoming/rw_old.csv", **kw)
    sent = files["rw"].stat()
    files["rw"].write_text("diagnosis,x\nbenign,1\nmal")  # being written again, in place
    with dataset_lock(locks_dir(str(ws)), "good", timeout=0):
        assert arrival(path="incoming/rw.csv", size=sent.st_size, mtime_ns=sent.st_mtime_ns, lock_timeout_s=0.2,
                       return_state=True, **kw).is_failed()
    assert not (ws / "locks" / "good.attempt.json").exists()
    clean_entry(name="good", config_path=str(setup["root"] / "good" / "config.yaml"), workspace=str(ws))
    assert cleaned == ["rw_old.csv", "rw_old.csv"]
    # A refusal of the data that names no file (a target too large for float32, found when retraining) is still
    # the delivery's: its attempt ends, where only errors naming the landed file itself used to end it.
    _land(setup, {"rw_big": -60})
    monkeypatch.setattr(flows.arrival, "run_cleaning", _scripted([InputError("the regression target reaches 7e34")]))
    assert arrival(path="incoming/rw_big.csv", return_state=True, **kw).is_failed()
    assert not (ws / "locks" / "good.attempt.json").exists()


def test_an_older_file_cleaned_after_a_failed_newer_one_leaves_the_newer_one_to_the_nightly_run(
        setup, monkeypatch) -> None:
    import flows.arrival
    import flows.nightly
    from flows.arrival import arrival
    from flows.nightly import clean_entry
    from lossval.errors import LossvalError

    files = _land(setup, {"oo_old": 120, "oo_mid": 60, "oo_new": 0, "oo_bad": -60})
    ws = setup["ws"] / "out-of-order"
    kw = {"datasets_file": str(setup["datasets"]), "landing_dir": str(setup["landing"]), "workspace": str(ws)}
    fake_arrival_cleaning = _scripted([{"run_id": "r-old"}, LossvalError("MLflow down"), {"run_id": "r-mid"}])
    cleaned: list[str] = []

    def fake_nightly_cleaning(config, **kwargs):
        cleaned.append(Path(config.data).name)
        if Path(config.data).name == "oo_bad.csv":
            raise InputError("target column 'diagnosis' not found", source=config.data)
        return {"run_id": f"r-nightly-{len(cleaned)}"}

    monkeypatch.setattr(flows.arrival, "run_cleaning", fake_arrival_cleaning)
    monkeypatch.setattr(flows.nightly, "run_cleaning", fake_nightly_cleaning)
    config_path = str(setup["root"] / "good" / "config.yaml")
    arrival(path="incoming/oo_old.csv", **kw)
    assert arrival(path="incoming/oo_new.csv", return_state=True, **kw).is_failed()
    arrival(path="incoming/oo_mid.csv", **kw)  # an older file's late event: cleaned, but the newer one is unfinished
    clean_entry(name="good", config_path=config_path, workspace=str(ws))
    assert cleaned == ["oo_new.csv"]
    # A delivery the data checks refuse is an outcome, not an unfinished run: the nightly runs keep the recorded file.
    monkeypatch.setattr(flows.arrival, "run_cleaning",
                        lambda config, **k: (_ for _ in ()).throw(InputError("bad data", source=config.data)))
    assert arrival(path="incoming/oo_bad.csv", return_state=True, **kw).is_failed()
    assert not (ws / "locks" / "good.attempt.json").exists()
    clean_entry(name="good", config_path=config_path, workspace=str(ws))
    assert cleaned == ["oo_new.csv", "oo_new.csv"]
    # One the nightly run itself finds refused fails that night only; the next one cleans the recorded file again.
    (ws / "locks" / "good.attempt.json").write_text(json.dumps({"attempts": [{
        "relative": "incoming/oo_bad.csv", "path": str(files["oo_bad"]), "mtime_ns": files["oo_bad"].stat().st_mtime_ns,
        "size": files["oo_bad"].stat().st_size}]}))
    assert clean_entry(name="good", config_path=config_path, workspace=str(ws), return_state=True).is_failed()
    clean_entry(name="good", config_path=config_path, workspace=str(ws))
    assert cleaned == ["oo_new.csv", "oo_new.csv", "oo_bad.csv", "oo_new.csv"]
    # A config error (a device the arrival's worker lacks) is not the file's fault: the attempt stays for the night.
    from lossval.errors import ConfigError

    _land(setup, {"oo_cfg": -120})
    monkeypatch.setattr(flows.arrival, "run_cleaning", _scripted([ConfigError("device='cuda': no CUDA device")]))
    assert arrival(path="incoming/oo_cfg.csv", return_state=True, **kw).is_failed()
    clean_entry(name="good", config_path=config_path, workspace=str(ws))
    assert cleaned[-1] == "oo_cfg.csv"
    # Nor is a problem with another file the config names (a curated validation file on a share that is not
    # mounted): the attempt stays, where it used to be cleared as if the delivery had been refused.
    from lossval.catalog import DatasetEntry

    curated = DatasetEntry("good", config_path, "incoming").load().validation.path
    assert curated is not None
    _land(setup, {"oo_share": -150})
    monkeypatch.setattr(flows.arrival, "run_cleaning", _scripted([InputError(
        "no such file or directory; check the path.", source=curated)]))
    assert arrival(path="incoming/oo_share.csv", return_state=True, **kw).is_failed()
    assert (ws / "locks" / "good.attempt.json").exists()
    clean_entry(name="good", config_path=config_path, workspace=str(ws))
    assert cleaned[-1] == "oo_share.csv"
    # Two deliveries unfinished: the newest is cleaned; if it is gone (or refused), the one before it, not the older
    # recorded file.
    two = _land(setup, {"oo_b": -180, "oo_n": -240})
    monkeypatch.setattr(flows.arrival, "run_cleaning", _scripted([LossvalError("down"), LossvalError("down")]))
    assert arrival(path="incoming/oo_n.csv", return_state=True, **kw).is_failed()
    assert arrival(path="incoming/oo_b.csv", return_state=True, **kw).is_failed()  # older, after: both kept
    two["oo_n"].unlink()
    clean_entry(name="good", config_path=config_path, workspace=str(ws))
    assert cleaned[-1] == "oo_b.csv" and not (ws / "locks" / "good.attempt.json").exists()


def test_a_missing_valuation_deployment_is_a_clear_error(setup) -> None:
    from prefect import flow

    from flows.value_remote import value_on_deployment
    from lossval.catalog import DatasetEntry
    from lossval.errors import LossvalError

    config = DatasetEntry("good", str(setup["root"] / "good" / "config.yaml"), "good").load()
    config = type(config)(**{**config.__dict__, "valuation_deployment": "lossval-value/nowhere"})

    @flow
    def call() -> dict:
        return value_on_deployment("train.parquet", "validation.parquet", key="k", config=config,
                                   workspace=str(setup["ws"]))

    state = call(return_state=True)
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, LossvalError) and "'lossval-value/nowhere' not found" in str(exc)


def test_a_valuation_run_the_caller_stops_waiting_for_is_cancelled(setup) -> None:
    # Seen by a reviewer: with no worker on the pool, each timed-out valuation stayed queued (one more per night, all
    # run when a worker returned), and a running one kept writing values/<key>/ after the caller released its lock.
    from prefect import flow, get_client

    from deployments.serve import register_valuation_deployment
    from flows.value_remote import value_on_deployment
    from lossval.catalog import DatasetEntry
    from lossval.errors import LossvalError

    name = register_valuation_deployment("no-worker-here")
    config = DatasetEntry("good", str(setup["root"] / "good" / "config.yaml"), "good").load()
    config = type(config)(**{**config.__dict__, "valuation_deployment": name})

    @flow
    def call() -> dict:
        return value_on_deployment("train.parquet", "validation.parquet", key="timeout-key", config=config,
                                   workspace=str(setup["ws"]), timeout_s=1, poll_interval_s=0.2)

    caller = call(return_state=True)
    exc = caller.result(raise_on_failure=False)
    assert isinstance(exc, LossvalError) and "did not finish within 1s" in str(exc)
    with get_client(sync_client=True) as client:
        [run] = [r for r in client.read_flow_runs() if r.name == "value-timeout-key"]
        # Linked as a subflow of the caller: that link is what makes the Prefect server cancel the valuation when
        # the calling flow itself is cancelled (its cancellation service; deployments/README.md).
        assert run.parent_task_run_id is not None
        assert client.read_task_run(run.parent_task_run_id).flow_run_id == caller.state_details.flow_run_id
    assert run.state.is_cancelled() and "stopped waiting after 1s" in run.state.message


def test_values_from_a_worker_on_another_release_are_refused(setup, tmp_path, monkeypatch) -> None:
    import types

    import prefect.deployments
    from prefect import flow
    from prefect.states import Completed

    from flows.value_remote import value_on_deployment
    from lossval.catalog import DatasetEntry
    from lossval.errors import LossvalError
    from lossval.valuation import VALUES_VERSION
    from tasks._paths import Workspace

    config = DatasetEntry("good", str(setup["root"] / "good" / "config.yaml"), "good").load()
    config = type(config)(**{**config.__dict__, "valuation_deployment": "lossval-value/gpu"})
    ws = tmp_path / "ws"
    out = Workspace.at(str(ws)).values_dir("k")
    out.mkdir(parents=True)
    (out / "values.parquet").write_bytes(b"")

    def worker(version: int):
        def run_deployment(**_):  # what the worker leaves behind: a completed run and its files
            (out / "valuation.json").write_text(json.dumps({"values_version": version, "task": "classification",
                                                             "seconds": 1.0, "device": "cuda:0"}))
            return types.SimpleNamespace(name="value-k", id="0", state=Completed())
        return run_deployment

    @flow
    def call() -> dict:
        return value_on_deployment("train.parquet", "validation.parquet", key="k", config=config, workspace=str(ws))

    monkeypatch.setattr(prefect.deployments, "run_deployment", worker(VALUES_VERSION - 1))
    exc = call(return_state=True).result(raise_on_failure=False)
    assert isinstance(exc, LossvalError) and f"under VALUES_VERSION {VALUES_VERSION - 1}" in str(exc)
    assert "Install this release on the worker" in str(exc)
    monkeypatch.setattr(prefect.deployments, "run_deployment", worker(VALUES_VERSION))
    assert call()["device"] == "cuda:0"


def test_a_tracking_server_that_does_not_answer_fails_its_dataset_before_any_work(setup: dict[str, Path]) -> None:
    # It was met by the track stage after valuation and retraining; the other datasets of the night still run.
    import socket

    from flows.arrival import arrival
    from flows.nightly import locks_dir, nightly
    from lossval.landing import unfinished_attempts

    with socket.socket() as s:  # bound, never listening: a connection there is refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        good = yaml.safe_load((setup["root"] / "good" / "config.yaml").read_text())
        down = setup["root"] / "down.yaml"
        down.write_text(yaml.safe_dump({**good, "tracking": {"uri": f"http://127.0.0.1:{port}"}}))
        datasets = setup["root"] / "down-datasets.yaml"
        broken = str(setup["root"] / "broken.yaml")
        datasets.write_text(yaml.safe_dump({"datasets": [{"name": "down", "config": str(down), "landing": "down"},
                                                         {"name": "broken", "config": broken}]}))
        ws = setup["ws"] / "down"
        state = nightly(datasets_file=str(datasets), workspace=str(ws), return_state=True)
        report = state.result(raise_on_failure=False).report
        assert report["failed"] == ["down", "broken"]
        error = report["datasets"][0]["error"]
        assert f"down.yaml: tracking.uri http://127.0.0.1:{port}: no MLflow server could be reached" in error, error
        assert "Asked 3 times, 2 s apart" in error, error  # a restarting server gets its chance (SERVER_PROBE_ATTEMPTS)
        assert not (ws / "runs").exists() and not (ws / "snapshots").exists()  # nothing ingested or valued
        (setup["landing"] / "down").mkdir(exist_ok=True)
        (setup["landing"] / "down" / "a.csv").write_bytes(Path(good["data"]).read_bytes())
        state = arrival(path="down/a.csv", datasets_file=str(datasets), landing_dir=str(setup["landing"]),
                        workspace=str(ws), return_state=True)
    assert state.is_failed() and "no MLflow server could be reached" in state.message, state.message
    assert "Asked 3 times" in state.message, state.message
    assert not (ws / "runs").exists() and not (ws / "snapshots").exists()
    # the file's attempt stays recorded: the nightly run cleans it once the server answers
    assert [a["relative"] for a in unfinished_attempts(locks_dir(ws), "down")] == ["down/a.csv"]


def test_a_long_error_in_the_nightly_report_is_cut_with_a_note_not_mid_word_silently() -> None:
    # An unknown-key ConfigError (with its list of valid keys) ended mid-name in the report, with nothing saying so.
    from flows.nightly import REPORT_ERROR_LIMIT, _report_error

    short = "ConfigError: c.yaml: unknown key 'lossvall'"
    assert _report_error(short) == short
    long = "ConfigError: c.yaml: unknown key 'x'; valid keys: " + ", ".join(f"'key_{i}'" for i in range(200))
    cut = _report_error(long)
    assert len(cut) <= REPORT_ERROR_LIMIT and cut.startswith(long[:200])
    assert cut.endswith(f"[cut: {len(long)} characters in all; the whole error is in this night's Prefect log]")


def test_a_config_warning_is_in_the_log_of_each_nightly_and_arrival_run_that_loads_the_config(
        setup, monkeypatch, run_log: list[str]) -> None:
    # Seen by a reviewer: a config key its other choices leave unread was said on the served process's stderr only,
    # never in the run's log an operator reads (Prefect's UI), and not at all by a second run in the same process.
    import flows.arrival
    import flows.nightly
    from flows.arrival import arrival
    from flows.nightly import nightly

    def cleaning(config, **kw):  # noqa: ANN001, ANN003, ANN202
        return {"run_id": f"r-{config.dataset}", "rows": {"kept": 1, "quarantine": 0}}

    monkeypatch.setattr(flows.nightly, "run_cleaning", cleaning)
    monkeypatch.setattr(flows.arrival, "run_cleaning", cleaning)
    good = yaml.safe_load((setup["root"] / "good" / "config.yaml").read_text())
    unread = setup["root"] / "unread-key.yaml"
    unread.write_text(yaml.safe_dump({**good, "pruning": {"policy": "two_means", "fraction": 0.3}}))
    datasets = setup["root"] / "unread-key-datasets.yaml"
    datasets.write_text(yaml.safe_dump({"datasets": [{"name": "unread", "config": str(unread)}]}))
    (setup["landing"] / "unread").mkdir()
    landed = setup["landing"] / "unread" / "delivery.csv"
    shutil.copyfile(good["data"], landed)
    said = "'pruning.fraction' is set but has no effect: pruning.policy is two_means."
    ws = str(setup["ws"] / "unread-key")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for night in (1, 2):  # a long-lived process (tests, a caller of nightly()) runs the flow again
            run_log.clear()
            report = nightly(datasets_file=str(datasets), workspace=ws)
            assert [r["state"] for r in report["datasets"]] == ["Completed"]
            # once: the night's own check of every config at its start leaves it to the dataset's run
            assert [line for line in run_log if said in line] == [
                f"WARNING {unread}: {said} Remove it, or change that choice if you meant it to apply."], (night, run_log)
        for event in (1, 2):
            run_log.clear()
            arrival(path="unread/delivery.csv", datasets_file=str(datasets), landing_dir=str(setup["landing"]),
                    workspace=ws, force=True)
            assert len([line for line in run_log if said in line]) == 1, (event, run_log)
    assert not [w for w in caught if said in str(w.message)]  # in the runs' logs, not also on the process's stderr
