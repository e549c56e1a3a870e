"""The CLI's start-up work done while Prefect's temporary server comes up (flows.runner)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest


def test_the_temporary_server_starts_in_a_thread_and_the_caller_waits_for_it(monkeypatch) -> None:
    import prefect.server.api.server as server_module

    from flows import runner

    started: list[str] = []

    class FakeServer:  # Prefect's SubprocessASGIServer: one per process, start() blocks until healthy
        def start(self) -> None:
            started.append(threading.current_thread().name)
            time.sleep(0.3)
            started.append("up")

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setattr(server_module, "SubprocessASGIServer", FakeServer)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: None}):
        t0 = time.perf_counter()
        wait = runner._start_temporary_server()
        returned = time.perf_counter() - t0
        wait()
    assert returned < 0.2 and started == ["lossval-prefect-server", "up"]  # not on this thread, waited for

    stopped: list[bool] = []

    class BrokenServer:  # launched its process, then timed out
        def start(self) -> None:
            raise RuntimeError("Timed out while attempting to connect to ephemeral Prefect API server.")

        def stop(self) -> None:
            stopped.append(True)

    monkeypatch.setattr(server_module, "SubprocessASGIServer", BrokenServer)
    with temporary_settings(updates={PREFECT_API_URL: None}):
        wait = runner._start_temporary_server()
        from lossval.errors import LossvalError

        with pytest.raises(LossvalError, match=r"Prefect's temporary server did not start \(Timed out.*raise "
                           r"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"):  # once: no second wait by the flow
            wait()
    assert stopped == [True]  # its process is stopped, not left for a retry to orphan

    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:1/api"}):  # a real server: nothing to start
        started.clear()
        monkeypatch.setattr(server_module, "SubprocessASGIServer", FakeServer)
        runner._start_temporary_server()()
    assert started == []


def test_the_run_s_sqlite_tracking_store_is_created_before_the_flow(tmp_path: Path) -> None:
    import yaml

    from flows import runner

    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"data": "d.csv", "target": "y"}))
    runner._open_tracking_store(cfg, tmp_path / "ws")
    assert (tmp_path / "ws" / "mlflow.db").stat().st_size > 0
    import logging

    logging.getLogger("mlflow").setLevel(logging.INFO)  # what importing mlflow does
    runner._quiet_libraries()
    assert logging.getLogger("mlflow").level == logging.WARNING
    cfg.write_text(yaml.safe_dump({"data": "d.csv", "target": "y", "tracking": {"uri": "http://127.0.0.1:1"}}))
    runner._open_tracking_store(cfg, tmp_path / "ws2")  # a server is left to the track stage
    assert not (tmp_path / "ws2").exists()
    cfg.write_text("not: [valid")
    runner._open_tracking_store(cfg, tmp_path / "ws3")  # errors are the flow's to report
