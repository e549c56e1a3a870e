"""``lossval serve``: serve the nightly and new-data deployments against the Prefect API in PREFECT_API_URL.

Deployments (flow name / deployment name):

* ``lossval-nightly/nightly`` cleans every dataset of ``--datasets`` on ``--cron`` (default
  ``0 2 * * *``, 02:00) in ``--timezone`` (default UTC).
* ``lossval-arrival/on-arrival`` runs for every ``lossval.data.arrived`` event (``lossval watch``),
  with ``path`` and ``dataset`` taken from the event's payload.
* With ``--valuation-pool POOL``: ``lossval-value/POOL`` is registered on work pool ``POOL`` (created
  as a ``process`` pool if missing) for a worker on a GPU machine (``prefect worker start --pool POOL``);
  configs with ``valuation_deployment: lossval-value/POOL`` value there. It is registered, not served
  here: the pool's worker runs it.

Served flow runs execute in child processes of this command, which keeps running until
interrupted. This module imports nothing heavy at import time.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run", "build_deployments", "arrival_trigger", "register_valuation_deployment",
           "DEFAULT_CRON", "NIGHTLY_DEPLOYMENT", "ARRIVAL_DEPLOYMENT"]

DEFAULT_CRON = "0 2 * * *"
NIGHTLY_DEPLOYMENT = "lossval-nightly/nightly"
ARRIVAL_DEPLOYMENT = "lossval-arrival/on-arrival"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``lossval serve``."""
    parser.add_argument("--datasets", required=True,
                        help="datasets file: name, config and landing subfolder per dataset "
                             "(see deployments/datasets.example.yaml)")
    parser.add_argument("--landing", required=True, help="the landing folder that `lossval watch` watches")
    parser.add_argument("--workspace", default="lossval-workspace", help="runs, MLflow DB and artifacts (default ./lossval-workspace)")
    parser.add_argument("--cron", default=DEFAULT_CRON, help=f"nightly schedule (default '{DEFAULT_CRON}')")
    parser.add_argument("--timezone", default="UTC", help="time zone of --cron, IANA name (default UTC)")
    parser.add_argument("--valuation-pool", default=None, metavar="POOL",
                        help="also register lossval-value/POOL on work pool POOL for a GPU worker")
    parser.add_argument("--limit", type=int, default=None, help="most flow runs at once in this process")


def arrival_trigger() -> Any:
    """The event trigger of the new-data deployment: every ``lossval.data.arrived`` event starts one run."""
    from prefect.events import DeploymentEventTrigger

    from lossval.landing import ARRIVAL_EVENT

    return DeploymentEventTrigger(
        name="lossval: new data landed",
        description="`lossval watch` saw a file land completely in the landing folder",
        expect={ARRIVAL_EVENT},
        match={"prefect.resource.id": "lossval.dataset.*"},
        parameters={"path": "{{ event.payload.path }}", "dataset": "{{ event.payload.dataset }}",
                    # optional fields: a bare {{ event.payload.x }} the event lacks makes the action fail
                    "size": "{{ event.payload.size | default(None) }}",
                    "mtime_ns": "{{ event.payload.mtime_ns | default(None) }}"},
    )


def build_deployments(*, datasets_file: Path, landing_dir: Path, workspace: Path, cron: str = DEFAULT_CRON,
                      timezone: str = "UTC") -> list[Any]:
    """The nightly and new-data ``RunnerDeployment`` objects (not yet registered).

    Entry points are module paths (``flows.nightly.nightly``), so served runs work from any folder.

    Raises:
        ConfigError: an invalid cron expression or time zone (both named when both are).
    """
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    from flows.arrival import arrival
    from flows.nightly import nightly
    from lossval.errors import ConfigError

    import zoneinfo

    problems: list[str] = []
    # Prefect's list of zones: ZoneInfo also opens files that list leaves out ('right/UTC', 'posixrules'), which the
    # schedule then refused, reported as a cron mistake
    if timezone not in zoneinfo.available_timezones():
        problems.append(f"--timezone {timezone!r} is not a time zone; give an IANA name such as 'UTC', "
                        "'Europe/Berlin' or 'America/New_York'.")
    try:  # under a bad time zone the cron is still checked (in UTC), so both are said at once
        schedule = Cron(cron, timezone="UTC" if problems else timezone)
        nightly_deployment = nightly.to_deployment(
            name=NIGHTLY_DEPLOYMENT.split("/")[1], schedule=schedule, tags=["lossval"],
            parameters={"datasets_file": str(datasets_file), "workspace": str(workspace)},
            description=f"Clean every dataset of {datasets_file} ({cron}, {timezone}).",
            entrypoint_type=EntrypointType.MODULE_PATH)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError; the time zone was checked above
        lines = [line.strip() for line in str(exc).splitlines()
                 if line.strip() and not line.strip().startswith("For further information")]  # pydantic's link
        said = (lines[-1] if lines else type(exc).__name__)[:200].rstrip(".")
        problems.append(f"--cron {cron!r} is not a valid schedule: {said}; give five fields (minute hour day month "
                        "weekday), e.g. '0 2 * * *' for 02:00.")
    if problems:
        raise ConfigError(" Also: ".join(problems), parts=problems if len(problems) > 1 else None)
    arrival_deployment = arrival.to_deployment(
        name=ARRIVAL_DEPLOYMENT.split("/")[1], triggers=[arrival_trigger()], tags=["lossval"],
        parameters={"datasets_file": str(datasets_file), "landing_dir": str(landing_dir), "workspace": str(workspace)},
        description=f"Ingest and clean a file that landed in {landing_dir}.",
        entrypoint_type=EntrypointType.MODULE_PATH)
    return [nightly_deployment, arrival_deployment]


def register_valuation_deployment(pool: str) -> str:
    """Register ``lossval-value/<pool>`` on work pool ``pool`` (a ``process`` pool is created if missing).

    Returns:
        The deployment's full name, for ``valuation_deployment`` in a config.
    """
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.types.entrypoint import EntrypointType
    from prefect.workers.process import ProcessWorker

    from flows.value_remote import VALUE_FLOW_NAME, value_remote

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            try:
                client.create_work_pool(WorkPoolCreate(name=pool, type="process",
                                                       base_job_template=ProcessWorker.get_default_base_job_template()))
                print(f"lossval serve: created work pool {pool!r} (type process)", flush=True)
            except ObjectAlreadyExists:  # a worker started at the same moment created it
                pass
    deployment = value_remote.to_deployment(name=pool, work_pool_name=pool, tags=["lossval", "valuation"],
                                            description="LossVal valuation stage, run by the worker of this pool.",
                                            entrypoint_type=EntrypointType.MODULE_PATH)
    deployment.apply()
    return f"{VALUE_FLOW_NAME}/{pool}"


def _warn_missing_valuation_deployments(configs: list[tuple[Any, Any]]) -> None:
    """Say now (not at 02:00) when a config names a valuation deployment the server does not have.

    ``configs``: each dataset's entry and loaded pipeline config (:func:`lossval.catalog.load_catalog_configs`).
    """
    import sys

    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    wanted = {entry.name: config.valuation_deployment for entry, config in configs}
    with get_client(sync_client=True) as client:
        for dataset, name in wanted.items():
            if not name:
                continue
            try:
                client.read_deployment_by_name(name)
            except ObjectNotFound:
                print(f"lossval serve: warning: dataset {dataset} values on deployment {name!r}, which the server "
                      f"does not have; register it with --valuation-pool {name.split('/')[-1]} (or prefect deploy), "
                      "or its runs will fail", file=sys.stderr, flush=True)


def _check_valuation_pool(pool: str | None) -> None:
    """Refuse a ``--valuation-pool`` name Prefect would not take.

    Raises:
        InputError: names the option and what a work pool name may hold.
    """
    from lossval.errors import InputError

    if pool is not None and not re.fullmatch(r"[^/%&><\s][^/%&><]*", pool):
        raise InputError(f"--valuation-pool {pool!r} is not a work pool name Prefect takes: give a non-empty name "
                         "without '/', '%', '&', '<' or '>' (e.g. gpu).")


def _check_limit(limit: int | None) -> None:
    """Refuse a ``--limit`` below 1: 0 served nothing (no run could ever start); a negative one crashed Prefect's
    runner once serving.

    Raises:
        InputError: names the option and the value.
    """
    from lossval.errors import InputError

    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1 flow run at once, got {limit}; leave it out for no limit.")


def _check_landing(landing: Path) -> None:
    """Refuse a ``--landing`` folder that is not there.

    Raises:
        InputError: names the folder and what to do.
    """
    from lossval.errors import InputError

    if not landing.is_dir():
        raise InputError("landing folder not found; create it (and point `lossval watch` at it).", source=str(landing))


def _prefect_api_url() -> str:
    """PREFECT_API_URL, which ``serve`` needs set.

    Raises:
        InputError: it is not set; says how to start a server and set it.
    """
    from prefect.settings import PREFECT_API_URL

    from lossval.errors import InputError

    api = PREFECT_API_URL.value()
    if not api:
        raise InputError(
            "PREFECT_API_URL is not set: start a server (`prefect server start --host 127.0.0.1`) and export "
            "PREFECT_API_URL=http://127.0.0.1:4200/api; `lossval serve` does not use a temporary server (schedules "
            "and triggers would die with it).")
    return api


def run(args: argparse.Namespace) -> int:
    """Register and serve until interrupted. Bad options or a missing PREFECT_API_URL exit 2 before serving.

    Every option is checked before the server is asked anything, and all that is wrong is said at once: a missing
    PREFECT_API_URL no longer hid a bad --timezone or --cron until a second run.
    """
    from lossval.catalog import load_catalog_configs
    from lossval.errors import InputError

    problems: list[InputError] = []

    def check(step: Callable[[], Any]) -> Any:
        """``step()``, or None with its InputError (ConfigError too) kept for the one report below."""
        try:
            return step()
        except InputError as exc:
            problems.append(exc)
            return None

    check(lambda: _check_valuation_pool(args.valuation_pool))
    from flows.value_remote import valuation_timeout_s

    check(valuation_timeout_s)  # a malformed LOSSVAL_VALUATION_TIMEOUT_S is said now, not by each remote valuation
    check(lambda: _check_limit(args.limit))
    datasets_file, landing = Path(args.datasets).resolve(), Path(args.landing).resolve()
    workspace = Path(args.workspace).resolve()
    configs = check(lambda: load_catalog_configs(datasets_file))  # every config validated now, not at 02:00
    check(lambda: _check_landing(landing))
    from lossval.io import check_writable_folder

    check(lambda: check_writable_folder(workspace, what="--workspace"))  # now, not in the first scheduled run
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    deployments = check(lambda: build_deployments(  # --cron and --timezone
        datasets_file=datasets_file, landing_dir=landing, workspace=workspace, cron=args.cron, timezone=args.timezone))
    api = check(_prefect_api_url)
    if api:
        from deployments.watch import check_api_key, check_api_url

        check(lambda: check_api_url(api))  # without /api the first request failed with HTTP 404, reported as a bug
        check(lambda: check_api_key(api))
    # A problem that lists several (the datasets file's bad entries, a bad --timezone and --cron) gives each its own
    # number here, alone too: the two schedule options were joined by "Also:" when nothing else was wrong.
    items = [text for exc in problems for text in (exc.parts or [str(exc)])]
    if len(items) == 1:
        raise problems[0]
    if items:
        raise InputError("`lossval serve` cannot start; fix each of these, then start it again: "
                         + " ".join(f"({i}) {text}" for i, text in enumerate(items, 1)))
    registered = _registered_deployments()  # as the last serve (or prefect deploy) left them
    _refuse_if_served_elsewhere(registered)  # before registering anything
    workspace.mkdir(parents=True, exist_ok=True)  # not before: a server that does not answer left an empty folder
    _note_repointed(deployments, registered)
    if args.valuation_pool:
        name = register_valuation_deployment(args.valuation_pool)
        print(f"lossval serve: registered {name} on work pool {args.valuation_pool!r}; start its worker with "
              f"`prefect worker start --pool {args.valuation_pool}`", flush=True)
    _warn_missing_valuation_deployments(configs)
    _warn_missing_data(configs, workspace)
    _warn_unreachable_tracking(configs)
    print(f"lossval serve: {len(configs)} dataset(s) from {datasets_file}; nightly at '{args.cron}' {args.timezone}; "
          f"new files in {landing}; workspace {workspace}; Prefect API {api}", flush=True)
    arrival_now = next(d for d in deployments if f"{d.flow_name}/{d.name}" == ARRIVAL_DEPLOYMENT)
    _repoint_queued_arrivals(registered[ARRIVAL_DEPLOYMENT], serving=arrival_now.parameters)
    _resubmit_arrivals_cancelled_on_shutdown(registered[ARRIVAL_DEPLOYMENT], serving=arrival_now.parameters)
    return _serve(deployments, limit=args.limit)


def _registered_deployments() -> dict[str, Any]:
    """The nightly and new-data deployments as the server has them (``None`` for one it does not have)."""
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    found: dict[str, Any] = {}
    with get_client(sync_client=True) as client:
        for name in (NIGHTLY_DEPLOYMENT, ARRIVAL_DEPLOYMENT):
            try:
                found[name] = client.read_deployment_by_name(name)
            except ObjectNotFound:
                found[name] = None
    return found


# The message Prefect's runner gives the runs it cancels when it stops (``Runner.cancel_all``).
SHUTDOWN_CANCEL_MESSAGE = "Runner is shutting down."
# A terminal's Ctrl-C reaches the runs' processes too, and one may die of it before the runner
# cancels it: Crashed, "Process exited with status code: -2" (SIGINT; -15 for SIGTERM).
_STOPPED_BY_SIGNAL = re.compile(r"status code: -(2|15)\b")


# What a ``serve`` stopped at once (a second Ctrl-C or SIGTERM) marks its runs in flight with: without it they stayed
# RUNNING on the server, with no process left, and the next ``serve`` did not queue their files again.
STOPPED_AT_ONCE_MESSAGE = "lossval serve was stopped at once (a second Ctrl-C or SIGTERM) while this run was in flight"


def _stopped_with_serve(state: Any) -> bool:
    """Whether a run ended because a ``serve`` stopped (not by a user's cancel or a failure)."""
    if state is None:
        return False
    if state.is_cancelled():
        return state.message == SHUTDOWN_CANCEL_MESSAGE
    return state.is_crashed() and (state.message == STOPPED_AT_ONCE_MESSAGE
                                   or bool(_STOPPED_BY_SIGNAL.search(state.message or "")))


def _crash_runs_in_flight(names: list[str], *, timeout_s: float = 10.0) -> int | None:
    """Mark the served deployments' RUNNING and PENDING runs Crashed (:data:`STOPPED_AT_ONCE_MESSAGE`), and pause
    the deployments as a stop that finishes does.

    Called when a ``serve`` stops at once: only this ``serve`` runs these deployments (a second one is refused), so
    their runs in flight are its own, and their processes go with it. Unpaused, the deployments looked served by a
    live ``serve`` for 30 s, and the next ``serve`` was refused meanwhile. Gives up after ``timeout_s`` (a server
    that does not answer must not hold up a stop asked for "at once"). Returns how many runs were marked, None when
    the server did not answer in time or refused.
    """
    import threading

    marked: list[int] = []

    def mark() -> None:
        from prefect import get_client
        from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterDeploymentId, FlowRunFilterState,
                                                    FlowRunFilterStateType)
        from prefect.client.schemas.objects import StateType
        from prefect.states import Crashed

        try:
            with get_client(sync_client=True) as client:
                ids = [client.read_deployment_by_name(name).id for name in names]
                runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                    deployment_id=FlowRunFilterDeploymentId(any_=ids),
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING,
                                                                                StateType.PENDING]))))
                for run in runs:
                    client.set_flow_run_state(run.id, Crashed(message=STOPPED_AT_ONCE_MESSAGE), force=True)
                for deployment_id in ids:
                    client.pause_deployment(deployment_id)
                marked.append(len(runs))
        except Exception:  # noqa: BLE001 - best effort while stopping at once: the caller says nothing was marked
            pass

    worker = threading.Thread(target=mark, daemon=True, name="lossval-serve-mark-crashed")
    worker.start()
    worker.join(timeout_s)
    return marked[0] if marked else None


# What a new-data run's parameters say of its file; the rest (datasets file, landing folder, workspace...) is the
# serving deployment's.
_FILE_PARAMETERS = ("path", "dataset", "size", "mtime_ns", "force")


def _as_served(parameters: dict[str, Any], serving: dict[str, Any]) -> dict[str, Any] | None:
    """A new-data run's parameters with this ``serve``'s datasets file and workspace, its file kept; None when the
    run names another landing folder than this ``serve`` watches."""
    landed_in = parameters.get("landing_dir")
    if landed_in is not None and str(landed_in) != str(serving.get("landing_dir")):
        return None
    return {**serving, **{k: parameters[k] for k in _FILE_PARAMETERS if k in parameters}}


def _repoint_queued_arrivals(deployment: Any, *, serving: dict[str, Any], lookback: int = 200) -> list[str]:
    """Give the new-data runs still queued (Scheduled) this ``serve``'s datasets file and workspace.

    Prefect's pause leaves the event trigger on, so a file that landed while no ``serve`` ran got a
    Scheduled run with the parameters of the ``serve`` before; one restarted with another workspace
    would run it there. Its file (:data:`_FILE_PARAMETERS`) is kept; a run for another landing
    folder is left as it is, and a line names it.

    Returns:
        The paths of the runs updated.
    """
    from prefect import get_client
    from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterDeploymentId, FlowRunFilterState,
                                                FlowRunFilterStateType)
    from prefect.client.schemas.objects import StateType

    updated: list[str] = []
    if deployment is None:
        return updated
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))), limit=lookback)
        for run in runs:
            parameters = dict(run.parameters or {})
            path = parameters.get("path")
            wanted = _as_served(parameters, serving)
            if path is None or wanted == parameters:
                continue
            if wanted is None:
                print(f"lossval serve: {path}: its queued new-data run {run.name} is for the landing folder "
                      f"{parameters.get('landing_dir')}, not {serving.get('landing_dir')} that this serve watches; "
                      "left as it is (cancel it in the Prefect UI if it is not wanted)", flush=True)
                continue
            client.update_flow_run(run.id, parameters=wanted)
            updated.append(path)
            print(f"lossval serve: {path}: its new-data run {run.name}, queued while no serve ran, now uses this "
                  "serve's datasets file and workspace", flush=True)
    return updated


def _resubmit_arrivals_cancelled_on_shutdown(deployment: Any, lookback: int = 200, *,
                                             serving: dict[str, Any] | None = None) -> list[str]:
    """Queue again the new-data runs that a stopping ``serve`` cancelled, so no landed file is left behind.

    The watcher reported those files once; nothing else would clean them. Only a path whose
    latest arrival run (of the ``lookback`` latest) was stopped with a ``serve`` (cancelled by
    the stopping runner, or killed by the same Ctrl-C: :func:`_stopped_with_serve`) is queued,
    once per such run (idempotency key); a run a user cancelled is not. A file cleaned meanwhile,
    or superseded, ends its new run at once (``already_cleaned`` / ``superseded``).

    The queued run takes its file (:data:`_FILE_PARAMETERS`) from the cancelled run and the rest
    from ``serving``, the parameters this ``serve`` runs the deployment with: a ``serve`` restarted
    with another workspace or datasets file cleans there (it cleaned into the old workspace). A file
    that landed in another landing folder than this ``serve`` watches is not queued; a line says so.

    Args:
        deployment: The registered new-data deployment (``None``: not registered yet, nothing to do).
        serving: This ``serve``'s parameters of the deployment (None: the cancelled run's own).

    Returns:
        The paths queued again.
    """
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
    from prefect.client.schemas.sorting import FlowRunSort

    queued: list[str] = []
    if deployment is None:
        return queued
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id])),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=lookback)
        latest: dict[str, Any] = {}
        for run in runs:
            latest.setdefault((run.parameters or {}).get("path"), run)
        for path, run in latest.items():
            if path is None or not _stopped_with_serve(run.state):
                continue
            parameters = dict(run.parameters or {})
            if serving is not None:
                served = _as_served(parameters, serving)
                if served is None:
                    print(f"lossval serve: {path}: its new-data run {run.name} was cancelled when serve stopped, but it "
                          f"landed in {parameters['landing_dir']}, not in {serving.get('landing_dir')} that this serve "
                          "watches: not queued again (land it here to clean it)", flush=True)
                    continue
                parameters = served
            client.create_flow_run_from_deployment(deployment.id, parameters=parameters,
                                                   tags=["lossval", "resubmitted"], idempotency_key=f"resubmit-{run.id}")
            queued.append(path)
            print(f"lossval serve: {path}: its new-data run {run.name} was cancelled when serve stopped; queued "
                  "again", flush=True)
    return queued


def _recent_poll_window_s() -> float:
    """How recently a served deployment must have been polled to count as served by a running ``serve``."""
    from prefect.settings import PREFECT_RUNNER_POLL_FREQUENCY

    return max(3.0 * float(PREFECT_RUNNER_POLL_FREQUENCY.value()), 30.0)


def _refuse_if_served_elsewhere(registered: dict[str, Any]) -> None:
    """Refuse to start while another ``lossval serve`` serves these deployments on the same server.

    Two would both run every scheduled and triggered run they picked up, and stopping either
    paused the deployments for the other (Prefect pauses served deployments on shutdown). A
    running ``serve`` polls its deployments every few seconds and unpauses them when it starts;
    one that stopped cleanly left them paused. So: not paused and polled within the last
    :func:`_recent_poll_window_s` seconds means another instance is serving them.

    Raises:
        InputError: names the deployment, when it was last polled and what to do.
    """
    import datetime as dt

    from lossval.errors import InputError

    window = _recent_poll_window_s()
    for name, dep in registered.items():
        if dep is None or dep.paused or dep.last_polled is None:
            continue
        age = (dt.datetime.now(dt.timezone.utc) - dep.last_polled).total_seconds()
        if age < window:
            who = (f"a worker of work pool {dep.work_pool_name!r} (deployed from prefect.yaml) runs"
                   if dep.work_pool_name else "another `lossval serve` is serving")
            raise InputError(
                f"{who} {name} on this Prefect server (it polled {age:.0f} s ago). "
                "Two would both run every scheduled run, and stopping either pauses the schedules for the "
                f"other. Stop the other one first; if it was stopped (or killed) just now, start again in "
                f"{window - age + 1:.0f} s.")


def _note_repointed(deployments: list[Any], registered: dict[str, Any]) -> None:
    """Say so when this ``serve`` changes what a registered deployment runs on (another datasets file or folder)."""
    for deployment in deployments:
        name = f"{deployment.flow_name}/{deployment.name}"
        dep = registered.get(name)
        before = (dep.parameters or {}) if dep is not None else {}
        changed = {k: (before.get(k), v) for k, v in deployment.parameters.items() if before.get(k) != v}
        if before and changed:
            what = "; ".join(f"{k}: {old} -> {new}" for k, (old, new) in sorted(changed.items()))
            print(f"lossval serve: note: {name} was registered with other parameters; now {what}", flush=True)


def _warn_missing_data(configs: list[tuple[Any, Any]], workspace: Path) -> None:
    """Say now (not at 02:00) which datasets the nightly run could not read: the data it would clean is missing.

    ``configs``: each dataset's entry and loaded pipeline config (:func:`lossval.catalog.load_catalog_configs`).
    """
    import sys

    from flows.nightly import newest_landed
    from lossval.errors import InputError
    from lossval.io import list_data_files

    for entry, config in configs:
        newest = newest_landed(workspace, entry.name)  # what the nightly run would clean
        set_aside: tuple[str, ...] = ()  # a landed delivery is a file
        if newest is not None:
            path, what = Path(newest["path"]), "its newest landed file"
        else:
            path, what, set_aside = Path(config.data), "its config's 'data'", config.set_aside_paths()
        try:  # the reader's own rule: a file, or a folder of data files (lossval.io.read_table)
            list_data_files(path, set_aside=set_aside)
        except InputError as exc:
            print(f"lossval serve: warning: dataset {entry.name}: {what} cannot be read: {exc} The nightly run "
                  f"fails for it until that is fixed or a file lands in the landing folder's {entry.landing}/",
                  file=sys.stderr, flush=True)


def _warn_unreachable_tracking(configs: list[tuple[Any, Any]]) -> None:
    """Say now which datasets' tracking server does not answer: each of their runs fails at its start until it does.

    A warning, not a refusal: ``serve`` runs for months and a server may come up after it; each run probes again
    (:func:`flows.runner.check_tracking_server`). One probe per server, naming every dataset that uses it.
    ``configs``: each dataset's entry and loaded pipeline config (:func:`lossval.catalog.load_catalog_configs`).
    """
    import sys

    from flows.runner import check_tracking_server
    from lossval.errors import SetupError

    users: dict[str | None, list[str]] = {}
    for entry, config in configs:
        users.setdefault(config.tracking.uri, []).append(entry.name)
    for uri, names in users.items():
        try:
            check_tracking_server(uri)  # which stores it probes is its own rule (http and https servers)
        except SetupError as exc:
            which = "dataset " + names[0] if len(names) == 1 else "datasets " + ", ".join(names)
            said = str(exc).removesuffix(" Nothing was run.")
            print(f"lossval serve: warning: {which}: {said} Their nightly and new-data runs fail at their start until "
                  "it answers.", file=sys.stderr, flush=True)


def _end_run_processes(runner: Any) -> int:
    """Kill (SIGKILL) the processes of the runs ``runner`` started; returns how many there were.

    For a stop at once, after the runs were marked Crashed with :data:`STOPPED_AT_ONCE_MESSAGE`: a
    flow run's process is a multiprocessing child, which Python joins at exit, so one still waiting
    (for its dataset's lock, say) kept ``serve`` alive after it said it had stopped (seen in CI:
    still running 60 s later). Not SIGTERM: the run would then set its own Crashed state ("aborted
    by a termination signal") over ours, and the next ``serve`` would not queue its file again. Its
    unfinished run folder is removed by the next run in the workspace, as after any kill.
    """
    manager = getattr(runner, "_process_manager", None)  # Prefect's runner keeps its children here (3.8)
    try:
        handles = [h for h in (manager.get(i) for i in manager.flow_run_ids()) if h is not None and h.pid]
    except Exception:  # noqa: BLE001 - another Prefect release: nothing to stop from here
        return 0
    for handle in handles:
        try:
            handle.hard_kill()
        except OSError:  # gone already
            pass
    return len(handles)


def _serve(deployments: list[Any], *, limit: int | None) -> int:
    """Serve until Ctrl-C or SIGTERM; then cancel the runs in flight, pause the schedules and return 130 / 143.

    Prefect's ``serve()`` returns normally on either signal (exit 0), and on Ctrl-C does not
    cancel the runs it started, which stayed RUNNING on the server. Here both signals take the
    runner's graceful path (cancel in-flight runs, mark them Cancelled, pause); a second Ctrl-C
    stops at once.
    """
    import asyncio
    import signal
    import sys
    import threading

    from prefect.runner import Runner

    received: list[int] = []

    class _Runner(Runner):
        def handle_sigterm(self, *args: Any, **kwargs: Any) -> None:
            _stop(signal.SIGTERM)

    runner = _Runner(pause_on_shutdown=True, limit=limit)

    def _stop(signum: int) -> None:
        received.append(signum)
        if len(received) > 1 and runner.stopping:  # a second signal while stopping: now, runs in flight marked Crashed
            marked = _crash_runs_in_flight(names)
            _end_run_processes(runner)
            print(f"lossval serve: {signal.Signals(signum).name} again: stopping at once; "
                  + ("the server did not answer, so runs in flight may still show Running" if marked is None else
                     f"{marked} run(s) in flight marked Crashed (the next `lossval serve` queues their files again), "
                     "schedules paused"),
                  file=sys.stderr, flush=True)
            raise KeyboardInterrupt
        if len(received) > 1 or not runner.started or runner.stopping or runner._loop is None:
            raise KeyboardInterrupt  # before serving began (or while it stops): stop now
        print(f"lossval serve: {signal.Signals(signum).name}: cancelling the runs in flight and pausing the schedules "
              "(Ctrl-C again to stop at once)", file=sys.stderr, flush=True)
        runner.stopping = True
        runner.execute_in_background(runner.astop)

    for deployment in deployments:
        runner.add_deployment(deployment)
    names = [f"{d.flow_name}/{d.name}" for d in deployments]
    # Not where SIGINT is ignored (a background job of a script): that shell keeps Ctrl-C from its jobs on purpose.
    handle_int = (threading.current_thread() is threading.main_thread()
                  and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN)
    previous = signal.signal(signal.SIGINT, lambda signum, frame: _stop(signum)) if handle_int else None
    print(f"lossval serve: {', '.join(names)} being served; Ctrl-C stops (runs in flight are cancelled, schedules "
          "paused)", flush=True)
    try:
        asyncio.run(runner.start())
    except KeyboardInterrupt:
        pass
    finally:
        if handle_int:
            signal.signal(signal.SIGINT, previous)
    if not received:
        return 0
    print("lossval serve: stopped; the deployments are paused until the next `lossval serve`", file=sys.stderr,
          flush=True)
    return 128 + received[0]
