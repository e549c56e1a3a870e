"""Nothing is lost: killed runs, reruns, an unreachable MLflow, and what ``lossval verify`` says.

Two runs are killed with SIGKILL at a known point (the test-only ``LOSSVAL_TEST_PAUSE_AT`` hook of
:func:`lossval.io.pause_point`): once during valuation, once while ``values.parquet`` is being
written. Each is rerun and must complete with the same bytes as an undisturbed run, leaving no
folder that claims completion. The killed process talks to this session's Prefect test server,
so it does not spend 20 s starting its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lossval.cli import main
from lossval.manifest import MANIFEST_NAME, PARTIAL_SUFFIX, relocate
from tests.reliability._helpers import make_frame, tree_hashes, write_config

pytestmark = [pytest.mark.flow, pytest.mark.usefixtures("prefect_harness")]

ROOT = Path(__file__).resolve().parents[2]
COMPARED = ("train", "validation", "test", "values", "kept", "quarantine")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("faults-in")
    data = d / "data.csv"
    make_frame(160, seed=7).to_csv(data, index=False)
    return write_config(d / "config.yaml", data=str(data), dataset="faults")


@pytest.fixture(scope="module")
def reference(config: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An undisturbed run: its manifest, workspace and output bytes."""
    ws = tmp_path_factory.mktemp("faults-reference")
    assert main(["run", str(config), "--workspace", str(ws)]) == 0
    manifest = _only_manifest(ws)
    return {"workspace": ws, "manifest": manifest, "bytes": _output_bytes(manifest)}


def _run_folders(ws: Path) -> list[Path]:
    return sorted((ws / "runs").iterdir()) if (ws / "runs").exists() else []


def _only_manifest(ws: Path) -> dict:
    folders = _run_folders(ws)
    assert len(folders) == 1 and not folders[0].name.endswith(PARTIAL_SUFFIX), folders
    return json.loads((folders[0] / MANIFEST_NAME).read_text())


def _output_bytes(manifest: dict) -> dict[str, bytes]:
    return {name: Path(manifest["outputs"][name]).read_bytes() for name in COMPARED}


def _registry_versions(ws: Path, name: str = "lossval-faults") -> list[str]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{ws / 'mlflow.db'}")
    return sorted(str(v.version) for v in client.search_model_versions(f"name='{name}'"))


def _start_paused(config: Path, ws: Path, pause_at: str, marker: Path) -> subprocess.Popen:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "LOSSVAL_TEST_PAUSE_AT": pause_at,
           "LOSSVAL_TEST_PAUSE_MARKER": str(marker)}
    return subprocess.Popen([sys.executable, "-m", "lossval.cli", "run", str(config), "--workspace", str(ws)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def _wait_until_paused(proc: subprocess.Popen, marker: Path, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (exit {proc.returncode}) before the pause point:\n{err.decode()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("the run did not reach the pause point in time")
        time.sleep(0.2)


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _check_rerun_matches(ws: Path, config: Path, reference: dict, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["run", str(config), "--workspace", str(ws)]) == 0
    manifest = _only_manifest(ws)  # the killed run's .partial folder was swept: one folder, complete
    assert _output_bytes(manifest) == reference["bytes"]
    assert manifest["rows"] == reference["manifest"]["rows"]
    run_dir = _run_folders(ws)[0]
    capsys.readouterr()
    assert main(["verify", str(run_dir)]) == 0
    assert "every input row is accounted for" in capsys.readouterr().out
    assert _registry_versions(ws) == ["1"]
    return manifest


def test_sigkill_during_valuation_then_rerun_completes_identically(config: Path, reference: dict, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    ws, marker = tmp_path / "ws", tmp_path / "paused"
    inputs = tree_hashes(config.parent)
    proc = _start_paused(config, ws, "value", marker)
    _wait_until_paused(proc, marker)

    # Mid-run: one unfinished folder holding the splits, no manifest, nothing published.
    (partial,) = _run_folders(ws)
    assert partial.name.endswith(PARTIAL_SUFFIX)
    assert {"train.parquet", "validation.parquet", "test.parquet"} <= {p.name for p in partial.iterdir()}
    assert not list(ws.rglob(MANIFEST_NAME))
    assert not list((ws / "snapshots").rglob("*.parquet")) if (ws / "snapshots").exists() else True
    _kill(proc)

    assert main(["verify", str(partial)]) == 1  # a killed run never counts as complete
    assert "unfinished run" in capsys.readouterr().err
    _check_rerun_matches(ws, config, reference, capsys)
    assert not partial.exists()
    assert tree_hashes(config.parent) == inputs


def test_sigkill_while_writing_values_then_rerun_completes_identically(config: Path, reference: dict, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    ws, marker = tmp_path / "ws", tmp_path / "paused"
    proc = _start_paused(config, ws, "write:values.parquet", marker)
    _wait_until_paused(proc, marker)

    # The whole file is in a temporary sibling; the final name does not exist until the rename.
    (values_dir,) = (ws / "values").iterdir()
    assert not (values_dir / "values.parquet").exists()
    (tmp_file,) = values_dir.glob(".tmp-values.parquet~*")
    assert tmp_file.stat().st_size > 0
    _kill(proc)
    # Temp files whose writer cannot be checked (the naming before writers were recorded):
    # one abandoned two days ago, one from a minute ago that may still be in flight.
    abandoned, recent = values_dir / ".tmp-values.parquet-old1", values_dir / ".tmp-values.parquet-old2"
    for path in (abandoned, recent):
        path.write_bytes(b"x")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(abandoned, (two_days_ago, two_days_ago))

    manifest = _check_rerun_matches(ws, config, reference, capsys)
    assert Path(manifest["outputs"]["values"]) == values_dir / "values.parquet"
    # The killed write's temporary file and the abandoned one were swept; the recent one stays.
    assert list(ws.rglob(".tmp-*")) == [recent]


def test_sigkill_while_logging_to_mlflow_then_rerun_closes_the_run_left_running(
        config: Path, reference: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow import MlflowClient

    ws, marker = tmp_path / "ws", tmp_path / "paused"
    proc = _start_paused(config, ws, "track", marker)
    _wait_until_paused(proc, marker)
    _kill(proc)
    client = MlflowClient(tracking_uri=f"sqlite:///{ws / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    (left,) = client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'")
    assert left.data.tags["lossval_process"].startswith(f"{proc.pid}:")

    # The data outputs were complete before tracking began: that folder stays, its MLflow record pending.
    (killed_run,) = _run_folders(ws)
    assert json.loads((killed_run / MANIFEST_NAME).read_text())["mlflow"]["status"] == "pending"
    assert main(["run", str(config), "--workspace", str(ws)]) == 0
    assert _registry_versions(ws) == ["1"]
    closed = client.get_run(left.info.run_id)
    assert closed.info.status == "KILLED" and "lossval_abandoned" in closed.data.tags
    assert client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'") == []


def test_rerun_with_valuation_recomputed_is_byte_identical_and_registers_no_new_version(
        config: Path, reference: dict) -> None:
    ws = reference["workspace"]
    before = reference["manifest"]
    shutil.rmtree(ws / "values")  # no cached values: LossVal runs again, from scratch
    assert main(["run", str(config), "--workspace", str(ws)]) == 0
    runs = [p for p in _run_folders(ws) if p.name != before["run_id"]]
    after = json.loads((runs[0] / MANIFEST_NAME).read_text())
    assert Path(after["outputs"]["values"]).read_bytes() == reference["bytes"]["values"]
    assert after["model"] == {**before["model"], "reused": True, "previous_champion": before["model"]["version"]}
    assert _registry_versions(ws) == ["1"]


def test_prefect_results_in_the_workspace_are_json_only(reference: dict) -> None:
    records = list((reference["workspace"] / "prefect-results").iterdir())
    assert records  # the valuation cache
    for record in records:
        meta = json.loads(record.read_text())["metadata"]
        assert meta["serializer"]["type"] == "json", record


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # as outside pytest (libraries' import-time notices)
def test_unreachable_mlflow_fails_clearly_keeps_data_consistent_and_rerun_completes(
        config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], prefect_console, caplog, monkeypatch) -> None:
    import logging

    # A server that answered lossval run's start-up probe (flows.runner.check_tracking_server) and went away before
    # the track stage: what the track stage does then.
    monkeypatch.setattr("flows.runner.check_tracking_server", lambda *a, **k: None)

    ws = tmp_path / "ws"
    port = _closed_port()
    down = write_config(tmp_path / "down.yaml", **{**_raw(config), "tracking": {
        "uri": f"http://alice:s3cret-pw@127.0.0.1:{port}/", "experiment": "lossval-reliability"}})
    caplog.set_level(logging.DEBUG)
    t0 = time.monotonic()
    assert main(["run", str(down), "--workspace", str(ws)]) == 1
    assert time.monotonic() - t0 < 120  # no minutes of retries
    captured = capsys.readouterr()
    console = prefect_console.getvalue()  # DEBUG and up here (caplog lowered the root level)
    # What a terminal shows at the default level: our line, and Prefect's WARNING-and-up lines (none).
    shown = captured.err.splitlines() + re.findall(r"^.*\| (?:WARNING|ERROR|CRITICAL) .*$", console, flags=re.M)
    lines = [line for line in shown if line.strip()]
    assert len(lines) == 1 and "Traceback" not in captured.err, lines
    assert lines[0].startswith(f"lossval: error: MLflow tracking at http://alice:***@127.0.0.1:{port}/ is unreachable")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for text in (captured.err, captured.out, console, logged):
        assert "s3cret" not in text
    for f in ws.rglob("*"):
        if f.is_file():
            assert b"s3cret" not in f.read_bytes(), f

    # The data outputs are complete and verifiable; the manifest says tracking failed.
    manifest = _only_manifest(ws)
    assert manifest["mlflow"]["status"] == "failed" and manifest["model"] is None
    assert manifest["config"]["tracking"]["uri"] == f"http://alice:***@127.0.0.1:{port}/"
    run_dir = _run_folders(ws)[0]
    assert main(["verify", str(run_dir)]) == 0
    assert "MLflow tracking failed" in capsys.readouterr().out
    # A run stopped after registering, before its manifest said so (a reviewer's ENOSPC on the last write): verify
    # said "no model was registered from it" while the registry held one; it now says the outcome is unknown.
    pending = {**manifest, "mlflow": {**manifest["mlflow"], "status": "pending"}}
    (run_dir / MANIFEST_NAME).write_text(json.dumps(pending))
    assert main(["verify", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "MLflow outcome was not recorded" in out and f"lossval_run_id = '{manifest['run_id']}'" in out, out
    assert "no model was registered" not in out
    (run_dir / MANIFEST_NAME).write_text(json.dumps(manifest))

    # Tracking back (the workspace's sqlite store): the rerun completes and registers the model.
    assert main(["run", str(config), "--workspace", str(ws)]) == 0
    done = [json.loads((p / MANIFEST_NAME).read_text()) for p in _run_folders(ws)]
    assert sorted(m["mlflow"]["status"] for m in done) == ["failed", "ok"]
    assert _registry_versions(ws) == ["1"]


def test_a_copied_workspace_reads_its_own_cached_values(config: Path, reference: dict, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    copy = tmp_path / "copied-ws"
    shutil.copytree(reference["workspace"], copy)  # cp -a: the cache records name the original's files
    copied = {p.name for p in _run_folders(copy)}
    assert main(["run", str(config), "--workspace", str(copy)]) == 0
    # MLflow keeps absolute artifact paths: the copy's experiment still writes to the original. Said, once.
    moved = [r.getMessage() for r in caplog.records if "outside the workspace" in r.getMessage()]
    assert len(moved) == 1 and str(reference["workspace"] / "mlartifacts") in moved[0]
    [rerun] = [p for p in _run_folders(copy) if p.name not in copied]
    manifest = json.loads((rerun / MANIFEST_NAME).read_text())
    for name in ("values", "encoder"):
        assert Path(manifest["outputs"][name]).is_relative_to(copy), manifest["outputs"][name]
    assert Path(manifest["outputs"]["values"]).read_bytes() == reference["bytes"]["values"]  # reused, not revalued
    assert main(["verify", str(rerun)]) == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_gate_failure_is_reported_when_tracking_fails_too(config: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    # A server that answered lossval run's start-up probe (flows.runner.check_tracking_server) and went away before
    # the track stage: what the track stage does then.
    monkeypatch.setattr("flows.runner.check_tracking_server", lambda *a, **k: None)
    suite = tmp_path / "impossible.json"
    suite.write_text(json.dumps({"name": "impossible", "expectations": [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 10**9, "max_value": None}}]}))
    down = write_config(tmp_path / "down.yaml", **{**_raw(config), "gate": {"suite": str(suite)},
                                                    "tracking": {"uri": f"http://127.0.0.1:{_closed_port()}/"}})
    assert main(["run", str(down), "--workspace", str(tmp_path / "ws")]) == 1
    err = capsys.readouterr().err
    assert "is unreachable" in err and "The gate also refused promotion" in err
    assert "expect_table_row_count_to_be_between" in err


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_gate_failure_reported_with_a_tracking_failure_withholds_observed_values_when_private(
        config: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    # A server that answered lossval run's start-up probe (flows.runner.check_tracking_server) and went away before
    # the track stage: what the track stage does then.
    monkeypatch.setattr("flows.runner.check_tracking_server", lambda *a, **k: None)
    # That message is the flow run's state message too (Prefect's server keeps it): with log_quarantine off a value
    # a check observed in the rows is withheld there, as in MLflow; the run folder's gate.json has it.
    suite = tmp_path / "max.json"
    suite.write_text(json.dumps({"name": "max", "expectations": [
        {"type": "expect_column_max_to_be_between", "kwargs": {"column": "a", "max_value": -100}}]}))
    down = write_config(tmp_path / "down.yaml", **{**_raw(config), "gate": {"suite": str(suite)},
                                                    "tracking": {"uri": f"http://127.0.0.1:{_closed_port()}/",
                                                                 "log_quarantine": False}})
    ws = tmp_path / "ws"
    assert main(["run", str(down), "--workspace", str(ws)]) == 1
    err = capsys.readouterr().err
    manifest = _only_manifest(ws)
    [failure] = [f for f in manifest["gate"]["failures"] if f.startswith("expect_column_max_to_be_between")]
    observed = re.search(r"\(observed ([^)]*)\)", failure).group(1)  # as the run folder words it
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as prefect:
        state = prefect.read_flow_run(manifest["flow_run_id"]).state
    withheld = "observed value withheld: tracking.log_quarantine is false; the run folder's gate.json has it"
    for text in (err, state.message):
        assert "is unreachable" in text and "The gate also refused promotion" in text, text
    assert f"expect_column_max_to_be_between on column 'a' ({withheld})" in state.message, state.message
    assert f"observed {observed}" not in state.message, state.message
    # The user's own terminal is not Prefect's server: it says the full failure, as for a refusal alone (GateFailed).
    [line] = [line for line in err.splitlines() if line.startswith("lossval: error: ")]
    assert line.startswith("lossval: error: MLflow tracking at http://127.0.0.1:"), err
    assert " ".join(failure.split()) in line and f"observed {observed}" in line, err
    assert "withheld" not in err, err


def _raw(config: Path) -> dict:
    import yaml

    return yaml.safe_load(config.read_text())


# ---------------------------------------------------------------- lossval verify on damaged runs

def _copy_run(reference: dict, dst: Path) -> Path:
    src = Path(reference["manifest"]["outputs"]["kept"]).parent
    shutil.copytree(src, dst)
    manifest = json.loads((dst / MANIFEST_NAME).read_text())
    manifest["outputs"] = relocate(manifest["outputs"], src, dst)
    (dst / MANIFEST_NAME).write_text(json.dumps(manifest))
    return dst


def test_verify_accepts_a_copy_and_catches_lost_rows(reference: dict, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    run = _copy_run(reference, tmp_path / "run")
    assert main(["verify", str(run)]) == 0
    kept = pd.read_parquet(run / "kept.parquet")
    kept.iloc[1:].to_parquet(run / "kept.parquet", index=False)  # one kept row lost
    capsys.readouterr()
    assert main(["verify", str(run)]) == 1
    err = capsys.readouterr().err
    assert "1 lost" in err and repr(kept["row_id"].iloc[0]) in err and "train rows != kept + quarantine" in err
    assert "not in the snapshot" not in err  # only the count that is not zero
    (tmp_path / "data").mkdir()  # a folder that is no run folder at all is called that
    assert main(["verify", str(tmp_path / "data")]) == 1
    assert "not a run folder (no manifest.json)" in capsys.readouterr().err
    (run / MANIFEST_NAME).unlink()  # a run folder without its manifest: a run that did not complete
    assert main(["verify", str(run)]) == 1
    assert "no manifest.json: the run did not complete, or its manifest was deleted" in capsys.readouterr().err


def test_verify_checks_the_folder_it_is_given_and_catches_edited_files(reference: dict, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    src = Path(reference["manifest"]["outputs"]["kept"]).parent
    run = tmp_path / "backup" / "run"
    shutil.copytree(src, run)  # a plain copy: the manifest still names the original's files
    assert main(["verify", str(run)]) == 0
    (run / "kept.parquet").unlink()
    capsys.readouterr()
    assert main(["verify", str(run)]) == 1  # the copy is checked, not the intact original
    assert f"output 'kept' is missing: {run / 'kept.parquet'}" in capsys.readouterr().err
    shutil.copy(src / "kept.parquet", run / "kept.parquet")
    q = pd.read_parquet(run / "quarantine.parquet")
    q.assign(lossval_value=q["lossval_value"] + 1.0).to_parquet(run / "quarantine.parquet", index=False)  # same rows, edited values
    assert main(["verify", str(run)]) == 1
    err = capsys.readouterr().err
    assert "output 'quarantine' changed after the run wrote it (sha256 differs)" in err and "lost" not in err
    (run / "test.parquet").unlink()  # one output gone and another edited: both are reported at once
    assert main(["verify", str(run)]) == 1
    err = capsys.readouterr().err
    assert f"output 'test' is missing: {run / 'test.parquet'}" in err
    assert "output 'quarantine' changed after the run wrote it (sha256 differs)" in err


def test_verify_catches_shared_values_rewritten_after_the_run(reference: dict, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    # values/<key>/ is keyed by settings, not content: a later run that values again (a GPU's other float path, an
    # unreadable cached encoder) rewrites it, and the earlier run's figures no longer match the values on disk.
    import pandas as pd

    ws = tmp_path / "ws"
    shutil.copytree(reference["workspace"], ws)
    run = next((ws / "runs").iterdir())
    assert main(["verify", str(run)]) == 0
    values = next((ws / "values").glob("*/values.parquet"))
    v = pd.read_parquet(values)
    v.assign(value=v["value"][::-1].to_numpy()).to_parquet(values, index=False)
    assert main(["verify", str(run)]) == 1
    err = capsys.readouterr().err
    assert f"output 'values' changed after the run wrote it (sha256 differs): {values}" in err
    assert "a later run that valued again" in err and "lost" not in err


def test_verify_accepts_a_manifest_written_before_hashes_were_recorded(reference: dict, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    run = _copy_run(reference, tmp_path / "run")
    assert main(["verify", str(run)]) == 0
    out = capsys.readouterr().out
    assert "predates content hashes" not in out  # hashes recorded: contents were checked
    manifest = json.loads((run / MANIFEST_NAME).read_text())
    rows = manifest["rows"]
    counts = (f"{rows['snapshot']} snapshot rows = {rows['train']} train ({rows['kept']} kept + {rows['quarantine']} "
              f"quarantined) + {rows['validation']} validation + {rows['test']} test")
    assert out.splitlines()[0] == f"{run}: every input row is accounted for: {counts}; 12 files unchanged (sha256)"
    assert main(["verify", str(run / MANIFEST_NAME)]) == 0  # the manifest's path names its run
    assert capsys.readouterr().out.splitlines()[0].startswith(f"{run}: every input row is accounted for")
    workspace = tmp_path / "ws"
    (workspace / "runs").mkdir(parents=True)
    assert main(["verify", str(workspace)]) == 1
    assert capsys.readouterr().err == (f"lossval verify: {workspace} is a workspace, not a run folder; give one of its "
                                       "runs (it has no completed run)\n")
    shutil.copytree(run, workspace / "runs" / "r1")
    shutil.copytree(run, workspace / "runs" / "r2.partial")  # unfinished: never offered
    for where, what in ((workspace, "a workspace"), (workspace / "runs", "a folder of runs")):
        assert main(["verify", str(where)]) == 1
        assert capsys.readouterr().err == (f"lossval verify: {where} is {what}, not a run folder; give one of its runs, "
                                           f"e.g. {workspace / 'runs' / 'r1'} (the newest)\n")
    assert set(manifest["sha256"]) == {"train", "validation", "test", "kept", "quarantine", "decisions", "model_state",
                                       "metrics", "gate", "snapshot", "values", "encoder"}  # shared ones too
    del manifest["sha256"]
    (run / MANIFEST_NAME).write_text(json.dumps(manifest))
    kept = pd.read_parquet(run / "kept.parquet")
    kept.loc[0, "label"] = "yes" if kept.loc[0, "label"] == "no" else "no"  # same rows, one label flipped
    kept.to_parquet(run / "kept.parquet", index=False)
    assert main(["verify", str(run)]) == 0  # the rows still add up...
    out, err = capsys.readouterr()
    assert out.splitlines() == [  # ...and the output says that is all it could check
        f"{run}: every input row is accounted for: {counts}",
        "note: the manifest predates content hashes (it records no 'sha256'), so file contents were not checked, "
        "only rows"] and err == ""
    (run / "quarantine.parquet").unlink()
    assert main(["verify", str(run)]) == 1  # rows are still checked: a lost part fails


@pytest.mark.parametrize("damage", ["no-manifest", "corrupt-manifest", "truncated-output", "missing-output",
                                    "outputs-not-an-object"])
def test_verify_reports_damage_with_exit_1(reference: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           damage: str) -> None:
    run = _copy_run(reference, tmp_path / "run")
    if damage == "no-manifest":
        (run / MANIFEST_NAME).unlink()
    elif damage == "corrupt-manifest":
        (run / MANIFEST_NAME).write_text('{"outputs": {"kept": ')
    elif damage == "truncated-output":
        data = (run / "quarantine.parquet").read_bytes()
        (run / "quarantine.parquet").write_bytes(data[: len(data) // 2])
    elif damage == "outputs-not-an-object":
        manifest = json.loads((run / MANIFEST_NAME).read_text())
        (run / MANIFEST_NAME).write_text(json.dumps({**manifest, "outputs": None}))
    else:
        (run / "test.parquet").unlink()
    assert main(["verify", str(run)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("lossval verify: ")


def test_verify_checks_decisions_against_quarantine(reference: dict, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    run = _copy_run(reference, tmp_path / "run")
    manifest = json.loads((run / MANIFEST_NAME).read_text())
    del manifest["sha256"]  # contents unchecked: the rows alone must catch it
    (run / MANIFEST_NAME).write_text(json.dumps(manifest))
    decided = pd.read_parquet(run / "decisions.parquet")
    first = decided.index[decided["outcome"] == "quarantined"][0]
    decided.loc[first, "outcome"] = "kept"  # a quarantined row said to be kept
    decided.to_parquet(run / "decisions.parquet", index=False)
    assert main(["verify", str(run)]) == 1
    assert "decisions: its quarantined rows are not quarantine's" in capsys.readouterr().err
    decided.iloc[1:].to_parquet(run / "decisions.parquet", index=False)  # a row missing
    assert main(["verify", str(run)]) == 1
    assert f"decisions: train rows not listed: 1 (e.g. {decided['row_id'].iloc[0]!r})\n" in capsys.readouterr().err
    # One id replaced: it said "lists 341 rows, not the 341 train rows", which contradicts itself.
    decided.assign(row_id=["zzz", *decided["row_id"].iloc[1:]]).to_parquet(run / "decisions.parquet", index=False)
    assert main(["verify", str(run)]) == 1
    assert (f"decisions: train rows not listed: 1 (e.g. {decided['row_id'].iloc[0]!r}); listed ids that are no "
            "train row: 1 (e.g. 'zzz')\n") in capsys.readouterr().err


def test_verify_of_a_run_folder_without_its_workspace_says_what_is_missing_and_checks_the_rest(
        reference: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A run folder copied out, its workspace then deleted: "output 'encoder' is missing: <the old workspace>/values/..."
    # and nothing said why, or that the folder's own files were intact.
    import pandas as pd

    run = tmp_path / "kept" / "run"
    shutil.copytree(Path(reference["manifest"]["outputs"]["kept"]).parent, run)
    manifest = json.loads((run / MANIFEST_NAME).read_text())  # written in a workspace since deleted:
    manifest["outputs"] = relocate(manifest["outputs"], reference["workspace"], tmp_path / "deleted-workspace")
    (run / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert main(["verify", str(run)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert sorted(err[:3]) == [f"lossval verify: output '{name}' is missing: {manifest['outputs'][name]} "
                               "(shared in the workspace, outside the run folder)"
                               for name in ("encoder", "snapshot", "values")]
    assert err[3:] == [
        "lossval verify: the files above are shared in the workspace (its snapshots/ and values/ folders), outside the "
        "run folder, and verify needs them too: keep the run folder together with its workspace, or copy those files "
        "to where the manifest names them",
        "lossval verify: the run folder's own files check out: 9 files unchanged (sha256), no row in two parts, "
        "train = kept + quarantine; the snapshot's rows not compared"]
    kept = pd.read_parquet(run / "kept.parquet")
    kept.iloc[1:].to_parquet(run / "kept.parquet", index=False)  # and now one of its own files is damaged too
    assert main(["verify", str(run)]) == 1
    err = capsys.readouterr().err
    assert "train rows != kept + quarantine" in err and "output 'kept' changed after the run wrote it" in err
    assert "check out" not in err


def test_verify_reports_a_duplicate_within_one_file_once(reference: dict, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    run = _copy_run(reference, tmp_path / "run")
    kept = pd.read_parquet(run / "kept.parquet")
    pd.concat([kept, kept.iloc[:1]]).to_parquet(run / "kept.parquet", index=False)
    assert main(["verify", str(run)]) == 1
    err = capsys.readouterr().err
    assert f"kept: 1 duplicate row ids, e.g. {kept['row_id'].iloc[0]!r}" in err
    assert "in both kept and kept" not in err  # it said so, as if two parts shared the row


def test_verify_refuses_a_manifest_that_hashes_some_outputs_but_not_others(reference: dict, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # One sha256 entry deleted, then that file edited: verify passed ("11 files unchanged").
    import pandas as pd

    run = _copy_run(reference, tmp_path / "run")
    manifest = json.loads((run / MANIFEST_NAME).read_text())
    hashes = manifest.pop("sha256")
    q = pd.read_parquet(run / "quarantine.parquet")
    q.assign(lossval_value=q["lossval_value"] + 1.0).to_parquet(run / "quarantine.parquet", index=False)
    for dropped in (["quarantine"], ["values"]):  # a run folder file's hash, or one shared file's but not the others'
        (run / MANIFEST_NAME).write_text(json.dumps({**manifest, "sha256": {n: h for n, h in hashes.items()
                                                                           if n not in dropped}}))
        assert main(["verify", str(run)]) == 1
        err = capsys.readouterr().err
        assert f"{run / MANIFEST_NAME}: records no sha256 for {dropped[0]!r} but does for the other outputs" in err
    # Manifests of 2026-12-02 to 2026-12-06 hashed only the run folder's own files: still verified on those.
    shutil.copy(Path(reference["manifest"]["outputs"]["quarantine"]), run / "quarantine.parquet")
    own = {n: h for n, h in hashes.items() if n not in ("snapshot", "values", "encoder")}
    (run / MANIFEST_NAME).write_text(json.dumps({**manifest, "sha256": own}))
    assert main(["verify", str(run)]) == 0
    assert "9 files unchanged (sha256)" in capsys.readouterr().out


def test_verify_reports_an_output_replaced_by_a_folder_once(reference: dict, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    run = _copy_run(reference, tmp_path / "run")
    (run / "quarantine.parquet").unlink()
    (run / "quarantine.parquet").mkdir()
    assert main(["verify", str(run)]) == 1
    err = capsys.readouterr().err
    assert err.count("'quarantine' is unreadable") == 1, err


def test_verify_counts_validation_and_test_files_of_their_own_apart() -> None:
    from lossval.manifest import checked_counts

    manifest = {"rows": {"snapshot": 341, "train": 341, "kept": 300, "quarantine": 41, "validation": 113, "test": 115},
                "validation_from_data": False, "test_from_data": False,
                "outputs": {"kept": "k.parquet"}, "sha256": {"kept": "ab", "not_an_output": "cd"}}
    assert checked_counts(manifest) == ("341 snapshot rows = 341 train (300 kept + 41 quarantined); 113 validation rows "
                                        "from their own file; 115 test rows from their own file; 1 file unchanged "
                                        "(sha256)")  # only listed outputs' hashes are checked, so only they count
    assert checked_counts({**manifest, "test_from_data": True, "sha256": {}}).startswith(
        "341 snapshot rows = 341 train (300 kept + 41 quarantined) + 115 test; 113 validation rows from their own file")
    assert checked_counts({"rows": {}}) == ""
