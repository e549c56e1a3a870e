"""The CLI's start-up work done while Prefect's temporary server comes up (flows.runner)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest


def test_the_temporary_server_starts_in_a_thread_and_the_caller_waits_for_it(monkeypatch) -> None:
    from flows import _server_guard as guard
    from flows import runner

    started: list[str] = []
    healthy = threading.Event()  # set by the test: no wall-clock bound on a busy machine

    class FakeServer:  # Prefect's SubprocessASGIServer (guarded): one per process, start() blocks until healthy
        def start(self) -> None:
            started.append(threading.current_thread().name)
            healthy.wait(30)
            started.append("up")

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setattr(guard, "GuardedServer", FakeServer)
    monkeypatch.setattr(guard, "launch_early", lambda: None)  # no real process here (tested below)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: None}):
        wait = runner._start_temporary_server()
        assert "up" not in started  # returned while the server is still starting: not started on this thread
        healthy.set()
        wait()
    assert started == ["lossval-prefect-server", "up"]  # in its own thread, and waited for

    stopped: list[bool] = []

    class BrokenServer:  # launched its process, then timed out
        def start(self) -> None:
            raise RuntimeError("Timed out while attempting to connect to ephemeral Prefect API server.")

        def stop(self) -> None:
            stopped.append(True)

    monkeypatch.setattr(guard, "GuardedServer", BrokenServer)
    with temporary_settings(updates={PREFECT_API_URL: None}):
        wait = runner._start_temporary_server()
        from lossval.errors import LossvalError

        with pytest.raises(LossvalError, match=r"Prefect's temporary server did not start \(Timed out.*raise "
                           r"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"):  # once: no second wait by the flow
            wait()
    assert stopped == [True]  # its process is stopped, not left for a retry to orphan

    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:1/api"}):  # a real server: nothing to start
        started.clear()
        monkeypatch.setattr(guard, "GuardedServer", FakeServer)
        runner._start_temporary_server()()
    assert started == []


class _FakeProcess:
    """Stands in for the server's ``Popen``: records how it was launched and whether it was stopped."""

    def __init__(self, args: list[str], **kwargs) -> None:
        self.args, self.kwargs, self.stopped = list(args), kwargs, False

    def poll(self):
        return 0 if self.stopped else None

    def terminate(self) -> None:
        self.stopped = True

    def wait(self, timeout=None) -> int:
        return 0


def test_an_early_server_process_is_adopted_only_when_prefect_would_run_the_same_command(monkeypatch) -> None:
    from flows import _server_guard as guard

    launched: list[_FakeProcess] = []

    def popen(args, **kwargs):
        launched.append(_FakeProcess(args, **kwargs))
        return launched[-1]

    monkeypatch.setattr(guard.subprocess, "Popen", popen)  # the guard's launches; Prefect's command is captured
    monkeypatch.setattr(guard, "_early", None)
    from prefect.server.api.server import SubprocessASGIServer

    # A flow test earlier in this process may have left Prefect's own server running (no early launch then).
    monkeypatch.setattr(SubprocessASGIServer, "_instances", {})
    cls = guard._guarded_server_class()

    port = guard.launch_early()
    assert port is not None and 8000 <= port < 9000 and len(launched) == 1
    early = launched[0]
    assert early.args[1:4] == ["-m", "flows._server_guard", str(__import__("os").getpid())]
    assert early.kwargs["start_new_session"] is True
    assert guard.launch_early() is None and len(launched) == 1  # one early process per lossval process

    server = object.__new__(cls)  # not the per-process singleton: this test must not register a server
    server.port = port
    # Prefect's own command for that port, captured as GuardedServer does, is the one started early:
    # this fails when a Prefect upgrade changes its command, and then the early process is stopped, not used.
    assert server._run_uvicorn_command() is early and len(launched) == 1 and not early.stopped

    guard.launch_early()
    second = launched[-1]
    server.port = port + 1 if port < 8999 else port - 1  # Prefect moved to another port: not adopted
    fresh = server._run_uvicorn_command()
    assert second.stopped and fresh is launched[-1] and fresh is not second
    assert fresh.args[fresh.args.index("--port") + 1] == str(server.port)

    guard.launch_early()
    third = launched[-1]
    monkeypatch.setenv("PREFECT_API_DATABASE_TIMEOUT", "99")  # a Prefect setting that appeared since: not adopted
    server.port = int(third.args[third.args.index("--port") + 1])
    assert server._run_uvicorn_command() is not third and third.stopped

    guard.launch_early()
    guard.stop_unadopted()  # a run that ended before its flow started the server: the process is stopped
    assert launched[-1].stopped and guard._early is None

    running = object.__new__(SubprocessASGIServer)
    running.running = True
    SubprocessASGIServer._instances[None] = running  # this process's server is up already: nothing is launched
    assert guard.launch_early() is None and guard._early is None


def test_the_run_s_sqlite_tracking_store_is_created_before_the_flow(tmp_path: Path) -> None:
    import yaml

    from flows import runner

    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"data": "d.csv", "target": "y"}))
    runner._open_tracking_store(cfg, tmp_path / "ws", create=False)  # `lossval run`: no store made before ingest
    assert not (tmp_path / "ws" / "mlflow.db").exists()
    runner._open_tracking_store(cfg, tmp_path / "ws")
    assert (tmp_path / "ws" / "mlflow.db").stat().st_size > 0
    runner._open_tracking_store(cfg, tmp_path / "ws", create=False)  # an existing one is opened all the same
    import logging

    logging.getLogger("mlflow").setLevel(logging.INFO)  # what importing mlflow does
    runner._quiet_libraries()
    assert logging.getLogger("mlflow").level == logging.WARNING
    cfg.write_text(yaml.safe_dump({"data": "d.csv", "target": "y", "tracking": {"uri": "http://127.0.0.1:1"}}))
    runner._open_tracking_store(cfg, tmp_path / "ws2")  # a server is left to the track stage
    assert not (tmp_path / "ws2").exists()
    cfg.write_text("not: [valid")
    runner._open_tracking_store(cfg, tmp_path / "ws3")  # errors are the flow's to report


def _alive(pid: int) -> bool:
    """Running (a zombie left for init to reap counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="sessions, signals and /proc")
def test_the_guarded_server_has_its_own_session_and_stops_when_its_owner_is_killed(tmp_path: Path) -> None:
    # A terminal's Ctrl-C goes to the foreground process group: the server must not be in it (the flow
    # would lose its API mid-run). SIGKILL of lossval (OOM killer, kill -9) must not leave it running.
    import os
    import signal
    import subprocess
    import sys

    owner = subprocess.Popen(
        [sys.executable, "-c", "import os, time\n"
         "from flows._server_guard import GuardedServer\n"
         "s = GuardedServer(); s.start(); print(s.server_process.pid, os.getsid(s.server_process.pid), flush=True)\n"
         "time.sleep(600)"],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")},
             "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    try:
        server_pid, server_sid = map(int, owner.stdout.readline().split())
        assert server_sid != os.getsid(owner.pid)  # a session of its own
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(timeout=10)
        deadline = time.monotonic() + 15
        while _alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(server_pid)
    finally:
        if owner.poll() is None:
            owner.kill()


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="sessions, signals and /proc")
@pytest.mark.parametrize(("how", "code", "message"), [
    ("ctrl-c", 130, "lossval: interrupted"),  # a terminal's Ctrl-C: SIGINT to the whole foreground group
    ("sigterm", 143, "lossval: terminated (SIGTERM)"),  # a scheduler or `timeout` stopping the job
])
def test_stopping_lossval_mid_valuation_is_clean_and_quick(tmp_path: Path, how: str, code: int, message: str) -> None:
    import os
    import signal
    import subprocess
    import sys

    ws = tmp_path / "ws"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lossval.cli", "demo", "--workspace", str(ws), "--epochs", "20000"],
        start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")},
             "PREFECT_HOME": str(tmp_path / "prefect")})
    try:
        deadline = time.monotonic() + 180
        while not list((ws / "runs").glob("*.partial")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        time.sleep(2.0)  # into the valuation (20000 epochs: minutes, however fast the machine; 400 took 1.3 s)
        servers = subprocess.run(["pgrep", "-f", f"flows._server_guard {proc.pid}"], capture_output=True,
                                 text=True).stdout.split()
        assert len(servers) == 1
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGTERM)
        stopped = time.monotonic()
        _, err = proc.communicate(timeout=60)
        assert time.monotonic() - stopped < 30
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code and err.strip().splitlines() == [message + (
        "; unfinished outputs removed; a run stopped while logging to MLflow keeps its complete run folder (its "
        "manifest's mlflow status says failed): rerun to log and register it" if how == "sigterm" else "")], err
    assert not (ws / "runs").exists() or not list((ws / "runs").iterdir())  # the unfinished run folder is gone
    deadline = time.monotonic() + 15
    while _alive(int(servers[0])) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(int(servers[0]))  # and so is Prefect's temporary server


def test_lossval_run_keeps_prefect_quiet_although_its_checks_import_prefect(tmp_path: Path) -> None:
    # `lossval run` checks its inputs with stage code that imports Prefect, which sets its log level on import:
    # the quiet default must be in place before that, as it is for `lossval demo` (else every task's INFO line).
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    probe = ("import logging, sys\nfrom pathlib import Path\nimport flows.runner as r\n"
             "r._run_reporting = lambda *a, **k: print(logging.getLogger('prefect').getEffectiveLevel())\n"
             f"r.run_from_config(Path({str(root / 'examples' / 'config.yaml')!r}), workspace=Path({str(tmp_path)!r}))\n"
             "print('prefect' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_LOGGING_LEVEL"}
    proc = subprocess.run([sys.executable, "-c", probe], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    level, imported = proc.stdout.split()
    assert imported == "True"  # the checks did import Prefect (else this test checks nothing)
    assert int(level) == 30, proc.stdout  # WARNING


def test_a_missing_input_file_is_named_with_its_config_key(tmp_path: Path) -> None:
    import pytest

    from flows.runner import check_inputs_exist
    from lossval.config import config_from_dict
    from lossval.errors import InputError

    (tmp_path / "d.csv").write_text("a,y\n1,0\n")
    for key, extra in (("validation.path", {"validation": {"strategy": "file", "path": "gone.csv"}}),
                       ("test_path", {"test_path": "gone.csv"}), ("data", {"data": "gone.csv"})):
        config = config_from_dict({"data": "d.csv", "target": "y", **extra}, base_dir=tmp_path)
        with pytest.raises(InputError, match=rf"gone.csv: no such file or directory \(the config's {key}\); check"):
            check_inputs_exist(config)


def test_a_validation_folder_inside_the_data_folder_is_set_aside_and_another_is_refused(tmp_path: Path) -> None:
    # The config may keep its validation/test split as data/holdout.parquet/ (config.py allows it); any other folder
    # named like a data file there (Spark's part files) is refused, not left out of the data without a word.
    import pandas as pd

    from flows.runner import check_inputs_exist, check_small_data
    from lossval.config import config_from_dict
    from lossval.errors import InputError

    (tmp_path / "data" / "holdout.parquet").mkdir(parents=True)
    (tmp_path / "data" / "a.csv").write_text("a,b,y\n" + "\n".join(f"{i},{i % 7},{i % 2}" for i in range(60)) + "\n")
    holdout = pd.DataFrame({"a": [1, 2], "b": [3, 4], "y": [0, 1]})
    holdout.to_parquet(tmp_path / "data" / "holdout.parquet" / "p.parquet")
    for aside in ({"validation": {"strategy": "file", "path": "data/holdout.parquet"}},
                  {"test_path": str(tmp_path / "data" / "holdout.parquet") + "/"}):
        config = config_from_dict({"data": "data", "target": "y", **aside}, base_dir=tmp_path)
        check_inputs_exist(config)
        check_small_data(config)
    (tmp_path / "data" / "b.parquet").mkdir()
    with pytest.raises(InputError, match=r"data: 1 folder named like a data file \('b\.parquet'\) is in the data "):
        check_inputs_exist(config)
    with pytest.raises(InputError, match=r"1 folder named like a data file \('b\.parquet'\)"):
        check_small_data(config)


def test_a_tracking_store_that_cannot_work_is_refused_before_the_run(tmp_path: Path, monkeypatch) -> None:
    # These were met by the track stage after the whole run: a folder store exited 1 with MLflow's refusal cut
    # mid-sentence, a SQLite database in a read-only folder after 100 s of MLflow's retries.
    import pytest

    from flows.runner import check_tracking_store
    from lossval.config import config_from_dict
    from lossval.errors import ConfigError

    (tmp_path / "d.csv").write_text("a,y\n1,0\n")
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "adir.db").mkdir()

    def config(uri: str | None):
        return config_from_dict({"data": "d.csv", "target": "y", "tracking": {"uri": uri}}, base_dir=tmp_path)

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    refused = {"mlruns": r"tracking.uri .*/mlruns is a folder \(MLflow's file store\).*MLFLOW_ALLOW_FILE_STORE=true",
               f"file://{tmp_path}/mlruns": "MLFLOW_ALLOW_FILE_STORE=true",
               "sqlite:///afile/mlflow.db": r"tracking.uri sqlite:///.*afile/mlflow.db: .*afile is a file, not a folder",
               "sqlite:///adir.db": r"adir.db is not a file; point it at a SQLite database file",
               "sqlite:////proc/lossval-test/mlflow.db": "cannot create files in /proc"}
    for uri, message in refused.items():
        with pytest.raises(ConfigError, match=message):
            check_tracking_store(config(uri), source="c.yaml")
    for uri in (None, "sqlite:///new/folder/mlflow.db", "sqlite:///:memory:", "http://127.0.0.1:9",
                "databricks"):
        check_tracking_store(config(uri))
    assert not (tmp_path / "new").exists()  # checked, not created: MLflow creates it when the run logs
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    check_tracking_store(config("mlruns"))


def _example_config(tmp_path: Path, *, tracking_uri: str) -> Path:
    """examples/config.yaml with absolute data paths and this ``tracking.uri``, written under ``tmp_path``."""
    root = Path(__file__).resolve().parents[2]
    text = (root / "examples" / "config.yaml").read_text()
    text = text.replace("data: data/loans.csv", f"data: {root / 'examples' / 'data' / 'loans.csv'}")
    text = text.replace("test_path: data/loans_test.csv", f"test_path: {root / 'examples' / 'data' / 'loans_test.csv'}")
    assert "\n  uri: null " in text
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text.replace("\n  uri: null ", f"\n  uri: {tracking_uri} ", 1))
    return cfg


def test_lossval_run_checks_the_tracking_store_before_prefect_starts(tmp_path: Path, monkeypatch) -> None:
    import pytest

    import flows.runner as runner
    from lossval.errors import ConfigError

    cfg = _example_config(tmp_path, tracking_uri="mlruns")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.setattr(runner, "_run_reporting", lambda *a, **k: pytest.fail("the run started"))
    with pytest.raises(ConfigError, match=r"config.yaml: tracking.uri .*mlruns is a folder"):
        runner.run_from_config(cfg, workspace=tmp_path / "ws")
    assert not (tmp_path / "ws").exists()


def test_a_metric_limit_the_inferred_task_does_not_report_is_refused_before_prefect(tmp_path: Path) -> None:
    # With task: auto it was refused after Prefect had started and ingest had run (44 s).
    import pytest

    from flows.runner import check_small_data
    from lossval.config import config_from_dict
    from lossval.errors import ConfigError

    rows = "\n".join(f"{i},{i % 7},{i % 2}" for i in range(60))
    (tmp_path / "d.csv").write_text("a,b,y\n" + rows + "\n")
    config = config_from_dict({"data": "d.csv", "target": "y", "gate": {"metric_limits": {"r2": 0.1}}},
                              base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"c.yaml: 'gate.metric_limits' names \['r2'\], which a classification run "
                                          r"does not report \(the task was inferred"):
        check_small_data(config, source="c.yaml")
    check_small_data(config_from_dict({"data": "d.csv", "target": "y", "gate": {"metric_limits": {"log_loss": 0.1}}},
                                      base_dir=tmp_path))


class _Answers:
    """A tiny HTTP server on 127.0.0.1 that answers every GET with ``status`` (after the statuses in ``first``)
    and records the requests it got."""

    def __init__(self, status: int = 200, *, hang_s: float = 0.0) -> None:
        import http.server

        answers = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                answers.requests.append((self.path, self.headers.get("Authorization")))
                time.sleep(answers.hang_s)
                body = b'{"experiments": []}'
                try:
                    self.send_response(answers.first.pop(0) if answers.first else answers.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # a probe that stopped waiting (hang_s): expected
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.status, self.hang_s, self.requests = status, hang_s, []
        self.first: list[int] = []  # statuses to answer before ``status``, in turn
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _closed_port() -> int:
    import socket

    with socket.socket() as s:  # bound, never listening: a connection there is refused at once
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_tracking_server_probe_tells_a_server_that_answers_from_one_that_does_not(monkeypatch) -> None:
    # Before it, an unreachable tracking.uri was met by the track stage, after the whole run had been done.
    from flows.runner import check_tracking_server
    from lossval.errors import SetupError

    for name in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    server = _Answers(200)
    try:
        check_tracking_server(server.uri + "/")
        assert server.requests == [("/api/2.0/mlflow/experiments/search?max_results=1", None)]  # MLflow's REST API
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "t0ken")  # sent as MLflow's client sends it
        server.status = 401  # the server is there; the track stage reports what it refuses
        check_tracking_server(server.uri)
        assert server.requests[-1][1] == "Bearer t0ken"
        server.status = 403
        check_tracking_server(server.uri)
        server.status = 404  # something answers at that host and port, but no MLflow API at that path
        with pytest.raises(SetupError, match=r"^c.yaml: tracking.uri http://127.0.0.1:\d+/wrong: the server answers, "
                           r"but not as an MLflow tracking server \(HTTP 404"):
            check_tracking_server(server.uri + "/wrong", source="c.yaml")
        server.status = 503
        with pytest.raises(SetupError, match=r"answers HTTP 503 .*Start the MLflow server"):
            check_tracking_server(server.uri)
        server.status, server.hang_s = 200, 3.0  # accepts, then never answers in time
        asked = len(server.requests)
        with pytest.raises(SetupError, match=r"no MLflow server answered within 0.5 s"):
            check_tracking_server(server.uri, timeout_s=0.5)
        assert len(server.requests) == asked + 1  # asked once: retries would multiply the wait before any work
    finally:
        server.close()
    uri = f"http://user:secret@127.0.0.1:{_closed_port()}"
    with pytest.raises(SetupError) as refused:
        check_tracking_server(uri, source="c.yaml")
    message = str(refused.value)
    assert "tracking.uri http://user:***@127.0.0.1:" in message and "secret" not in message
    assert "Connection refused" in message and "leave tracking.uri out" in message and "Nothing was run" in message
    for not_a_server in (None, "sqlite:///x/mlflow.db", "mlruns", "databricks"):
        check_tracking_server(not_a_server)  # not probed (nothing listens, nothing is asked)


def test_the_tracking_server_probe_asks_again_after_a_momentary_failure_not_after_a_wrong_url(monkeypatch) -> None:
    # A proxy's 503 while its MLflow server restarted failed a nightly dataset for the whole night.
    from flows.runner import check_tracking_server
    from lossval.errors import SetupError

    for name in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    server = _Answers(200)
    try:
        server.first = [503]  # once, then the server is back
        check_tracking_server(server.uri, attempts=3, retry_wait_s=0.1)
        assert len(server.requests) == 2
        server.status, server.requests[:] = 503, []  # never back
        with pytest.raises(SetupError, match=r"^c.yaml: tracking.uri http://127.0.0.1:\d+: the server answers HTTP 503 "
                           r".*see the server's log\. Asked 3 times, 0.1 s apart\. Start the MLflow server"):
            check_tracking_server(server.uri, source="c.yaml", attempts=3, retry_wait_s=0.1)
        assert len(server.requests) == 3
        server.status, server.requests[:] = 404, []  # a wrong URL: asking again cannot mend it
        with pytest.raises(SetupError, match=r"\(HTTP 404 for .*path\. Start the MLflow server") as wrong:
            check_tracking_server(server.uri, attempts=3, retry_wait_s=0.1)
        assert len(server.requests) == 1 and "Asked" not in str(wrong.value)
        server.status, server.requests[:] = 503, []  # lossval run's default: asked once, the user is at the terminal
        with pytest.raises(SetupError, match=r"HTTP 503") as once:
            check_tracking_server(server.uri)
        assert len(server.requests) == 1 and "Asked" not in str(once.value)
    finally:
        server.close()
    with pytest.raises(SetupError, match=r"\(\[Errno 111\] Connection refused\)\. Asked 3 times, 0.1 s apart\."):
        check_tracking_server(f"http://127.0.0.1:{_closed_port()}", attempts=3, retry_wait_s=0.1)


def test_the_tracking_server_probe_waits_no_longer_than_its_timeout_for_a_dns_server_that_hangs(monkeypatch) -> None:
    # requests' connect timeout does not cover the name lookup: a hanging resolver held the probe as long as it hung.
    import socket

    from flows.runner import check_tracking_server
    from lossval.errors import SetupError

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    real, released, asked = socket.getaddrinfo, threading.Event(), []

    def hanging(host, *args, **kwargs):  # a DNS server that does not answer, for this one name
        if host == "mlflow.example.invalid":
            asked.append(host)
            released.wait(8.0)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    t0 = time.perf_counter()
    try:
        with pytest.raises(SetupError, match=r"^c.yaml: tracking.uri http://mlflow.example.invalid:5000: the host name "
                           r"mlflow.example.invalid did not resolve within 0.5 s .*Nothing was run.$"):
            check_tracking_server("http://mlflow.example.invalid:5000", source="c.yaml", timeout_s=0.5)
        elapsed = time.perf_counter() - t0
    finally:
        released.set()  # the lookup thread ends
    assert asked and elapsed < 0.5 * 4, elapsed  # its own timeout, not the resolver's (8 s here)


def test_lossval_run_refuses_an_unreachable_tracking_server_before_any_work(tmp_path: Path, monkeypatch,
                                                                          capsys) -> None:
    import flows.runner as runner
    from lossval.cli import main

    cfg = _example_config(tmp_path, tracking_uri=f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setattr(runner, "_run_reporting", lambda *a, **k: pytest.fail("the run started"))
    monkeypatch.setattr(runner, "check_small_data", lambda *a, **k: pytest.fail("the data was read first"))
    code = main(["run", str(cfg), "--workspace", str(tmp_path / "ws")])
    assert code == 1  # as an unreachable MLflow always was: not the input's fault, the server may come back
    assert not (tmp_path / "ws").exists()  # nothing written
    err = capsys.readouterr().err
    assert "config.yaml: tracking.uri http://127.0.0.1:" in err and "no MLflow server could be reached" in err
    assert "Asked" not in err  # a typo'd port at a terminal is said at once, not after retries
