"""Running the cleaning flow from the CLI: environment defaults, exit codes, and the demo."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lossval.errors import GateFailed, InputError

if TYPE_CHECKING:
    from lossval.config import PipelineConfig

__all__ = ["prepare_environment", "start_prefect_server", "run_flow", "run_from_config", "run_demo",
           "check_inputs_exist", "check_local_device", "check_tracking_store", "check_tracking_server"]


def prepare_environment(workspace: Path) -> None:
    """Quiet, server-less defaults for Prefect (ephemeral mode) unless the user set them; the workspace made."""
    _quiet_defaults()
    workspace.mkdir(parents=True, exist_ok=True)
    _quiet_libraries()


def _quiet_defaults() -> None:
    """Prefect and GX settings of a one-off CLI run, unless the user set them.

    Before Prefect is first imported: it configures its logging (level included) on import.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # An http(s) tracking server makes MLflow print two "View run/experiment" lines per run it ends, a stage's too,
    # into the summary; the summary names the run to review instead.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def _quiet_libraries() -> None:
    """GX, MLflow and alembic log at WARNING and above (MLflow's import sets its logger to INFO)."""
    for name in ("great_expectations", "mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


class _HideRunErrors(logging.Filter):
    """Drops Prefect's ERROR records about failed flow and task runs (their tracebacks included).

    The CLI reports the same exception itself, in one line (with the traceback under
    ``--debug``); the records still reach Prefect's API handler, so the UI shows them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno >= logging.ERROR and record.name.startswith(("prefect.flow_runs", "prefect.task_runs")))


@contextlib.contextmanager
def _quiet_run_errors(enabled: bool) -> Iterator[None]:
    from prefect.logging.handlers import PrefectConsoleHandler

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)] if enabled else []
    hide = _HideRunErrors()
    for h in handlers:
        h.addFilter(hide)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(hide)


def run_flow(config_path: Path, workspace: Path, *, debug: bool = False,
             server_ready: Callable[[], None] | None = None, create_store: bool = False) -> dict[str, Any]:
    """Run the cleaning flow and return its summary; exceptions from the flow are re-raised.

    Args:
        debug: Let Prefect print the tracebacks of failed runs to the console (off: the CLI
            prints one line per error instead).
        server_ready: The wait returned by an earlier :func:`start_prefect_server` (the demo
            starts the server before writing its data); None starts it here.
        create_store: Create a local SQLite MLflow store that does not exist yet while the server
            starts (1.4 s saved on a first run). Off for ``lossval run``: data refused at ingest would
            leave an empty ``mlflow.db`` behind (beside the config, for a relative ``sqlite:///`` URI);
            the demo, whose data lossval writes, turns it on.
    """
    if server_ready is None:
        server_ready = start_prefect_server(workspace)
    from flows.clean import clean_dataset

    _import_stage_libraries()  # meanwhile: what the stages would import one by one once the flow runs,
    _quiet_libraries()  # (importing mlflow sets its logger back to INFO)
    _open_tracking_store(config_path, workspace, create=create_store)  # and the MLflow database the track stage opens
    server_ready()
    # No flow-level result storage: that would persist every task's result (as pickles) and the
    # exception of a failed run into the workspace. The valuation cache sets its own (tasks.value.value_in).
    with _quiet_run_errors(not debug):
        return clean_dataset(config_path=str(config_path.resolve()), workspace=str(workspace.resolve()))


def start_prefect_server(workspace: Path) -> Callable[[], None]:
    """:func:`prepare_environment`, then Prefect's temporary server started; returns the wait for it.

    The server is the slowest part of a first run (Prefect creates its database: about 10 s on 2
    cores), so the earlier it starts, the sooner the flow can.
    """
    prepare_environment(workspace)
    return _start_temporary_server()


def _start_temporary_server() -> Callable[[], None]:
    """Start Prefect's temporary local server in a thread now; returns a wait-until-it-is-up.

    Without a ``PREFECT_API_URL`` the first flow run starts that server and waits for it (5-12 s
    on 2 cores, the most on a first run, which creates Prefect's database). Started here, it
    comes up in its own process while this one imports the flow and its libraries. The server
    is the one the flow would start (Prefect keeps one per process). Its process is launched
    before Prefect's server module is imported (:func:`flows._server_guard.launch_early`), and
    adopted only if Prefect's own command is the same. If starting it fails, the
    process it launched is stopped and the wait raises it as a :class:`LossvalError` (exit 1)
    that says what to change.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return lambda: None
    from flows import _server_guard

    try:  # its process first, then the 2 s import of Prefect's server module (which the flow needs anyway)
        port = _server_guard.launch_early()
    except Exception:  # noqa: BLE001 (an optimisation: GuardedServer launches Prefect's command as usual)
        port = None
    try:
        from flows._server_guard import GuardedServer
    except ImportError:  # another Prefect layout: the flow starts its server as usual
        _server_guard.stop_unadopted()
        return lambda: None
    import threading

    failed: list[BaseException] = []

    def start() -> None:
        server = GuardedServer()  # its own session, stopped when this process is gone (flows/_server_guard.py)
        if port is not None and not getattr(server, "running", False):
            server.port = port  # the early process's port: start() then adopts that process
        try:
            server.start()
        except Exception as exc:  # stop what it launched: a retry by the flow would orphan that process
            failed.append(exc)
            with contextlib.suppress(Exception):
                server.stop()
        finally:
            _server_guard.stop_unadopted()  # not adopted (already running, or start failed first): stop it

    def wait() -> None:
        thread.join()
        if failed:  # what the flow would have met when starting the server itself, without a second wait
            from lossval.errors import LossvalError

            raise LossvalError(
                f"Prefect's temporary server did not start ({failed[0]}). On a slow or busy machine raise "
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS (lossval's default: 90), or start a Prefect "
                "server (prefect server start --host 127.0.0.1) and set PREFECT_API_URL.") from failed[0]

    thread = threading.Thread(target=start, name="lossval-prefect-server", daemon=True)
    thread.start()
    return wait


def _open_tracking_store(config_path: Path, workspace: Path, *, create: bool = True) -> None:
    """Open the run's SQLite MLflow database now, as the track stage would; ``create``: create it when new (1.4 s).

    Only a local SQLite store: a tracking server is left to the track stage, which reports an
    unreachable one. Any failure here is left for that stage to meet and report.
    """
    with contextlib.suppress(Exception):
        from lossval.config import load_config
        from tasks.champion import _no_store_yet
        from tasks.track import tracking_uri

        uri = tracking_uri(load_config(config_path), str(workspace))
        if uri.startswith("sqlite:") and (create or not _no_store_yet(uri)):
            from mlflow import MlflowClient

            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)


def _import_stage_libraries() -> None:
    """Import Great Expectations and MLflow (about 2.5 s on 2 cores), as the ingest and track stages would."""
    for name in ("great_expectations", "mlflow"):
        with contextlib.suppress(ImportError):
            __import__(name)


def check_tracking_store(config: PipelineConfig, *, source: str | None = None) -> None:
    """Refuse, before Prefect starts, a ``tracking.uri`` that cannot work: a SQLite database whose folder or file
    this process cannot write, or a folder store (``./mlruns``) that MLflow refuses.

    Otherwise the whole run went first and the track stage met it: a read-only SQLite folder cost 100 s of
    MLflow's retries, and a folder store MLflow's own refusal, both as exit 1 ("unreachable"), as if a rerun
    could help. A tracking server is probed by :func:`check_tracking_server`.

    Raises:
        ConfigError: naming ``tracking.uri``, the path and what to do.
    """
    from lossval.errors import ConfigError
    from lossval.io import check_writable_folder

    uri = config.tracking.uri
    if not uri:
        return  # the workspace's own database: --workspace is checked
    prefix = "sqlite:///"
    if uri.startswith(prefix):
        path = Path(uri[len(prefix):])
        if str(path) in ("", ":memory:"):
            return
        what = f"tracking.uri {uri}"
        if path.exists() and not path.is_file():
            raise ConfigError(f"{what}: {path} is not a file; point it at a SQLite database file.", source=source)
        try:
            check_writable_folder(path.parent, what=what)  # SQLite writes its journal beside the database
        except InputError as exc:
            raise ConfigError(str(exc), source=source) from None
        if path.exists() and not os.access(path, os.W_OK):
            raise ConfigError(f"{what}: no permission to write {path}; change its permissions or choose another "
                              "database.", source=source)
        return
    if (":" in uri.split("/", 1)[0] and not uri.startswith("file:")) or uri in ("databricks", "databricks-uc"):
        return  # a server (http:, https:), databricks, ...
    try:
        from mlflow.environment_variables import MLFLOW_ALLOW_FILE_STORE
    except ImportError:  # an MLflow without that switch takes folder stores
        return
    if not MLFLOW_ALLOW_FILE_STORE.get():
        raise ConfigError(f"tracking.uri {uri} is a folder (MLflow's file store), which this MLflow refuses unless "
                          "MLFLOW_ALLOW_FILE_STORE=true is set. Use a database, e.g. sqlite:///mlflow.db (relative "
                          "to the config), or set that variable.", source=source)


SERVER_PROBE_TIMEOUT_S = 5.0
"""Seconds :func:`check_tracking_server` waits for the host name to resolve, to connect, then for the answer
(as lossval's MLflow calls do)."""


SERVER_PROBE_ATTEMPTS = 3
"""How many times a nightly or arrival run's :func:`check_tracking_server` asks a server that may be restarting
(connection refused, no answer in time, HTTP 5xx) before its dataset fails: about 3 x 15 s + 2 x 2 s = 49 s at most."""

SERVER_PROBE_RETRY_WAIT_S = 2.0
"""Seconds between those attempts: a proxy's 502 or 503 while its MLflow server restarts lasts about that long."""


def _probe_request_options() -> dict[str, Any]:
    """The credentials and TLS settings MLflow's own client takes from the environment, as ``requests`` options.

    A token (``MLFLOW_TRACKING_TOKEN``) or a user and password (``MLFLOW_TRACKING_USERNAME`` and
    ``MLFLOW_TRACKING_PASSWORD``), ``MLFLOW_TRACKING_INSECURE_TLS``, ``MLFLOW_TRACKING_SERVER_CERT_PATH`` and
    ``MLFLOW_TRACKING_CLIENT_CERT_PATH``; proxies (``HTTPS_PROXY``, ``NO_PROXY``) are ``requests``' own, as for MLflow.
    """
    options: dict[str, Any] = {}
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if token:
        options["headers"] = {"Authorization": f"Bearer {token}"}
    elif user and password:
        options["auth"] = (user, password)
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").strip().lower() in ("true", "1"):
        options["verify"] = False
    elif os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH"):
        options["verify"] = os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"]
    if os.environ.get("MLFLOW_TRACKING_CLIENT_CERT_PATH"):
        options["cert"] = os.environ["MLFLOW_TRACKING_CLIENT_CERT_PATH"]
    return options


def check_tracking_server(uri: str | None, *, source: str | None = None, timeout_s: float = SERVER_PROBE_TIMEOUT_S,
                          attempts: int = 1, retry_wait_s: float = SERVER_PROBE_RETRY_WAIT_S) -> None:
    """Refuse, before any work, an ``http(s)`` ``tracking.uri`` where no MLflow tracking server answers.

    lossval logs to MLflow only once the data outputs are written, so a server that is down, or a
    mistyped host or port, was met after ingest, valuation, retraining and the gate. One request
    to MLflow's REST API (``GET <uri>/api/2.0/mlflow/experiments/search?max_results=1``, what the
    installed ``mlflow server`` answers), bounded by ``timeout_s`` to resolve the host name (a lookup
    ``requests`` does not bound, :func:`_unresolved_host`), again to connect and again to answer,
    with MLflow's credentials from the environment (:func:`_probe_request_options`). A refusal of
    those credentials (HTTP 401 or 403) is an answer: the server is there, and the track stage
    reports what it refuses. Other URIs (SQLite, folders, databricks) are not probed.

    ``attempts``: how many times to ask when what went wrong may pass by itself (connection refused
    or cut, no answer in time, HTTP 5xx from a proxy while its server restarts), ``retry_wait_s``
    apart; a wrong URL (HTTP 404) is refused at once. Nightly and arrival runs, which nobody
    watches, ask :data:`SERVER_PROBE_ATTEMPTS` times; ``lossval run`` and ``serve``'s warning once.

    Raises:
        SetupError: naming ``tracking.uri``, the URI (password masked), what went wrong and what to
            do (exit 1, as an unreachable MLflow has always been: the server may come back).
    """
    if not uri or not uri.lower().startswith(("http://", "https://")):
        return
    from lossval.config import mask_uri
    from lossval.errors import SetupError

    where = (f"{source}: " if source else "") + f"tracking.uri {mask_uri(uri)}"
    todo = ("Start the MLflow server (mlflow server --host HOST --port PORT), correct tracking.uri (scheme, host, "
            "port and path), or leave tracking.uri out to track in the workspace's own store "
            "(sqlite:///<workspace>/mlflow.db). Nothing was run.")
    url = uri.rstrip("/") + "/api/2.0/mlflow/experiments/search"
    for attempt in range(1, attempts + 1):
        why, transient = _probe_once(url, timeout_s)
        if why is None:
            return
        if not transient or attempt == attempts:
            break
        time.sleep(retry_wait_s)
    asked = f" Asked {attempts} times, {retry_wait_s:g} s apart." if transient and attempts > 1 else ""
    raise SetupError(f"{where}: {why}.{asked} {todo}")


def _probe_once(url: str, timeout_s: float) -> tuple[str | None, bool]:
    """One probe of MLflow's REST API at ``url``: ``(None, False)`` when a server answers, else what went wrong
    and whether it may pass by itself (a connection refused or cut, no answer in time, HTTP 5xx: a server or
    its proxy restarting), as against a wrong URL (HTTP 404) that asking again cannot mend."""
    import requests

    from lossval.config import mask_uri

    unresolved = _unresolved_host(url, timeout_s)
    if unresolved is not None:
        return unresolved, True
    try:
        answer = requests.get(url, params={"max_results": 1}, timeout=timeout_s, **_probe_request_options())
    except requests.exceptions.Timeout:
        return f"no MLflow server answered within {timeout_s:g} s", True
    except requests.exceptions.RequestException as exc:
        text = str(exc)  # urllib3's long retry message: its OS error ("[Errno 111] Connection refused") says it all
        found = re.search(r"\[Errno -?\d+\][^'\")]*", text)
        why = found.group(0) if found else mask_uri(text[:300])
        return f"no MLflow server could be reached ({why})", isinstance(exc, requests.exceptions.ConnectionError)
    if answer.status_code == 404:
        return (f"the server answers, but not as an MLflow tracking server (HTTP 404 for {mask_uri(url)}): check the "
                "host, port and path"), False
    if answer.status_code >= 500:
        return (f"the server answers HTTP {answer.status_code} ({answer.reason}): a proxy without its MLflow server "
                "behind it, or a server whose store fails; see the server's log"), True
    return None, False  # an answer (HTTP 401 or 403 too: the credentials are the track stage's to use and report)


def _unresolved_host(url: str, timeout_s: float) -> str | None:
    """Look up the host a request to ``url`` connects to (its proxy's, when the environment names one for it),
    waiting at most ``timeout_s``; returns what went wrong when the lookup did not end in time, else None.

    ``requests``' connect timeout does not cover the name lookup (``socket.getaddrinfo``), so a DNS server that
    does not answer held the probe for as long as the resolver waits, not ``timeout_s``. The lookup runs in a
    daemon thread, which is left to end on its own. A name that does not resolve is left to the request, which
    reports it (``[Errno -2] Name or service not known``) as it always did.
    """
    import socket
    import threading
    from urllib.parse import urlsplit

    from requests.utils import get_environ_proxies, select_proxy

    proxy = select_proxy(url, get_environ_proxies(url))
    target = urlsplit(url if proxy is None else proxy if "://" in proxy else "http://" + proxy)
    try:
        host, port = target.hostname, target.port
    except ValueError:  # a port that is not a number: the request says so
        return None
    if not host:
        return None
    done = threading.Event()

    def look_up() -> None:
        with contextlib.suppress(OSError, UnicodeError):  # a failure is the request's to report
            socket.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)
        done.set()

    threading.Thread(target=look_up, name="lossval-tracking-dns", daemon=True).start()
    if done.wait(timeout_s):
        return None
    what = f"the proxy's host name {host} (for this URI, from the environment)" if proxy else f"the host name {host}"
    return f"{what} did not resolve within {timeout_s:g} s (a DNS server that does not answer)"


def check_inputs_exist(config: PipelineConfig) -> None:
    """Fail in a second, before Prefect starts, when a configured data path does not exist or
    its header lacks the configured target, id, validation or ``features`` column.

    Raises:
        InputError: names the missing path (or the folder without data files), or the column
            and its config key.
    """
    from lossval.io import data_columns, list_data_files, require_column
    from tasks.value import check_feature_columns

    for key, path in (("data", config.data),
                      ("validation.path", config.validation.path if config.validation.strategy == "file" else None),
                      ("test_path", config.test_path)):
        if path and "://" not in path:
            list_data_files(path, key=key, set_aside=config.set_aside_paths() if key == "data" else ())
    columns = data_columns(config.data, set_aside=config.set_aside_paths()) if "://" not in config.data else None
    if columns is None:
        return  # read by the ingest stage, which reports what is wrong with it
    named = {"target": config.target, "id_column": config.id_column,
             "validation.column": config.validation.column if config.validation.strategy == "column" else None,
             "validation.timestamp_column":
                 config.validation.timestamp_column if config.validation.strategy == "latest" else None}
    for key, name in named.items():
        if name is not None:
            require_column(columns, name, key=key, source=config.data)
    check_feature_columns(config, columns)


PRECHECK_MAX_BYTES = 8 * 2**20
"""Data up to this size in all, uncompressed, is read once before Prefect starts (see :func:`check_small_data`)."""


def _uncompressed_size(path: Path) -> int:
    """Bytes a data file holds once decompressed: a CSV's own size, a ``.csv.gz`` file's recorded size (its last 4
    bytes: modulo 4 GiB, so at least its size on disk), a parquet file's cells at 8 bytes each."""
    from lossval.io import data_suffix, is_gzip_csv

    size = path.stat().st_size
    try:
        if is_gzip_csv(path):
            with open(path, "rb") as fh:
                fh.seek(-4, os.SEEK_END)
                return max(size, int.from_bytes(fh.read(4), "little"))
        if data_suffix(path.name) in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(path).metadata  # encoded sizes say little (a constant column takes bytes)
            return max(size, meta.num_rows * meta.num_columns * 8)  # as a frame of 8-byte cells
    except Exception:  # noqa: BLE001 (an unreadable or foreign file: the stages read it and report it)
        return PRECHECK_MAX_BYTES + 1
    return size


def check_small_data(config: PipelineConfig, *, source: str | None = None) -> None:
    """Read small data before Prefect starts and check its rows as ingest and split will.

    A malformed CSV, an empty target, repeated ids, a text value in a number column or a
    validation split too small for the data then fail in seconds (exit 2) instead of after the server has started and the flow has begun
    (about 25 s on the 2-core machine). Data over :data:`PRECHECK_MAX_BYTES` uncompressed (about
    3 s to read and check on that machine) is left to the stages, which read it once. Warnings
    are left to the stages too, so each is said once.

    Raises:
        InputError: as the ingest and split stages would, naming the file, row and column.
    """
    import warnings

    from lossval.config import check_metric_limits
    from lossval.io import list_data_files, read_table
    from lossval.valuation import infer_task
    from tasks.ingest import check_columns_and_rows, check_target_and_ids
    from tasks.split import check_encodable, split_rows

    if "://" in config.data:
        return
    set_aside = config.set_aside_paths()
    if sum(_uncompressed_size(f) for f in list_data_files(config.data, key="data", set_aside=set_aside)) \
            > PRECHECK_MAX_BYTES:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = read_table(config.data, text_columns=[config.id_column, *config.categorical],
                        numeric_columns=config.numeric_features(), set_aside=set_aside)
        check_columns_and_rows(df, target=config.target, id_column=config.id_column, data_path=config.data)
        row_ids = check_target_and_ids(df, target=config.target, id_column=config.id_column, data_path=config.data)
        task_kind = config.task if config.task != "auto" else infer_task(df[config.target], source=config.data)
        # A gate.metric_limits metric the inferred task does not report (r2 on classes): the flow checks it after ingest.
        check_metric_limits(config.gate.metric_limits, task_kind, source=source, inferred=config.task == "auto")
        check_encodable(df, config, task_kind)
        # A validation or training part too small, a class with no validation rows: the split stage's own draw.
        split_rows(df if config.id_column == "row_id" else df.assign(row_id=row_ids.to_numpy()), config, task_kind)


def check_local_device(config: PipelineConfig, *, source: str) -> None:
    """Refuse, before Prefect starts, an explicit ``lossval.device`` this machine lacks (when it values here).

    With ``valuation_deployment`` set the valuation runs on another machine (a GPU worker),
    which may well have the device; then nothing is checked here.

    Raises:
        ConfigError: names the config file, the key and the device.
    """
    device = str(config.lossval.get("device") or "auto")
    if config.valuation_deployment or device.lower() in ("auto", "cpu"):
        return
    from lossval._torchutil import resolve_device
    from lossval.errors import ConfigError

    try:
        resolve_device(device)
    except ConfigError as exc:
        raise ConfigError(f"'lossval.device': {exc}", source=source) from None


def check_valuation_server(config: PipelineConfig, *, source: str) -> None:
    """Refuse, before Prefect starts, a ``valuation_deployment`` with no Prefect server to find it on.

    Without ``PREFECT_API_URL`` the run uses Prefect's temporary server, which has no deployments: the run
    failed after ingest and split with "not found on the Prefect server; register it with `lossval serve`",
    though it may well be registered on the server the user meant.

    Raises:
        ConfigError: names the config file, the key and what to set.
    """
    if not config.valuation_deployment:
        return
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return
    from lossval.errors import ConfigError

    raise ConfigError(f"'valuation_deployment' {config.valuation_deployment!r} is a deployment on a Prefect server, "
                      "and PREFECT_API_URL is not set: this run would use Prefect's temporary server, which has no "
                      "deployments. Export PREFECT_API_URL (e.g. http://127.0.0.1:4200/api), or set it in your Prefect "
                      "profile (`prefect config set PREFECT_API_URL=...`), to the server `lossval serve "
                      "--valuation-pool` or `prefect deploy` registered it on, or set valuation_deployment: null to "
                      "value in-process.", source=source)


def _report(summary: dict[str, Any], *, gate_passed: bool = True) -> None:
    rows, m = summary["rows"], summary["metrics"]
    print(f"run {summary['run_id']}: {rows['train']} train rows -> {rows['kept']} kept, {rows['quarantine']} quarantined "
          f"({rows['validation']} validation, {rows['test']} test rows held out)")
    if ((summary.get("config") or {}).get("retrain") or {}).get("mode") == "soft":
        print(f"  retrain: soft (retrain.mode): the \"after\" model trained on all {rows['train']} train rows, each "
              f"weighted by its value; the {rows['quarantine']} quarantined rows are left out of the cleaned data "
              "(kept.parquet), not out of that training")
    drawn = {"stratified": "at random", "latest": "as its latest rows"}.get(
        (summary.get("config") or {}).get("validation", {}).get("strategy"))
    if drawn:
        print(f"  validation: drawn {drawn} from this data (validation.strategy), so it holds the data's own errors; a "
              "checked file (strategy: file) or column (strategy: column) is the better yardstick")
    older = summary.get("older_snapshot")
    if older:
        print(f"  note: this data is older than the newest snapshot cleaned in this workspace ({older['newest_snapshot']}, "
              f"ingested {older['newest_ingested_at']}): a rollback if the champion was trained on that newer data")
    if summary.get("shrank_from_rows"):
        print(f"  note: {summary['rows']['snapshot']} rows, down from {summary['shrank_from_rows']} in the previous "
              "snapshot: a truncated export?")
    if summary.get("valuation_cached"):
        print("  values: reused from an earlier run on the same snapshot and settings (not valued again)")
    from lossval.valuation import describe_clipped

    clipped = describe_clipped(summary.get("clipped") or {}, summary.get("clipped_validation") or {})
    if clipped:
        print(f"  values: {clipped} (per column: manifest 'clipped')")
    outliers = summary.get("test_outliers") or {}
    if outliers:
        n = sum(outliers.values())
        print(f"  test rows: {n} value{'s' if n > 1 else ''} beyond the training rows' widened range, in "
              + ", ".join(list(outliers)[:3]) + (" and more" if len(outliers) > 3 else "")
              + ": the test metrics (before, after, champion) include them as they are (typos, or heavy tails)")
    if summary.get("pruning"):
        from tasks.prune import describe_pruning

        print(f"  pruning: {describe_pruning(summary['pruning'])}")
    champion = (summary.get("gate") or {}).get("champion") or {}
    theirs = champion.get("metrics") or {}
    for key in m["before"]:
        print(f"  {key:9s} before {m['before'][key]:.4f}  after {m['after'][key]:.4f}"
              + (f"  champion {theirs[key]:.4f}" if key in theirs else ""))
    if theirs:
        print(f"  (champion = version {champion['champion']}, scored on this run's test rows)")
    elif champion.get("note"):
        print(f"  champion: {champion['note']}")
    model = summary.get("model")
    if gate_passed:
        from tasks.track import replacing

        print(f"  gate passed; model {model['name']} version {model['version']} is champion"
              + replacing(model["version"], model.get("previous_champion")))
    elif model and model.get("refused"):
        print(f"  gate passed, not promoted; model {model['name']} version {model['version']} is challenger only: "
              f"{model['refused']}")
    elif model:
        champion = model.get("champion_version")
        if champion is not None and str(champion) == str(model["version"]):  # a rerun that reused that version
            print(f"  gate FAILED; model {model['name']} version {model['version']}, registered by an earlier run of "
                  "the same data and config, is still champion from that run")
        else:
            print(f"  gate FAILED; model {model['name']} version {model['version']} is challenger only; "
                  + (f"the champion is still version {champion}" if champion else "no version is champion yet"))
    else:
        print("  gate FAILED; no model was registered")
    print(f"  outputs: {summary['run_dir']}  (manifest.json lists every file)")
    tracked = summary.get("mlflow") or {}
    uri = str(tracked.get("tracking_uri") or "")
    if tracked.get("status") == "ok" and uri.startswith(("http://", "https://")) and tracked.get("run_id"):
        print(f"  review it: {_ui_address(uri)}/#/experiments/{tracked['experiment_id']}/runs/{tracked['run_id']}"
              + _ui_workspace())


def _ui_address(uri: str) -> str:
    """``uri`` without ``user:password@`` and a trailing ``/``: the server's UI, for a browser.

    The summary's URI has its password masked (``ann:***@``): a link carrying that would log in as ``ann`` with
    the password ``***``; without it the browser asks for the reviewer's own credentials.
    """
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])).rstrip("/")


def _ui_workspace() -> str:
    """``?workspace=NAME`` for an ``MLFLOW_WORKSPACE`` other than MLflow's ``default``, as MLflow's own link has it.

    The run is logged in that workspace; the UI opened without it shows the default one, where the run is not found.
    """
    from urllib.parse import quote

    workspace = os.environ.get("MLFLOW_WORKSPACE", "").strip()
    return f"?workspace={quote(workspace, safe='')}" if workspace and workspace != "default" else ""


def _run_reporting(config_path: Path, workspace: Path, *, debug: bool = False,
                   server_ready: Callable[[], None] | None = None, create_store: bool = False) -> dict[str, Any]:
    """:func:`run_flow`, printing the run summary whether the gate passes or refuses.

    Raises:
        GateFailed: after its run has been reported (the CLI exits 3).
    """
    try:
        summary = run_flow(config_path, workspace, debug=debug, server_ready=server_ready, create_store=create_store)
    except GateFailed as exc:
        if exc.summary is not None:
            try:
                _report(exc.summary, gate_passed=False)
            except (KeyError, TypeError):  # a summary without what the report needs: the error still says why
                pass
        raise
    _report(summary)
    return summary


def run_from_config(config_path: Path, *, workspace: Path, debug: bool = False) -> int:
    """``lossval run CONFIG``: returns 0, or raises (the CLI maps errors to exit codes)."""
    from lossval.config import load_config

    _quiet_defaults()  # the checks below import Prefect (tasks.*), which sets its log level on import
    # Validate before starting Prefect: a bad config or a missing file -> exit 2 in a second.
    config = load_config(config_path)
    check_inputs_exist(config)
    check_local_device(config, source=str(config_path))
    check_valuation_server(config, source=str(config_path))
    _check_workspace(workspace)
    check_tracking_store(config, source=str(config_path))
    check_tracking_server(config.tracking.uri, source=str(config_path))
    check_small_data(config, source=str(config_path))
    made = _first_missing(workspace)
    try:
        _run_reporting(config_path, workspace, debug=debug)
    except BaseException:
        _remove_if_empty(workspace, up_to=made)  # data refused at ingest: no empty --workspace left behind
        raise
    return 0


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` (itself included) that does not exist yet: what a run would create."""
    path = Path(os.path.abspath(path))  # '..' resolved: missing/../existing must not name 'existing' as made here
    missing = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing = folder
    return missing


def _remove_if_empty(path: Path, *, up_to: Path | None) -> None:
    """Remove ``path`` and its parents up to ``up_to`` (the folders this run created) while they are empty."""
    if up_to is None:
        return
    folder = Path(os.path.abspath(path))
    while True:
        try:
            folder.rmdir()  # only an empty folder: anything a run wrote stays
        except OSError:
            return
        if folder == up_to:
            return
        folder = folder.parent


def _check_workspace(workspace: Path) -> None:
    """``--workspace``: a folder, or a path where one can be created, that this process may write."""
    from lossval.io import check_writable_folder

    if workspace.exists() and not workspace.is_dir():
        raise InputError("--workspace must be a folder (it is created when missing); this is a file.", source=str(workspace))
    check_writable_folder(workspace, what="--workspace")


def _log_demo_detection(summary: dict, report: dict, config_path: Path, workspace: Path) -> None:
    """Put the demo's detection figures (known noisy rows) on its MLflow run, where a reviewer of the run looks.

    Only the demo knows which rows are noisy, so the flow cannot log these itself. A failure is
    reported and leaves the demo's outcome alone.
    """
    tracked = summary.get("mlflow") or {}
    if tracked.get("status") != "ok":
        return
    from lossval.config import load_config
    from lossval.errors import LossvalError
    from tasks.track import mlflow_client, tracking_uri

    metrics = {f"demo_{k}": float(report[k]) for k in ("noisy", "true_positives", "precision", "recall", "f1")}
    try:
        with mlflow_client(tracking_uri(load_config(config_path), str(workspace)), doing=" while logging") as client:
            for key, value in metrics.items():
                client.log_metric(tracked["run_id"], key, value)
    except LossvalError as exc:
        print(f"demo: the detection figures were not logged to MLflow: {exc}", file=sys.stderr)


def run_demo(*, dataset: str, noise: float, workspace: Path, epochs: int, device: str, seed: int) -> int:
    """``lossval demo``: the whole flow on a shipped dataset with known label noise."""
    import pandas as pd
    import yaml

    from lossval.demo import check_demo_options, demo_data_dir, detection_scores, make_demo_data
    from lossval.io import atomic_write
    from lossval.metrics import detection_report

    # Before the server starts: exiting while its thread still imports Prefect aborts the interpreter (exit 134).
    check_demo_options(dataset=dataset, noise=noise, seed=seed, epochs=epochs, device=device)
    _check_workspace(workspace)
    workspace = workspace.resolve()
    server_ready = start_prefect_server(workspace)  # first: on a first run it is what the flow waits for
    data = make_demo_data(dataset=dataset, noise=noise, seed=seed,
                          out_dir=demo_data_dir(workspace, dataset=dataset, noise=noise, seed=seed))
    config = {
        "dataset": f"demo-{dataset}", "data": str(data.train_path), "target": data.target, "task": data.task,
        "id_column": "id", "validation": {"strategy": "file", "path": str(data.validation_path)},
        "test_path": str(data.test_path), "seed": seed, "lossval": {"epochs": epochs, "device": device},
        "pruning": {"policy": "two_means", "max_prune_fraction": 0.2},
        "tracking": {"experiment": "lossval-demo"},
    }
    config_path = data.train_path.parent / "config.yaml"
    atomic_write(config_path, lambda tmp: Path(tmp).write_text(yaml.safe_dump(config, sort_keys=False)))
    print(f"demo: {dataset}, {int(round(noise * 100))}% of training labels corrupted on purpose; config {config_path}")
    try:
        summary, gate_ok = _run_reporting(config_path, workspace, server_ready=server_ready, create_store=True), True
    except GateFailed as exc:
        print(f"demo: the gate refused promotion: {exc.local_message or exc}", file=sys.stderr)
        summary, gate_ok = exc.summary, False
    if summary is not None:
        quarantine = pd.read_parquet(summary["outputs"]["quarantine"], columns=["row_id"])
        train = pd.read_parquet(summary["outputs"]["train"], columns=["row_id"])
        flagged = train["row_id"].isin(set(quarantine["row_id"])).to_numpy()
        noisy = train["row_id"].isin(data.noisy_ids).to_numpy()
        rep = detection_report(flagged, noisy)
        print(f"injected noise in the train split: {rep['noisy']} rows; quarantined: {rep['flagged']}; "
              f"of those really noisy: {rep['true_positives']} {detection_scores(rep)}")
        _log_demo_detection(summary, rep, config_path, workspace)
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    mlflow_cmd = str(mlflow_bin) if mlflow_bin.exists() else "mlflow"  # the one installed beside this lossval
    import shlex

    store = shlex.quote(f"sqlite:///{workspace / 'mlflow.db'}")  # a workspace path with spaces stays one argument
    print(f"review it: {shlex.quote(str(mlflow_cmd))} ui --backend-store-uri {store} --host 127.0.0.1 --port 5000")
    return 0 if gate_ok else 3


