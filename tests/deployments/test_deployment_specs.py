"""Deployment definitions and the `watch`/`serve` commands, without servers."""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lossval.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def datasets_file(tmp_path: Path) -> Path:
    (tmp_path / "landing").mkdir()
    (tmp_path / "loans.yaml").write_text(yaml.safe_dump({"data": "loans.csv", "target": "y"}))
    path = tmp_path / "datasets.yaml"
    path.write_text(yaml.safe_dump({"datasets": [{"name": "loans", "config": "loans.yaml"}]}))
    return path


def test_nightly_runs_on_cron_and_arrival_on_the_event(datasets_file: Path, tmp_path: Path) -> None:
    from deployments.serve import build_deployments

    nightly, arrival = build_deployments(datasets_file=datasets_file, landing_dir=tmp_path / "landing",
                                         workspace=tmp_path / "ws", cron="30 1 * * *", timezone="Europe/Berlin")
    assert nightly.full_name == "lossval-nightly/nightly" and nightly.entrypoint == "flows.nightly.nightly"
    [schedule] = nightly.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("30 1 * * *", "Europe/Berlin")
    assert nightly.parameters == {"datasets_file": str(datasets_file), "workspace": str(tmp_path / "ws")}
    assert arrival.full_name == "lossval-arrival/on-arrival" and arrival.entrypoint == "flows.arrival.arrival"
    assert arrival.schedules in (None, [])
    [trigger] = arrival.triggers
    assert trigger.expect == {"lossval.data.arrived"}
    assert trigger.match.model_dump() == {"prefect.resource.id": "lossval.dataset.*"}
    assert trigger.parameters == {"path": "{{ event.payload.path }}", "dataset": "{{ event.payload.dataset }}",
                                  "size": "{{ event.payload.size | default(None) }}", "mtime_ns": "{{ event.payload.mtime_ns | default(None) }}"}
    assert arrival.parameters["landing_dir"] == str(tmp_path / "landing")


def test_default_schedule_is_0200_utc_and_a_bad_cron_is_a_config_error(datasets_file: Path, tmp_path: Path) -> None:
    from deployments.serve import build_deployments
    from lossval.errors import ConfigError

    [nightly, _] = build_deployments(datasets_file=datasets_file, landing_dir=tmp_path, workspace=tmp_path)
    assert (nightly.schedules[0].schedule.cron, nightly.schedules[0].schedule.timezone) == ("0 2 * * *", "UTC")
    with pytest.raises(ConfigError, match="--cron"):
        build_deployments(datasets_file=datasets_file, landing_dir=tmp_path, workspace=tmp_path, cron="every night")
    with pytest.raises(ConfigError, match=r"--timezone 'Mars/Base' is not a time zone; give an IANA name"):
        build_deployments(datasets_file=datasets_file, landing_dir=tmp_path, workspace=tmp_path, timezone="Mars/Base")
    # Python's ZoneInfo opens 'right/UTC' and 'posixrules' (files of the system's zone folder), Prefect's schedule
    # refuses them: that was "--cron '0 2 * * *' / --timezone 'right/UTC' is not a valid schedule: For further
    # information visit https://errors.pydantic.dev/...; give five fields", for a cron of five good fields.
    for zone in ("right/UTC", "posixrules"):
        with pytest.raises(ConfigError, match=rf"^--timezone '{zone}' is not a time zone; give an IANA name") as bad:
            build_deployments(datasets_file=datasets_file, landing_dir=tmp_path, workspace=tmp_path, timezone=zone)
        assert "--cron" not in str(bad.value) and "pydantic" not in str(bad.value), bad.value
    with pytest.raises(ConfigError, match=r"^--cron '61 2 \* \* \*' is not a valid schedule: .*61 2.*; give five "
                                          r"fields \(minute hour day month weekday\)") as bad:
        build_deployments(datasets_file=datasets_file, landing_dir=tmp_path, workspace=tmp_path, cron="61 2 * * *",
                          timezone="Europe/Berlin")  # a good time zone is not blamed for the cron
    assert "--timezone" not in str(bad.value) and "pydantic" not in str(bad.value), bad.value


def test_prefect_yaml_declares_the_same_deployments_as_serve() -> None:
    from deployments.serve import DEFAULT_CRON, arrival_trigger

    spec = yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text())
    by_name = {d["name"]: d for d in spec["deployments"]}
    assert set(by_name) == {"nightly", "on-arrival", "gpu"}
    flows = {}
    for name, d in by_name.items():
        module, attr = d["entrypoint"].rsplit(".", 1)
        flows[name] = getattr(importlib.import_module(module), attr).name
    assert flows == {"nightly": "lossval-nightly", "on-arrival": "lossval-arrival", "gpu": "lossval-value"}
    assert by_name["nightly"]["schedules"] == [{"cron": DEFAULT_CRON, "timezone": "UTC", "active": True}]
    [trigger] = by_name["on-arrival"]["triggers"]
    code = arrival_trigger()
    assert set(trigger["expect"]) == code.expect and trigger["parameters"] == code.parameters
    assert trigger["match"] == code.match.model_dump()
    assert by_name["gpu"]["work_pool"]["name"] == "gpu"


def test_config_round_trips_for_the_valuation_deployment(tmp_path: Path) -> None:
    from flows.value_remote import config_to_raw
    from lossval.config import config_from_dict

    config = config_from_dict({
        "data": "d.csv", "target": "y", "id_column": "id", "features": {"exclude": ["t"], "categorical": ["zip"]},
        "validation": {"strategy": "file", "path": "v.csv"}, "test_path": "t.csv", "lossval": {"epochs": 3, "blur": "auto"},
        "pruning": {"policy": "mixture"}, "tracking": {"experiment": "e"}, "valuation_deployment": "lossval-value/gpu",
    }, base_dir=tmp_path)
    back = config_from_dict(config_to_raw(config))
    assert back.to_dict() == {**config.to_dict(), "valuation_deployment": None}
    assert "compare_with_champion" not in config_to_raw(config)["gate"]  # at its default: an older worker takes it
    assert "numeric" not in config_to_raw(config)["features"]  # unset: a worker without the option takes it
    assert config_to_raw(dataclasses.replace(config, lossval={"epochs": 3, "clip_outliers": True}))["lossval"] == {
        "epochs": 3}  # a VALUES_VERSION 6 option at its default: not sent
    assert config_to_raw(dataclasses.replace(config, lossval={"average_duplicates": False}))["lossval"] == {
        "average_duplicates": False}
    declared = dataclasses.replace(config, numeric=("income",))
    assert config_from_dict(config_to_raw(declared)).numeric == ("income",)
    # The rows a reviewer put back stay with the calling flow: the worker may not hold the file (its config would
    # read it) and an older worker refuses the key.
    reviewed = dataclasses.replace(config, pruning=dataclasses.replace(config.pruning, keep_ids="/nowhere/keep.csv"))
    assert "keep_ids" not in config_to_raw(reviewed)["pruning"]
    assert config_from_dict(config_to_raw(reviewed)).pruning.keep_ids is None
    # Likewise the gate's suite: a file the caller holds, read at load by the worker's config, which never gates.
    suite = tmp_path / "my_suite.json"
    suite.write_text('{"expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "y"}}]}')
    gated = config_from_dict({"data": "d.csv", "target": "y", "gate": {"suite": "my_suite.json"}}, base_dir=tmp_path)
    suite.unlink()  # as on a worker machine that does not hold the caller's files
    assert "suite" not in config_to_raw(gated)["gate"]
    assert config_from_dict(config_to_raw(gated)).gate.suite is None


def test_serve_refuses_a_bad_datasets_file_before_starting(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "datasets.yaml"
    bad.write_text("datasets: [{name: x}]\n")
    (tmp_path / "landing").mkdir()
    assert main(["serve", "--datasets", str(bad), "--landing", str(tmp_path / "landing")]) == 2
    err = capsys.readouterr().err
    assert "'config'" in err and "Traceback" not in err


def test_serve_names_every_bad_entry_of_the_datasets_file_at_once(datasets_file: Path, tmp_path: Path, capsys) -> None:
    datasets_file.write_text(yaml.safe_dump({"datasets": [{"name": "loans", "config": "loans.yaml", "cron": "x"},
                                                          {"name": "cards", "config": "cards.yaml"}]}))
    assert main(["serve", "--datasets", str(datasets_file), "--landing", str(tmp_path / "landing")]) == 2
    err = capsys.readouterr().err
    # alone, the datasets file's own list; among other problems (no PREFECT_API_URL), items of serve's list
    assert re.search(r"\(1\) (\S+datasets\.yaml: )?loans: datasets\[0\]: unknown key\(s\) \['cron'\]", err), err
    cards = re.escape(f"cards: {tmp_path / 'cards.yaml'}: config file not found")
    assert re.search(rf"\(2\) (\S+datasets\.yaml: )?{cards}", err) and "Traceback" not in err, err


def test_serve_refuses_a_workspace_it_could_not_write_before_starting(tmp_path: Path, capsys) -> None:
    (tmp_path / "landing").mkdir()
    (tmp_path / "afile").write_text("x")
    example = Path(__file__).resolve().parents[2] / "deployments" / "datasets.example.yaml"
    assert main(["serve", "--datasets", str(example), "--landing", str(tmp_path / "landing"),
                 "--workspace", str(tmp_path / "afile" / "ws")]) == 2
    assert f"--workspace: {tmp_path / 'afile'} is a file, not a folder" in capsys.readouterr().err


@pytest.mark.parametrize(("options", "says"), [
    (["--timezone", "Mars/Base"], ["--timezone 'Mars/Base' is not a time zone; give an IANA name"]),
    (["--cron", "every night"], ["--cron 'every night' is not a valid schedule"]),
    (["--timezone", "Mars/Base", "--cron", "61 2 * * *", "--limit", "0"],
     ["--timezone 'Mars/Base' is not a time zone", "--cron '61 2 * * *' is not a valid schedule",
      "--limit must be at least 1 flow run at once, got 0"]),
])
def test_serve_names_every_bad_option_together_with_a_missing_api_url(options, says, datasets_file: Path,
                                                                      tmp_path: Path, monkeypatch, capsys) -> None:
    # Seen by a reviewer: with PREFECT_API_URL unset only the URL was said; a bad --timezone or --cron came a run later
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert main(["serve", "--datasets", str(datasets_file), "--landing", str(tmp_path / "landing"),
                     "--workspace", str(tmp_path / "ws"), *options]) == 2
    err = capsys.readouterr().err
    assert "`lossval serve` cannot start; fix each of these, then start it again: (1) " in err, err
    assert all(text in err for text in says) and ") PREFECT_API_URL is not set: start a server" in err, err
    assert "Traceback" not in err and not (tmp_path / "ws").exists()
    assert all(item.endswith(".") for item in re.split(r" \(\d\) ", err.strip())[1:]), err  # each a sentence


def test_serve_numbers_each_bad_entry_and_each_bad_option_once_among_its_problems(datasets_file: Path, tmp_path: Path,
                                                                                   monkeypatch, capsys) -> None:
    # Seen by a reviewer: the datasets file's own "(1) ... (2)" list sat inside serve's, and a bad --cron was joined to
    # a bad --timezone by "Also:": "(1) ...: (1) loans ... (2) cards ... (2) --timezone ... Also: --cron ... (3) ...".
    from prefect.settings import PREFECT_API_URL, temporary_settings

    datasets_file.write_text(yaml.safe_dump({"datasets": [{"name": "loans", "config": "loans.yaml", "cron": "x"},
                                                          {"name": "cards", "config": "cards.yaml"}]}))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert main(["serve", "--datasets", str(datasets_file), "--landing", str(tmp_path / "landing"),
                     "--workspace", str(tmp_path / "ws"), "--timezone", "Mars/Base", "--cron", "61 2 * * *"]) == 2
    err = capsys.readouterr().err
    items = re.split(r" \((\d+)\) ", err.split("fix each of these, then start it again:", 1)[1])
    assert items[1::2] == ["1", "2", "3", "4", "5"], err
    assert [text.split(":", 2)[1:] if text.startswith(str(datasets_file)) else text[:25] for text in items[2::2]] == [
        [" loans", " datasets[0]: unknown key(s) ['cron']; valid keys are ['config', 'landing', 'name']."],
        [" cards", f" {tmp_path / 'cards.yaml'}: config file not found."],
        "--timezone 'Mars/Base' is", "--cron '61 2 * * *' is no", "PREFECT_API_URL is not se"], err
    assert "entries cannot be used" not in err and "Also:" not in err and "Traceback" not in err


def test_serve_numbers_a_bad_timezone_and_a_bad_cron_when_nothing_else_is_wrong(datasets_file: Path, tmp_path: Path,
                                                                                   monkeypatch, capsys) -> None:
    # The README promises one numbered list with each of them an item; alone they were "... Also: ...".
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):  # well formed; not contacted
        assert main(["serve", "--datasets", str(datasets_file), "--landing", str(tmp_path / "landing"),
                     "--workspace", str(tmp_path / "ws"), "--timezone", "Mars/Base", "--cron", "61 2 * * *"]) == 2
    err = capsys.readouterr().err
    assert "`lossval serve` cannot start; fix each of these, then start it again: (1) " in err, err
    items = re.split(r" \((\d+)\) ", err.split("fix each of these, then start it again:", 1)[1])
    assert items[1::2] == ["1", "2"] and [text[:25] for text in items[2::2]] == [
        "--timezone 'Mars/Base' is", "--cron '61 2 * * *' is no"], err
    assert "Also:" not in err and "Traceback" not in err and not (tmp_path / "ws").exists()


def test_watch_refuses_a_missing_folder_and_a_missing_api_url(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "home")  # no profile with an API URL
    missing = subprocess.run([sys.executable, "-m", "lossval.cli", "watch", str(tmp_path / "none")], env=env,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "landing folder not found" in missing.stderr
    (tmp_path / "landing").mkdir()
    no_api = subprocess.run([sys.executable, "-m", "lossval.cli", "watch", str(tmp_path / "landing")], env=env,
                            capture_output=True, text=True, timeout=60)
    assert no_api.returncode == 2 and "PREFECT_API_URL is not set" in no_api.stderr and "Traceback" not in no_api.stderr
    assert not list(tmp_path.glob(".landing*"))  # refused before the state file's lock was made beside the folder


def test_serve_warns_at_start_about_data_the_nightly_run_could_not_read(datasets_file: Path, tmp_path: Path,
                                                                        capsys) -> None:
    from deployments.serve import _warn_missing_data
    from flows.nightly import locks_dir
    from lossval.catalog import load_catalog_configs
    from lossval.landing import record_arrival

    configs = load_catalog_configs(datasets_file)
    ws = tmp_path / "ws"
    _warn_missing_data(configs, ws)  # nothing landed yet: the config's data, which does not exist
    err = capsys.readouterr().err
    assert f"dataset loans: its config's 'data' cannot be read: {tmp_path / 'loans.csv'}: no such file" in err
    assert "until that is fixed or a file lands in the landing folder's loans/" in err

    (tmp_path / "loans.csv").write_text("x,y\n1,0\n")
    _warn_missing_data(configs, ws)
    assert capsys.readouterr().err == ""

    # Once a file has landed, the nightly run cleans that file instead: its absence is what matters.
    record_arrival(locks_dir(ws), "loans", relative="loans/a.csv", path=str(tmp_path / "landing" / "a.csv"),
                   mtime_ns=1, size=1, run_id="r1")
    _warn_missing_data(configs, ws)
    assert f"its newest landed file cannot be read: {tmp_path / 'landing' / 'a.csv'}: no such file" in \
        capsys.readouterr().err



def test_serve_sets_aside_the_configs_test_folder_in_the_data_folder(tmp_path: Path, capsys) -> None:
    # As the run reads it: the config's test folder inside the data folder is not data; another such folder is refused.
    from deployments.serve import _warn_missing_data
    from lossval.catalog import load_catalog_configs

    (tmp_path / "exports" / "holdout.parquet").mkdir(parents=True)
    (tmp_path / "exports" / "a.csv").write_text("x,y\n1,0\n")
    (tmp_path / "loans.yaml").write_text(yaml.safe_dump({"data": "exports", "target": "y",
                                                         "test_path": "exports/holdout.parquet"}))
    (tmp_path / "datasets.yaml").write_text(yaml.safe_dump({"datasets": [{"name": "loans", "config": "loans.yaml"}]}))
    configs = load_catalog_configs(tmp_path / "datasets.yaml")
    _warn_missing_data(configs, tmp_path / "ws")
    assert capsys.readouterr().err == ""
    (tmp_path / "exports" / "b.parquet").mkdir()
    _warn_missing_data(configs, tmp_path / "ws")
    assert "its config's 'data' cannot be read: " in (err := capsys.readouterr().err)
    assert "1 folder named like a data file ('b.parquet') is in the data folder" in err


def test_serve_warns_at_start_about_a_tracking_server_that_does_not_answer(datasets_file: Path, tmp_path: Path,
                                                                           capsys) -> None:
    # Each nightly or new-data run refuses a tracking server that does not answer, at its start; serve said nothing,
    # so the first word of a mistyped tracking.uri came at 02:00. One probe per server, naming its datasets.
    import socket

    from deployments.serve import _warn_unreachable_tracking
    from lossval.catalog import load_catalog_configs

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    uri = f"http://127.0.0.1:{closed}"
    for name in ("loans", "cards"):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({"data": f"{name}.csv", "target": "y",
                                                               "tracking": {"uri": uri}}))
    (tmp_path / "local.yaml").write_text(yaml.safe_dump({"data": "local.csv", "target": "y"}))
    datasets_file.write_text(yaml.safe_dump({"datasets": [{"name": n, "config": f"{n}.yaml"}
                                                          for n in ("loans", "cards", "local")]}))
    _warn_unreachable_tracking(load_catalog_configs(datasets_file))
    err = capsys.readouterr().err
    assert err.count("lossval serve: warning:") == 1, err
    assert f"warning: datasets loans, cards: tracking.uri {uri}: no MLflow server could be reached" in err, err
    assert err.rstrip().endswith("Their nightly and new-data runs fail at their start until it answers."), err
    assert "local" not in err and "Nothing was run" not in err


def test_serve_loads_each_datasets_config_once_at_start(datasets_file: Path, tmp_path: Path, monkeypatch,
                                                        capsys) -> None:
    # Seen by a reviewer: serve loaded each config four times at start (the datasets-file check, then the valuation
    # deployment, missing data and tracking warnings each loaded it again).
    from prefect.settings import PREFECT_API_URL, temporary_settings

    import deployments.serve as serve
    import lossval.catalog

    (tmp_path / "cards.yaml").write_text(yaml.safe_dump({"data": "cards.csv", "target": "y"}))
    datasets_file.write_text(yaml.safe_dump({"datasets": [{"name": "loans", "config": "loans.yaml"},
                                                          {"name": "cards", "config": "cards.yaml"}]}))
    loads: list[str] = []
    real_load = lossval.catalog.load_config
    monkeypatch.setattr(lossval.catalog, "load_config", lambda path: loads.append(Path(path).name) or real_load(path))
    monkeypatch.setattr(serve, "_registered_deployments", lambda: dict.fromkeys(
        (serve.NIGHTLY_DEPLOYMENT, serve.ARRIVAL_DEPLOYMENT)))  # registered nowhere yet; no server asked
    served: list[list[str]] = []
    monkeypatch.setattr(serve, "_serve", lambda deployments, limit: served.append(
        [f"{d.flow_name}/{d.name}" for d in deployments]) or 0)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):  # well formed; not contacted
        assert main(["serve", "--datasets", str(datasets_file), "--landing", str(tmp_path / "landing"),
                     "--workspace", str(tmp_path / "ws")]) == 0
    assert sorted(loads) == ["cards.yaml", "loans.yaml"]
    assert served == [[serve.NIGHTLY_DEPLOYMENT, serve.ARRIVAL_DEPLOYMENT]]
    err = capsys.readouterr().err  # the warnings still come from the configs: neither dataset's data exists
    assert f"dataset loans: its config's 'data' cannot be read: {tmp_path / 'loans.csv'}" in err, err
    assert f"dataset cards: its config's 'data' cannot be read: {tmp_path / 'cards.csv'}" in err, err


def test_only_runs_stopped_with_serve_are_queued_again() -> None:
    from prefect.states import Cancelled, Completed, Crashed, Failed

    from deployments.serve import _stopped_with_serve

    assert _stopped_with_serve(Cancelled(message="Runner is shutting down."))  # the stopping runner cancelled it
    assert _stopped_with_serve(Crashed(message="Process exited with status code: -2. Process exited with an "
                                               "unexpected status code."))  # the same Ctrl-C killed it first
    assert _stopped_with_serve(Crashed(message="Process exited with status code: -15."))
    assert not _stopped_with_serve(Cancelled(message="Cancelled by a user in the UI"))  # meant
    assert not _stopped_with_serve(Crashed(message="Process exited with status code: -9."))  # OOM killer: would recur
    assert not _stopped_with_serve(Crashed(message="Process exited with status code: -23."))
    assert not _stopped_with_serve(Failed(message="bad input")) and not _stopped_with_serve(Completed())
    assert not _stopped_with_serve(None)
    from deployments.serve import STOPPED_AT_ONCE_MESSAGE

    assert _stopped_with_serve(Crashed(message=STOPPED_AT_ONCE_MESSAGE))  # a second Ctrl-C: marked by serve itself
    assert not _stopped_with_serve(Failed(message=STOPPED_AT_ONCE_MESSAGE))


def test_stopping_at_once_marks_the_served_runs_in_flight_crashed_and_never_hangs(monkeypatch) -> None:
    # Seen by a review: a second Ctrl-C left the run in flight RUNNING on the server with no process left, and the
    # next serve did not queue its file again (only Cancelled or Crashed runs are).
    import threading
    import types
    import uuid

    import prefect

    from deployments.serve import STOPPED_AT_ONCE_MESSAGE, _crash_runs_in_flight

    calls: list = []
    hang = threading.Event()

    class Client:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read_deployment_by_name(self, name):
            if name == "slow/server":
                hang.wait(30)
            if name == "gone/deployment":
                raise RuntimeError("404")
            return types.SimpleNamespace(id=uuid.uuid5(uuid.NAMESPACE_URL, name))

        def read_flow_runs(self, *, flow_run_filter, **_):
            calls.append(("filter", [str(i) for i in flow_run_filter.deployment_id.any_],
                          sorted(t.value for t in flow_run_filter.state.type.any_)))
            return [types.SimpleNamespace(id="r1"), types.SimpleNamespace(id="r2")]

        def set_flow_run_state(self, run_id, state, force=False):
            calls.append((run_id, state.type.value, state.message, force))

        def pause_deployment(self, deployment_id):
            calls.append(("pause", str(deployment_id)))

    monkeypatch.setattr(prefect, "get_client", lambda **_: Client())
    assert _crash_runs_in_flight(["lossval-arrival/on-arrival", "lossval-nightly/nightly"]) == 2
    assert calls == [("filter", [str(uuid.uuid5(uuid.NAMESPACE_URL, n)) for n in ("lossval-arrival/on-arrival",
                                                                                "lossval-nightly/nightly")],
                      ["PENDING", "RUNNING"]),
                     ("r1", "CRASHED", STOPPED_AT_ONCE_MESSAGE, True), ("r2", "CRASHED", STOPPED_AT_ONCE_MESSAGE, True),
                     # paused as a stop that finishes leaves them: else the next serve was refused for 30 s
                     *[("pause", str(uuid.uuid5(uuid.NAMESPACE_URL, n))) for n in ("lossval-arrival/on-arrival",
                                                                                    "lossval-nightly/nightly")]]
    assert _crash_runs_in_flight(["gone/deployment"]) is None  # refused: reported as nothing marked
    import time

    started = time.monotonic()
    assert _crash_runs_in_flight(["slow/server"], timeout_s=0.2) is None
    assert time.monotonic() - started < 5  # a server that does not answer does not hold up "stop at once"
    hang.set()


@pytest.mark.parametrize("payload, expected", [
    ({"path": "loans/a.csv", "dataset": "loans", "size": 120, "mtime_ns": 1_700_000_000_123_456_789},
     {"size": 120, "mtime_ns": 1_700_000_000_123_456_789}),
    ({"path": "loans/a.csv", "dataset": "loans"}, {"size": None, "mtime_ns": None}),  # a watcher from before mtime_ns
])
def test_the_trigger_parameters_render_with_and_without_the_optional_fields(payload: dict, expected: dict) -> None:
    """Rendered the way Prefect's server renders a run-deployment action: a field the event lacks must not
    make the action fail (a bare ``{{ event.payload.x }}`` does: no run at all for older watchers' events)."""
    import copy

    from prefect.server.events.actions import RunDeployment
    from prefect.utilities.schema_tools.hydration import HydrationContext, hydrate

    from deployments.serve import arrival_trigger

    parameters = copy.deepcopy(arrival_trigger().parameters)
    RunDeployment._upgrade_v1_templates(parameters)
    rendered = hydrate(parameters, HydrationContext(raise_on_error=True, render_jinja=True,
                                                    jinja_context={"event": {"payload": payload}}))
    assert rendered == {"path": "loans/a.csv", "dataset": "loans", **expected}


@pytest.fixture()
def api_url(monkeypatch):
    """Set PREFECT_API_URL for this test: Prefect reads its settings once, so the environment alone is not enough."""
    import contextlib

    from prefect.settings import PREFECT_API_URL, temporary_settings

    with contextlib.ExitStack() as stack:
        def set_url(url: str) -> None:
            monkeypatch.setenv("PREFECT_API_URL", url)
            stack.enter_context(temporary_settings(updates={PREFECT_API_URL: url}))

        yield set_url


@pytest.fixture()
def landing_logger_kept():
    """``lossval watch`` sends the ``lossval.landing`` logger to stderr only: undone after a test that got that far."""
    import logging

    logger = logging.getLogger("lossval.landing")
    handlers, propagate = list(logger.handlers), logger.propagate
    yield
    logger.handlers[:], logger.propagate = handlers, propagate


@pytest.mark.parametrize("option, value", [
    ("--settle", "nan"), ("--settle", "inf"), ("--settle", "-1"),
    ("--interval", "nan"), ("--interval", "inf"), ("--interval", "0"), ("--interval", "-2"),
])
def test_watch_refuses_a_nan_infinite_or_negative_time_before_writing_anything(
        option: str, value: str, tmp_path: Path, api_url, capsys, landing_logger_kept) -> None:
    api_url("http://127.0.0.1:9/api")  # nothing listens there: no server is reached, with or without the check
    (tmp_path / "landing").mkdir()
    state = tmp_path / "state" / "watch.json"
    assert main(["watch", str(tmp_path / "landing"), "--state-file", str(state), option, value]) == 2
    err = capsys.readouterr().err
    assert f"{option} must be a finite number of seconds" in err and "Traceback" not in err
    assert not (tmp_path / "state").exists()  # no lock beside the state file: refused before the scanner


def test_watch_refuses_a_state_file_that_is_a_folder_before_writing_anything(tmp_path: Path, api_url, capsys,
                                                                             landing_logger_kept) -> None:
    api_url("http://127.0.0.1:9/api")
    (tmp_path / "landing").mkdir()
    (tmp_path / "states").mkdir()
    assert main(["watch", str(tmp_path / "landing"), "--state-file", str(tmp_path / "states")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'states'}: the watch state file is a folder; give --state-file the path of a JSON file" in err
    assert not (tmp_path / "states.lock").exists()  # a lock beside the folder was left before


@pytest.mark.parametrize("api, accepted", [
    ("http://127.0.0.1:4200/api", True), ("http://127.0.0.1:4200/api/", True), ("https://prefect.example/x/api", True),
    ("https://api.prefect.cloud/api/accounts/0ff44498-d380-4d7b-bd68-9b52da03823f/workspaces/"
     "c7c3c4f5-2d2c-4f4c-9c1e-1b1f0a5e3c11", True),
    ("http://127.0.0.1:4200", False), ("http://127.0.0.1:4200/", False), ("http://127.0.0.1:4200/apis", False),
    ("http://127.0.0.1:4200/api/flows", False), ("https://api.prefect.cloud/accounts/a/workspaces/w", False),
])
def test_an_api_url_must_end_in_api_or_be_a_cloud_workspace(api: str, accepted: bool) -> None:
    from deployments.watch import check_api_url
    from lossval.errors import InputError

    if accepted:
        check_api_url(api)
    else:
        with pytest.raises(InputError, match="its path must end in /api, e.g. export PREFECT_API_URL="):
            check_api_url(api)


def test_watch_and_serve_refuse_an_api_url_without_api_before_connecting(datasets_file: Path, tmp_path: Path,
                                                                        api_url, capsys,
                                                                        landing_logger_kept) -> None:
    """Without /api the first request failed (serve: HTTP 404; watch: a refused WebSocket): exit 1, "a bug"."""
    api_url("http://127.0.0.1:9")
    hint = ("PREFECT_API_URL=http://127.0.0.1:9 is not the API of a Prefect server: its path must end in /api, "
            "e.g. export PREFECT_API_URL=http://127.0.0.1:9/api")
    state = tmp_path / "state" / "watch.json"
    assert main(["watch", str(tmp_path / "landing"), "--state-file", str(state)]) == 2
    err = capsys.readouterr().err
    assert hint in err and "a bug" not in err
    assert not (tmp_path / "state").exists()
    assert main(["serve", "--datasets", str(datasets_file), "--landing", str(tmp_path / "landing"),
                 "--workspace", str(tmp_path / "ws")]) == 2
    err = capsys.readouterr().err
    assert hint in err and "a bug" not in err
    assert not (tmp_path / "ws").exists()


def test_watch_and_serve_refuse_a_cloud_url_without_an_api_key(datasets_file: Path, tmp_path: Path, api_url,
                                                              monkeypatch, capsys, landing_logger_kept) -> None:
    """The events client raised a bare ValueError ("api_url and api_key must be provided"): exit 1, "a bug"."""
    from prefect.settings import PREFECT_API_KEY, temporary_settings

    monkeypatch.delenv("PREFECT_API_KEY", raising=False)
    cloud = "https://api.prefect.cloud/api/accounts/a1/workspaces/w1"
    api_url(cloud)
    with temporary_settings(updates={PREFECT_API_KEY: None}):
        assert main(["watch", str(tmp_path / "landing"), "--state-file", str(tmp_path / "st" / "w.json")]) == 2
        err = capsys.readouterr().err
        assert f"PREFECT_API_URL={cloud} is a Prefect Cloud workspace, but PREFECT_API_KEY is not set" in err
        assert "a bug" not in err and not (tmp_path / "st").exists()
        assert main(["serve", "--datasets", str(datasets_file), "--landing", str(tmp_path / "landing"),
                     "--workspace", str(tmp_path / "ws")]) == 2
        assert "PREFECT_API_KEY is not set" in capsys.readouterr().err and not (tmp_path / "ws").exists()


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_serve_refuses_a_limit_below_one_before_starting(limit: str, datasets_file: Path, tmp_path: Path,
                                                         api_url, capsys) -> None:
    # 0 served with no run ever starting; -1 failed in Prefect's runner once serving, reported as a bug
    api_url("http://127.0.0.1:9/api")  # nothing listens there: no server is reached, with or without the check
    assert main(["serve", "--datasets", str(datasets_file), "--landing", str(tmp_path / "landing"),
                 "--workspace", str(tmp_path / "ws"), "--limit", limit]) == 2
    err = capsys.readouterr().err
    assert f"--limit must be at least 1 flow run at once, got {limit}; leave it out for no limit" in err
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize(("option", "env", "says"), [
    (["--valuation-pool", "gpu/x"], {}, "--valuation-pool 'gpu/x' is not a work pool name Prefect takes"),
    (["--valuation-pool", " "], {}, "--valuation-pool ' ' is not a work pool name Prefect takes"),
    ([], {"LOSSVAL_VALUATION_TIMEOUT_S": "2h"}, "LOSSVAL_VALUATION_TIMEOUT_S='2h' is not a positive number of seconds"),
    ([], {"LOSSVAL_VALUATION_TIMEOUT_S": "-5"}, "LOSSVAL_VALUATION_TIMEOUT_S='-5' is not a positive number"),
])
def test_serve_refuses_a_bad_valuation_pool_or_timeout_before_starting(option, env, says, datasets_file: Path,
                                                                       tmp_path: Path, api_url, capsys,
                                                                       monkeypatch) -> None:
    # Seen by a reviewer: a pool name Prefect refuses was reported as a lossval bug (pydantic's ValidationError); '2h'
    # failed each remote valuation with a bare ValueError, and a negative timeout inside Prefect after the run began.
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    api_url("http://127.0.0.1:9/api")
    assert main(["serve", "--datasets", str(datasets_file), "--landing", str(tmp_path / "landing"),
                 "--workspace", str(tmp_path / "ws"), *option]) == 2
    assert says in capsys.readouterr().err and not (tmp_path / "ws").exists()


def test_the_valuation_timeout_is_read_from_the_environment(monkeypatch) -> None:
    from flows.value_remote import DEFAULT_TIMEOUT_S, valuation_timeout_s
    from lossval.errors import ConfigError

    monkeypatch.delenv("LOSSVAL_VALUATION_TIMEOUT_S", raising=False)
    assert valuation_timeout_s() == DEFAULT_TIMEOUT_S
    monkeypatch.setenv("LOSSVAL_VALUATION_TIMEOUT_S", "90")
    assert valuation_timeout_s() == 90.0
    for bad in ("nan", "inf", "0", "six hours"):
        monkeypatch.setenv("LOSSVAL_VALUATION_TIMEOUT_S", bad)
        with pytest.raises(ConfigError, match="LOSSVAL_VALUATION_TIMEOUT_S"):
            valuation_timeout_s()


def test_serve_warns_about_a_data_folder_only_when_it_holds_no_data_files(datasets_file: Path, tmp_path: Path,
                                                                           capsys) -> None:
    from deployments.serve import _warn_missing_data
    from lossval.catalog import load_catalog_configs

    (tmp_path / "loans.yaml").write_text(yaml.safe_dump({"data": "loans", "target": "y"}))
    (tmp_path / "loans").mkdir()  # a folder of data files is valid data (lossval.io.read_table reads them all)
    (tmp_path / "loans" / "part-1.csv").write_text("x,y\n1,0\n")
    _warn_missing_data(load_catalog_configs(datasets_file), tmp_path / "ws")
    assert capsys.readouterr().err == ""
    # ...but a folder with no data files in it would fail every night, as would a file of another kind.
    (tmp_path / "loans" / "part-1.csv").rename(tmp_path / "loans" / "part-1.txt")
    _warn_missing_data(load_catalog_configs(datasets_file), tmp_path / "ws")
    assert f"its config's 'data' cannot be read: {tmp_path / 'loans'}: directory holds no data files" in \
        capsys.readouterr().err


def test_a_restarted_serve_requeues_cancelled_files_with_its_own_workspace_and_datasets(monkeypatch, capsys) -> None:
    # Seen by a reviewer: `serve` restarted with --workspace ws2 queued the runs the last serve cancelled with the old
    # workspace and datasets file (its runs' own parameters): they cleaned into the old workspace and its lock.
    import types
    import uuid

    import prefect

    from deployments.serve import SHUTDOWN_CANCEL_MESSAGE, _resubmit_arrivals_cancelled_on_shutdown

    stopped = types.SimpleNamespace(is_cancelled=lambda: True, is_crashed=lambda: False,
                                    message=SHUTDOWN_CANCEL_MESSAGE)
    old = {"datasets_file": "/old/datasets.yaml", "landing_dir": "/landing", "workspace": "/old/ws"}
    runs = [types.SimpleNamespace(id=f"id-{i}", name=f"run-{i}", state=stopped, parameters={**old, **file})
            for i, file in enumerate([{"path": "loans/f.csv", "dataset": "loans", "size": 8, "mtime_ns": 5},
                                      {"path": "loans/g.csv", "dataset": "loans", "size": 9, "mtime_ns": 6,
                                       "landing_dir": "/elsewhere"}])]
    created: list[dict] = []

    class Client:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read_flow_runs(self, **_):
            return runs

        def create_flow_run_from_deployment(self, deployment_id, *, parameters, **_):
            created.append(parameters)

    monkeypatch.setattr(prefect, "get_client", lambda **_: Client())
    serving = {"datasets_file": "/new/datasets.yaml", "landing_dir": "/landing", "workspace": "/new/ws"}
    queued = _resubmit_arrivals_cancelled_on_shutdown(types.SimpleNamespace(id=uuid.uuid4()), serving=serving)
    assert queued == ["loans/f.csv"]
    assert created == [{**serving, "path": "loans/f.csv", "dataset": "loans", "size": 8, "mtime_ns": 5}]
    out = capsys.readouterr().out
    assert "loans/g.csv: its new-data run run-1 was cancelled when serve stopped, but it landed in /elsewhere" in out


def test_a_restarted_serve_repoints_new_data_runs_queued_while_none_served(monkeypatch, capsys) -> None:
    # Seen by a reviewer: Prefect's pause leaves the event trigger on, so a file that landed while serve was stopped got
    # a Scheduled run with the old serve's workspace; a serve restarted with another one ran it there.
    import types
    import uuid

    import prefect

    from deployments.serve import _repoint_queued_arrivals

    old = {"datasets_file": "/old/datasets.yaml", "landing_dir": "/landing", "workspace": "/old/ws"}
    serving = {"datasets_file": "/new/datasets.yaml", "landing_dir": "/landing", "workspace": "/new/ws"}
    runs = [types.SimpleNamespace(id=i, name=f"run-{i}", parameters={**base, **file}) for i, (base, file) in enumerate([
        (old, {"path": "loans/e.csv", "dataset": "loans", "size": 8, "mtime_ns": 5}),
        ({**old, "landing_dir": "/elsewhere"}, {"path": "loans/x.csv", "dataset": "loans"}),
        (serving, {"path": "loans/ok.csv", "dataset": "loans"}),  # already this serve's: untouched
    ])]
    updated: dict = {}

    class Client:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read_flow_runs(self, *, flow_run_filter, **_):
            assert [t.value for t in flow_run_filter.state.type.any_] == ["SCHEDULED"]
            return runs

        def update_flow_run(self, run_id, *, parameters):
            updated[run_id] = parameters

    monkeypatch.setattr(prefect, "get_client", lambda **_: Client())
    assert _repoint_queued_arrivals(types.SimpleNamespace(id=uuid.uuid4()), serving=serving) == ["loans/e.csv"]
    assert updated == {0: {**serving, "path": "loans/e.csv", "dataset": "loans", "size": 8, "mtime_ns": 5}}
    out = capsys.readouterr().out
    assert "loans/x.csv: its queued new-data run run-1 is for the landing folder /elsewhere" in out


def test_a_terminated_watch_does_not_claim_it_removed_outputs(tmp_path: Path, monkeypatch, capsys) -> None:
    # Seen by a review: SIGTERM to `lossval watch` printed "unfinished outputs removed", the text of the commands that
    # write runs; the watcher writes none.
    import deployments.watch
    from lossval.cli import _Terminated, main

    def stopped(args):
        raise _Terminated()

    monkeypatch.setattr(deployments.watch, "run", stopped)
    assert main(["watch", str(tmp_path)]) == 143
    assert capsys.readouterr().err.strip() == "lossval: terminated (SIGTERM)"


def test_serve_on_a_server_that_does_not_answer_leaves_no_workspace_behind(datasets_file: Path, tmp_path: Path,
                                                                           api_url, capsys) -> None:
    # Seen by a review: the workspace folder was made before the server was first asked, and stayed, empty.
    api_url("http://127.0.0.1:9/api")  # the discard port: nothing listens
    code = main(["serve", "--datasets", str(datasets_file), "--landing", str(tmp_path / "landing"),
                 "--workspace", str(tmp_path / "ws")])
    err = capsys.readouterr().err
    assert code == 1 and "127.0.0.1:9" in err and "a bug" not in err, err
    assert not (tmp_path / "ws").exists()


def _wait_forever() -> None:  # a flow run's process that waits (for its dataset's lock, say)
    import time

    time.sleep(120)


def test_stopping_at_once_ends_the_run_processes_so_serve_can_exit() -> None:
    # Seen in CI: after a second Ctrl-C, serve said it had stopped and was still running 60 s later: a flow run's
    # process is a multiprocessing child, which Python joins at exit, and it was waiting for its dataset's lock.
    import multiprocessing
    import types
    import uuid

    from prefect.runner._process_manager import ProcessHandle

    from deployments.serve import _end_run_processes

    child = multiprocessing.get_context("spawn").Process(target=_wait_forever)
    child.start()
    try:
        run_id = uuid.uuid4()
        manager = types.SimpleNamespace(flow_run_ids=lambda: {run_id}, get={run_id: ProcessHandle(child)}.get)
        assert _end_run_processes(types.SimpleNamespace(_process_manager=manager)) == 1
        child.join(10)
        # SIGKILL: with SIGTERM the run would set its own Crashed state over the one serve requeues by
        assert not child.is_alive() and child.exitcode == -9
        assert _end_run_processes(types.SimpleNamespace()) == 0  # another Prefect release: nothing to stop
    finally:
        if child.is_alive():
            child.kill()
