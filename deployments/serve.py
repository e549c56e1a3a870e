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
    parser.add_argument("--workspace", default="lossval-workspace", help="runs, MLflow DB and artifacts")
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
        parameters={"path": "{{ event.payload.path }}", "dataset": "{{ event.payload.dataset }}"},
    )


def build_deployments(*, datasets_file: Path, landing_dir: Path, workspace: Path, cron: str = DEFAULT_CRON,
                      timezone: str = "UTC") -> list[Any]:
    """The nightly and new-data ``RunnerDeployment`` objects (not yet registered).

    Entry points are module paths (``flows.nightly.nightly``), so served runs work from any folder.

    Raises:
        ConfigError: an invalid cron expression or time zone.
    """
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    from flows.arrival import arrival
    from flows.nightly import nightly
    from lossval.errors import ConfigError

    import zoneinfo

    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--timezone {timezone!r} is not a time zone; give an IANA name such as 'UTC', "
                          "'Europe/Berlin' or 'America/New_York'.") from None
    try:
        schedule = Cron(cron, timezone=timezone)
        nightly_deployment = nightly.to_deployment(
            name=NIGHTLY_DEPLOYMENT.split("/")[1], schedule=schedule, tags=["lossval"],
            parameters={"datasets_file": str(datasets_file), "workspace": str(workspace)},
            description=f"Clean every dataset of {datasets_file} ({cron}, {timezone}).",
            entrypoint_type=EntrypointType.MODULE_PATH)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ConfigError(f"--cron {cron!r} / --timezone {timezone!r} is not a valid schedule: "
                          f"{str(exc).splitlines()[-1].strip()[:200]}") from None
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


def _warn_missing_valuation_deployments(entries: list[Any]) -> None:
    """Say now (not at 02:00) when a config names a valuation deployment the server does not have."""
    import sys

    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    wanted = {e.name: e.load().valuation_deployment for e in entries}
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


def run(args: argparse.Namespace) -> int:
    """Register and serve until interrupted. Bad options or a missing PREFECT_API_URL exit 2 before serving."""
    from lossval.catalog import load_catalog
    from lossval.errors import InputError

    datasets_file, landing = Path(args.datasets).resolve(), Path(args.landing).resolve()
    workspace = Path(args.workspace).resolve()
    entries = load_catalog(datasets_file)  # every config validated now, not at 02:00
    if not landing.is_dir():
        raise InputError("landing folder not found; create it (and point `lossval watch` at it).", source=str(landing))
    from lossval.io import check_writable_folder

    check_writable_folder(workspace, what="--workspace")  # now, not in the first scheduled run
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    from prefect.settings import PREFECT_API_URL

    api = PREFECT_API_URL.value()
    if not api:
        raise InputError("PREFECT_API_URL is not set: start a server (`prefect server start --host 127.0.0.1`) and "
                         "export PREFECT_API_URL=http://127.0.0.1:4200/api; `lossval serve` does not use a "
                         "temporary server (schedules and triggers would die with it).")
    workspace.mkdir(parents=True, exist_ok=True)
    deployments = build_deployments(datasets_file=datasets_file, landing_dir=landing, workspace=workspace,
                                    cron=args.cron, timezone=args.timezone)
    if args.valuation_pool:
        name = register_valuation_deployment(args.valuation_pool)
        print(f"lossval serve: registered {name} on work pool {args.valuation_pool!r}; start its worker with "
              f"`prefect worker start --pool {args.valuation_pool}`", flush=True)
    _warn_missing_valuation_deployments(entries)
    print(f"lossval serve: {len(entries)} dataset(s) from {datasets_file}; nightly at '{args.cron}' {args.timezone}; "
          f"new files in {landing}; workspace {workspace}; Prefect API {api}", flush=True)
    from prefect import serve

    serve(*deployments, limit=args.limit)
    return 0
