"""The deployments against real servers on 127.0.0.1: `prefect server start`, `lossval serve`, a process
worker on the `gpu` pool, `lossval watch`, and `mlflow server` with headless Chromium.

One Prefect server and one MLflow server for the module (free ports, throwaway PREFECT_HOME, bounded
waits); every process is started in its own session and stopped by its PID (its process group) at the end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from lossval.demo import make_demo_data
from lossval.landing import read_lock_log

pytestmark = [pytest.mark.server]

REPO = Path(__file__).resolve().parents[2]
ARRIVAL_WAIT_S = 240  # two arrivals one after the other, each valued on the gpu pool's worker
START_WAIT_S = 90


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, n: int = 40) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return f"--- {self.name} (pid {self.popen.pid}, exit {self.popen.poll()}) ---\n" + "\n".join(lines[-n:])


@dataclass
class Stack:
    root: Path
    env: dict[str, str]
    api: str
    mlflow_url: str
    landing: Path
    workspace: Path
    datasets: Path
    procs: dict[str, Proc] = field(default_factory=dict)

    def get(self, path: str) -> Any:
        return _api_call(httpx.request, "GET", f"{self.api}{path}").json()

    def post(self, path: str, body: Any) -> Any:
        r = _api_call(httpx.request, "POST", f"{self.api}{path}", body)
        return r.json() if r.content else None

    def flow_runs(self, deployment: str) -> list[dict]:
        dep = self.get(f"/deployments/name/{deployment}")
        return self.post("/flow_runs/filter", {"deployments": {"id": {"any_": [dep["id"]]}}, "limit": 50})

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.procs.values())

    def wait(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        """Poll ``check`` until it returns something truthy; fail with the processes' logs otherwise."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for p in self.procs.values():
                if p.popen.poll() is not None:
                    pytest.fail(f"{p.name} exited while waiting for {what}\n{self.logs()}")
            try:
                value = check()
            except (httpx.HTTPError, OSError):
                value = None
            if value:
                return value
            time.sleep(0.5)
        pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{self.logs()}")


RETRY_STATUSES = frozenset({429, 502, 503})  # what Prefect's own client retries
RETRY_PAUSES_S = (0.5, 1, 2, 4, 8)


def _api_call(send: Callable[..., httpx.Response], method: str, url: str, body: Any = None,
              pauses: tuple[float, ...] = RETRY_PAUSES_S) -> httpx.Response:
    """One request to the Prefect API, retried as Prefect's client retries it.

    The server answers 503 when its SQLite database is busy (the serve process, the worker and the watcher
    write to it at once); the request was rolled back and is safe to send again. Other errors raise at once.
    """
    for pause in (*pauses, None):
        r = send(method, url, json=body, timeout=30)
        if r.status_code not in RETRY_STATUSES or pause is None:
            r.raise_for_status()
            return r
        time.sleep(pause)
    raise AssertionError("unreachable")


def test_api_calls_are_retried_on_a_busy_server_and_fail_on_anything_else() -> None:
    """Fast, no server: a busy answer (503) is retried; a 404 or a server that stays busy raises."""
    answers = iter([503, 429, 200])

    def busy_then_ok(method: str, url: str, **_: Any) -> httpx.Response:
        return httpx.Response(next(answers), json={"ok": True}, request=httpx.Request(method, url))

    assert _api_call(busy_then_ok, "POST", "http://127.0.0.1:1/api/x", {}, pauses=(0, 0, 0)).json() == {"ok": True}
    seen: list[int] = []

    def answer(status: int) -> Callable[..., httpx.Response]:
        def send(method: str, url: str, **_: Any) -> httpx.Response:
            seen.append(status)
            return httpx.Response(status, request=httpx.Request(method, url))
        return send

    with pytest.raises(httpx.HTTPStatusError, match="404"):
        _api_call(answer(404), "GET", "http://127.0.0.1:1/api/x", pauses=(0, 0))
    assert seen == [404]
    seen.clear()
    with pytest.raises(httpx.HTTPStatusError, match="503"):
        _api_call(answer(503), "GET", "http://127.0.0.1:1/api/x", pauses=(0, 0))
    assert seen == [503, 503, 503]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(stack: Stack, name: str, args: list[str]) -> Proc:
    log = stack.root / "logs" / f"{name}.log"
    log.parent.mkdir(exist_ok=True)
    with open(log, "wb") as out:  # the child keeps its own handle
        popen = subprocess.Popen(args, cwd=stack.root, env=stack.env, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    proc = stack.procs[name] = Proc(name, popen, log)
    return proc


def _stop(proc: Proc) -> None:
    """SIGTERM the process group led by ``proc`` (its PID); SIGKILL what is left after 5 s."""
    pgid = proc.popen.pid
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.popen.wait(5)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(pgid, signal.SIGKILL)  # anything left in its group, e.g. a served flow run
    except ProcessLookupError:
        pass
    try:
        proc.popen.wait(10)
    except subprocess.TimeoutExpired:
        pass


def _log_has(proc: Proc, text: str) -> bool:
    return proc.log.exists() and text in proc.log.read_text(errors="replace")


def _demo(root: Path) -> tuple[Path, Path]:
    data = make_demo_data(dataset="breast_cancer", noise=0.1, seed=0, out_dir=root / "source")
    config = {"data": str(data.train_path), "target": data.target, "id_column": "id",
              "validation": {"strategy": "file", "path": str(data.validation_path)}, "test_path": str(data.test_path),
              "lossval": {"epochs": 4}, "retrain": {"epochs": 8}, "gate": {"metric_tolerance": 1.0, "refuse_when_all_worse": False},
              "tracking": {"experiment": "lossval-served"}, "valuation_deployment": "lossval-value/gpu"}
    (root / "demo.yaml").write_text(yaml.safe_dump(config))
    datasets = root / "datasets.yaml"
    datasets.write_text(yaml.safe_dump({"datasets": [{"name": "demo", "config": "demo.yaml", "landing": "demo"}]}))
    return datasets, data.train_path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("servers")
    prefect_port, mlflow_port = _free_port(), _free_port()
    api = f"http://127.0.0.1:{prefect_port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({
        "PREFECT_HOME": str(root / "prefect-home"), "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1", "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_LOGGING_LEVEL": "INFO",
        "GX_ANALYTICS_ENABLED": "false", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1",
    })
    datasets, _ = _demo(root)
    stack = Stack(root=root, env=env, api=api, mlflow_url=f"http://127.0.0.1:{mlflow_port}", landing=root / "landing",
                  workspace=root / "ws", datasets=datasets)
    (stack.landing / "demo").mkdir(parents=True)
    stack.workspace.mkdir()
    py = sys.executable
    try:
        _start(stack, "prefect-server", [py, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                         "--port", str(prefect_port), "--no-ui"])
        _start(stack, "mlflow-server", [py, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(mlflow_port),
                                        "--workers", "1", "--backend-store-uri", f"sqlite:///{stack.workspace / 'mlflow.db'}",
                                        "--default-artifact-root", str(stack.workspace / "mlartifacts")])
        stack.wait("the Prefect API", lambda: httpx.get(f"{api}/health", timeout=2).status_code == 200, START_WAIT_S)
        serve = _start(stack, "lossval-serve", [py, "-m", "lossval.cli", "serve", "--datasets", str(datasets),
                                                "--landing", str(stack.landing), "--workspace", str(stack.workspace),
                                                "--valuation-pool", "gpu"])
        watch = _start(stack, "lossval-watch", [py, "-m", "lossval.cli", "watch", str(stack.landing),
                                                "--datasets", str(datasets), "--interval", "0.5", "--settle", "1.5"])
        stack.wait("lossval serve to register the gpu pool", lambda: _log_has(serve, "registered lossval-value/gpu"),
                   START_WAIT_S)
        worker = _start(stack, "gpu-worker", [py, "-m", "prefect", "worker", "start", "--pool", "gpu"])
        stack.wait("lossval serve, the gpu worker and the watcher",
                   lambda: all(_log_has(p, t) for p, t in ((serve, "being served"), (worker, "started"),
                                                            (watch, "watching"))), START_WAIT_S)
        yield stack
    finally:
        for proc in reversed(list(stack.procs.values())):
            _stop(proc)


@dataclass
class Arrivals:
    runs: list[dict]  # the two runs of the landed files
    refused: list[dict]  # the two runs of the escaping events
    files: dict[str, Path]
    seconds: float


def _write_growing(path: Path, stop: threading.Event) -> None:
    """A file that is still being written: a line every 0.3 s, in place, no marker."""
    with open(path, "a") as fh:
        fh.write("id,diagnosis\n")
        i = 0
        while not stop.is_set():
            fh.write(f"g{i},benign\n")
            fh.flush()
            i += 1
            stop.wait(0.3)


def _post_event(stack: Stack, path: str) -> None:
    from prefect.events import Event

    event = Event(event="lossval.data.arrived", resource={"prefect.resource.id": "lossval.dataset.demo"},
                  payload={"path": path, "dataset": "demo"})
    stack.post("/events", [event.model_dump(mode="json")])


@pytest.fixture(scope="module")
def arrivals(stack: Stack) -> Iterator[Arrivals]:
    """At once: two complete files for one dataset, two partial ones, and two events whose path escapes the
    landing folder (one through a symlink the watcher itself skips); waits for the triggered runs to end."""
    import pandas as pd

    train = pd.read_parquet(stack.root / "source" / "train.parquet")
    demo = stack.landing / "demo"
    secret = stack.root / "outside" / "secret.parquet"
    secret.parent.mkdir()
    train.iloc[40:].to_parquet(secret, index=False)  # a valid file: had it been read, a snapshot would show it
    (demo / "link.parquet").symlink_to(secret)
    (demo / "link.parquet.done").touch()
    (demo / "c.parquet.part").write_bytes(b"still uploading")  # partial name: never a data file
    stop = threading.Event()
    writer = threading.Thread(target=_write_growing, args=(demo / "growing.csv", stop), daemon=True)
    writer.start()
    start = time.monotonic()
    # a.parquet: written under a temporary name, renamed in atomically; b.parquet: written in place + marker
    train.iloc[:300].to_parquet(demo / ".a.parquet.tmp", index=False)
    older = time.time() - 60  # a is the older delivery, b the newer one, whatever order their runs get the lock in
    os.utime(demo / ".a.parquet.tmp", (older, older))
    os.replace(demo / ".a.parquet.tmp", demo / "a.parquet")
    train.iloc[20:].to_parquet(demo / "b.parquet", index=False)
    (demo / "b.parquet.done").touch()
    for path in ("../outside/secret.parquet", "demo/link.parquet"):
        _post_event(stack, path)
    try:
        def finished() -> list[dict] | None:
            runs = stack.flow_runs("lossval-arrival/on-arrival")
            done = [r for r in runs if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")]
            return runs if len(done) >= 4 else None

        runs = stack.wait("four arrival runs (two files, two escaping events)", finished, ARRIVAL_WAIT_S)
        seconds = time.monotonic() - start
    finally:
        stop.set()
        writer.join(5)
        (demo / "growing.csv").unlink()  # before it could settle (1.5 s)
    escaping = {"../outside/secret.parquet", "demo/link.parquet"}
    yield Arrivals(runs=[r for r in runs if r["parameters"]["path"] not in escaping],
                   refused=[r for r in runs if r["parameters"]["path"] in escaping],
                   files={"demo/a.parquet": demo / "a.parquet", "demo/b.parquet": demo / "b.parquet"}, seconds=seconds)


def _lock_order(runs: list[dict], held: list[dict]) -> list[str]:
    """The landed paths of the arrival runs, in the order they took the dataset lock."""
    path_of = {r["id"]: r["parameters"]["path"] for r in runs}
    return [path_of[h["holder"]] for h in sorted(held, key=lambda h: h["acquired"]) if h["holder"] in path_of]


def _cleaned(runs: list[dict], held: list[dict]) -> list[str]:
    """The files the newest-file-wins rule lets through: both if the older one ran first, else only b."""
    return ["a.parquet", "b.parquet"] if _lock_order(runs, held)[0] == "demo/a.parquet" else ["b.parquet"]


def test_nightly_deployment_exists_with_its_cron_schedule(stack: Stack) -> None:
    nightly = stack.get("/deployments/name/lossval-nightly/nightly")
    [schedule] = nightly["schedules"]
    assert schedule["active"] and schedule["schedule"]["cron"] == "0 2 * * *" and schedule["schedule"]["timezone"] == "UTC"
    assert nightly["parameters"] == {"datasets_file": str(stack.datasets), "workspace": str(stack.workspace)}
    arrival = stack.get("/deployments/name/lossval-arrival/on-arrival")
    [automation] = stack.get(f"/automations/related-to/prefect.deployment.{arrival['id']}")
    assert automation["trigger"]["expect"] == ["lossval.data.arrived"]
    assert automation["actions"][0]["parameters"] == {
        "path": "{{ event.payload.path }}", "dataset": "{{ event.payload.dataset }}",
        "size": "{{ event.payload.size | default(None) }}", "mtime_ns": "{{ event.payload.mtime_ns | default(None) }}"}
    assert stack.get("/deployments/name/lossval-value/gpu")["work_pool_name"] == "gpu"


def test_a_second_serve_is_refused_while_the_first_serves(stack: Stack) -> None:
    # Two would both run every scheduled run, and stopping either paused the schedules for the other.
    second = subprocess.run([sys.executable, "-m", "lossval.cli", "serve", "--datasets", str(stack.datasets),
                             "--landing", str(stack.landing), "--workspace", str(stack.workspace)],
                            cwd=stack.root, env=stack.env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
    assert "another `lossval serve` is serving lossval-nightly/nightly" in second.stderr
    assert "being served" not in second.stdout
    nightly = stack.get("/deployments/name/lossval-nightly/nightly")
    assert not nightly["paused"] and nightly["status"] == "READY"


def test_landed_files_trigger_runs_that_complete_one_after_the_other(stack: Stack, arrivals: Arrivals) -> None:
    runs = arrivals.runs
    print(f"two arrivals, one after the other, done {arrivals.seconds:.0f}s after the files landed")
    assert len(runs) == 2, [r["parameters"] for r in runs]
    assert all(r["state_type"] == "COMPLETED" for r in runs), [(r["name"], r["state"]["message"]) for r in runs]
    assert sorted(r["parameters"]["path"] for r in runs) == ["demo/a.parquet", "demo/b.parquet"]
    assert all(r["parameters"]["dataset"] == "demo" for r in runs)

    # Only the two complete files were reported: not the growing one, not the .part one.
    state = json.loads((stack.root / ".landing.lossval-watch.json").read_text())
    assert sorted(state["emitted"]) == ["demo/a.parquet", "demo/b.parquet"]
    assert {state["emitted"]["demo/a.parquet"]["size"], state["emitted"]["demo/b.parquet"]["size"]} == {
        p.stat().st_size for p in arrivals.files.values()}

    # Both held the dataset lock, one after the other.
    held = read_lock_log(stack.workspace / "locks", "demo")
    assert sorted(h["holder"] for h in held) == sorted(r["id"] for r in runs)
    first, second = sorted(held, key=lambda h: h["acquired"])
    assert first["released"] <= second["acquired"]

    # The lock goes to either run first. If the newer file (b) ran first, the older one (a) was
    # superseded: its run completed without cleaning anything. Either way b is the newest data.
    cleaned = _cleaned(runs, held)
    print(f"lock order: {[p.split('/')[-1] for p in _lock_order(runs, held)]}, cleaned: {cleaned}")
    record = json.loads((stack.workspace / "locks" / "demo.arrival.json").read_text())
    assert record["relative"] == "demo/b.parquet"

    # Each cleaned file is a snapshot in the dataset's history; a superseded one is not.
    history = json.loads((stack.workspace / "snapshots" / "demo" / "history.json").read_text())
    assert sorted(Path(h["source"]).name for h in history) == cleaned
    assert Path(history[-1]["source"]).name == "b.parquet"

    # Valuation ran as its own deployment on the gpu pool's worker, once per cleaned file.
    valued = stack.flow_runs("lossval-value/gpu")
    assert len(valued) == len(cleaned) and all(r["state_type"] == "COMPLETED" for r in valued)

    # The MLflow DB holds one run per arrival, tagged with its Prefect flow run.
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{stack.workspace / 'mlflow.db'}")
    exp = client.get_experiment_by_name("lossval-served")
    parents = client.search_runs([exp.experiment_id], filter_string="tags.dataset = 'demo'")
    by_path = {r["parameters"]["path"]: r["id"] for r in runs}
    assert sorted(p.data.tags["prefect_flow_run_id"] for p in parents) == sorted(by_path[f"demo/{name}"]
                                                                                 for name in cleaned)
    assert all("after_accuracy" in p.data.metrics and p.info.status == "FINISHED" for p in parents)


def test_an_event_whose_path_escapes_the_landing_folder_is_refused_before_reading(stack: Stack, arrivals: Arrivals) -> None:
    assert sorted(r["parameters"]["path"] for r in arrivals.refused) == ["../outside/secret.parquet", "demo/link.parquet"]
    for run in arrivals.refused:
        assert run["state_type"] == "FAILED", run["state"]
        assert "refused path" in run["state"]["message"] and "Nothing was read" in run["state"]["message"]
    # Nothing was read: the secret file never became a snapshot, and neither run reached the dataset lock.
    history = json.loads((stack.workspace / "snapshots" / "demo" / "history.json").read_text())
    assert all("secret" not in h["source"] and "link" not in h["source"] for h in history)
    assert len(history) == len(_cleaned(arrivals.runs, read_lock_log(stack.workspace / "locks", "demo")))
    assert len(read_lock_log(stack.workspace / "locks", "demo")) == 2
    # The watcher itself never reported the symlink that leaves the folder.
    assert _log_has(stack.procs["lossval-watch"], "skipping demo/link.parquet")
    state = json.loads((stack.root / ".landing.lossval-watch.json").read_text())
    assert "demo/link.parquet" not in state["emitted"]


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_mlflow_ui_shows_the_valuation_run_with_metrics_and_histogram(stack: Stack, arrivals: Arrivals,
                                                                     tmp_path: Path) -> None:
    # Playwright drives the browser itself (no chromedriver): the browser is all this test needs.
    if not Path("/usr/bin/chromium").exists():
        if os.environ.get("CI"):
            pytest.fail("CI must provide /usr/bin/chromium (apt-get install chromium; see .ci/run)")
        pytest.skip("needs /usr/bin/chromium (Debian package chromium)")
    from mlflow import MlflowClient
    from playwright.sync_api import sync_playwright

    stack.wait("the MLflow server", lambda: httpx.get(f"{stack.mlflow_url}/health", timeout=2).status_code == 200,
               START_WAIT_S)
    client = MlflowClient(tracking_uri=f"sqlite:///{stack.workspace / 'mlflow.db'}")
    exp = client.get_experiment_by_name("lossval-served")
    [run, *_] = client.search_runs([exp.experiment_id], filter_string="tags.dataset = 'demo'",
                                   order_by=["attributes.start_time DESC"])
    name = run.info.run_name
    histogram = Path(run.info.artifact_uri.removeprefix("file://")) / "plots" / "values_histogram.png"
    width, height = _png_size(histogram)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1900})  # tall: the whole metrics table shows
            page.set_default_timeout(30_000)
            page.goto(f"{stack.mlflow_url}/#/experiments/{exp.experiment_id}/runs")
            page.get_by_role("link", name=name, exact=True).click()  # the run, found by its name in the list
            page.wait_for_url(f"**/runs/{run.info.run_id}**")
            for metric in ("before_accuracy", "after_accuracy", "before_macro_f1", "after_macro_f1"):
                page.get_by_text(metric, exact=True).first.wait_for()
            value = f"{run.data.metrics['after_accuracy']}"[:6]
            assert value in page.inner_text("body")
            page.get_by_text("prune_fraction", exact=True).first.scroll_into_view_if_needed()
            page.screenshot(path=str(tmp_path / "mlflow-run-metrics.png"))
            page.set_viewport_size({"width": 1600, "height": 1000})

            page.get_by_text("Artifacts", exact=True).first.click()
            page.get_by_text("plots", exact=True).first.click()
            page.get_by_text("values_histogram.png", exact=True).first.click()
            page.wait_for_function(
                "([w, h]) => [...document.images].some(i => i.complete && i.naturalWidth === w && i.naturalHeight === h)",
                arg=[width, height])
            page.get_by_text("plots/values_histogram.png").first.wait_for()
            page.screenshot(path=str(tmp_path / "mlflow-values-histogram.png"))
        finally:
            browser.close()
    for shot in ("mlflow-run-metrics.png", "mlflow-values-histogram.png"):
        assert _png_size(tmp_path / shot)[0] >= 1600
    print(f"screenshots in {tmp_path}")


def test_ctrl_c_on_serve_cancels_the_run_in_flight_pauses_exits_130_and_the_next_serve_requeues_it(
        stack: Stack) -> None:
    """A terminal's Ctrl-C (SIGINT to serve's process group) while a new-data run waits for its dataset lock.

    Runs after the tests that need the first serve (it stops it). Prefect's own serve() exited 0
    here and left the run RUNNING on the server, and nothing ever cleaned the landed file.
    """
    import pandas as pd

    from flows.nightly import locks_dir
    from lossval.landing import dataset_lock

    serve = stack.procs["lossval-serve"]
    _stop(stack.procs.pop("lossval-watch"))  # c.parquet gets the one run this test starts, not a second from its event
    arrival = stack.get("/deployments/name/lossval-arrival/on-arrival")
    pd.read_parquet(stack.root / "source" / "train.parquet").iloc[10:].to_parquet(stack.landing / "demo" / "c.parquet",
                                                                                 index=False)
    params = {"path": "demo/c.parquet", "dataset": "demo"}
    waiting = "dataset demo is busy with another run; waiting for its lock"
    seen = serve.log.read_text(errors="replace").count(waiting)  # the arrivals above may have waited too
    with dataset_lock(locks_dir(stack.workspace), "demo", timeout=10, holder="test: hold the lock"):
        run = stack.post(f"/deployments/{arrival['id']}/create_flow_run", {"parameters": params})
        stack.wait("the new-data run to wait for the dataset lock",
                   lambda: serve.log.read_text(errors="replace").count(waiting) > seen, START_WAIT_S)
        assert stack.get(f"/flow_runs/{run['id']}")["state_type"] == "RUNNING"
        os.killpg(serve.popen.pid, signal.SIGINT)
        try:
            code = serve.popen.wait(60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"lossval serve still running 60 s after Ctrl-C\n{serve.tail()}")
    assert code == 130, serve.tail()
    assert _log_has(serve, "lossval serve: SIGINT: cancelling the runs in flight"), serve.tail()
    end = time.monotonic() + 30
    while (state := stack.get(f"/flow_runs/{run['id']}")["state_type"]) in ("RUNNING", "PENDING", "SCHEDULED") \
            and time.monotonic() < end:
        time.sleep(0.5)
    assert state == "CANCELLED", (state, serve.tail())
    assert stack.get(f"/deployments/{arrival['id']}")["paused"]  # nothing serves it now: no Late runs pile up

    # The next serve queues the cancelled file again (the watcher reported it once), and it is cleaned.
    del stack.procs["lossval-serve"]
    again = _start(stack, "lossval-serve-2", [sys.executable, "-m", "lossval.cli", "serve", "--datasets",
                                              str(stack.datasets), "--landing", str(stack.landing),
                                              "--workspace", str(stack.workspace)])
    stack.wait("the next serve to queue the cancelled run again", lambda: _log_has(again, "demo/c.parquet: its "
               "new-data run"), START_WAIT_S)

    def resubmitted(path: str) -> Callable[[], dict | None]:
        """The one queued-again run of ``path`` once it ended, else None (for ``stack.wait``)."""
        def ended() -> dict | None:
            runs = [r for r in stack.flow_runs("lossval-arrival/on-arrival")
                    if r["parameters"].get("path") == path and "resubmitted" in r["tags"]]
            return runs[0] if len(runs) == 1 and runs[0]["state_type"] in ("COMPLETED", "FAILED", "CRASHED") else None
        return ended

    rerun = stack.wait("the queued run to finish", resubmitted("demo/c.parquet"), ARRIVAL_WAIT_S)
    assert rerun["state_type"] == "COMPLETED", (rerun["state"], again.tail())

    # A second Ctrl-C stops at once. Seen by a review: the run in flight stayed RUNNING with no process left, and
    # the next serve did not queue its file again. Now it ends Crashed (or Cancelled, had the first Ctrl-C's cancel
    # finished first), and the next serve queues it again.
    from deployments.serve import STOPPED_AT_ONCE_MESSAGE

    pd.read_parquet(stack.root / "source" / "train.parquet").iloc[20:].to_parquet(stack.landing / "demo" / "d.parquet",
                                                                                 index=False)
    seen = again.log.read_text(errors="replace").count(waiting)
    with dataset_lock(locks_dir(stack.workspace), "demo", timeout=10, holder="test: hold the lock"):
        run = stack.post(f"/deployments/{arrival['id']}/create_flow_run",
                         {"parameters": {"path": "demo/d.parquet", "dataset": "demo"}})
        stack.wait("the new-data run to wait for the dataset lock",
                   lambda: again.log.read_text(errors="replace").count(waiting) > seen, START_WAIT_S)
        again.popen.send_signal(signal.SIGINT)
        time.sleep(0.02)  # two signals, not one (they would merge), while the first one's cancel is under way
        again.popen.send_signal(signal.SIGINT)
        try:
            code = again.popen.wait(60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"lossval serve still running 60 s after a second Ctrl-C\n{again.tail()}")
    assert code == 130, again.tail()
    state = stack.get(f"/flow_runs/{run['id']}")["state"]
    at_once = _log_has(again, "lossval serve: SIGINT again: stopping at once; 1 run(s) in flight marked Crashed")
    cancelled = ("CANCELLED", "Runner is shutting down.")  # the first Ctrl-C's cancel, had it finished (or last)
    assert (state["type"], state["message"]) in ({("CRASHED", STOPPED_AT_ONCE_MESSAGE), cancelled} if at_once else
                                                 {cancelled}), (state, again.tail())
    print(f"second Ctrl-C {'stopped at once' if at_once else 'came after the cancel had finished'}")
    # Paused either way: unpaused, a stop at once looked like a live serve for 30 s and the next serve was refused.
    assert stack.get(f"/deployments/{arrival['id']}")["paused"], again.tail()
    del stack.procs["lossval-serve-2"]
    third = _start(stack, "lossval-serve-3", [sys.executable, "-m", "lossval.cli", "serve", "--datasets",
                                              str(stack.datasets), "--landing", str(stack.landing),
                                              "--workspace", str(stack.workspace)])
    stack.wait("the next serve to queue the run stopped at once again",
               lambda: _log_has(third, "demo/d.parquet: its new-data run"), START_WAIT_S)

    rerun = stack.wait("the queued run to finish", resubmitted("demo/d.parquet"), ARRIVAL_WAIT_S)
    assert rerun["state_type"] == "COMPLETED", (rerun["state"], third.tail())
    _stop(third)


def test_prefect_yaml_deploys_to_process_work_pools(stack: Stack) -> None:
    """`prefect deploy` of deployments/prefect.yaml (the worker-based alternative to `lossval serve`).

    Runs last: it re-registers the served deployments' names onto work pools.
    """
    env = {**stack.env, "LOSSVAL_DATASETS": str(stack.datasets), "LOSSVAL_LANDING": str(stack.landing),
           "LOSSVAL_WORKSPACE": str(stack.workspace)}
    from prefect.workers.process import ProcessWorker

    stack.post("/work_pools/", {"name": "lossval", "type": "process",
                                "base_job_template": ProcessWorker.get_default_base_job_template()})
    deploy = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file",
                             "deployments/prefect.yaml"], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]
    nightly = stack.get("/deployments/name/lossval-nightly/nightly")
    assert nightly["work_pool_name"] == "lossval"
    assert [s["schedule"]["cron"] for s in nightly["schedules"]] == ["0 2 * * *"]
    assert nightly["parameters"]["datasets_file"] == str(stack.datasets)
    arrival = stack.get("/deployments/name/lossval-arrival/on-arrival")
    assert arrival["work_pool_name"] == "lossval" and arrival["parameters"]["landing_dir"] == str(stack.landing)
    [automation] = stack.get(f"/automations/related-to/prefect.deployment.{arrival['id']}")
    assert automation["trigger"]["expect"] == ["lossval.data.arrived"]
    assert stack.get("/deployments/name/lossval-value/gpu")["work_pool_name"] == "gpu"
