"""The valuation stage as its own deployment, so it can run on a GPU work pool.

When a config sets ``valuation_deployment: lossval-value/gpu``, the cleaning flow does not
value in-process: it starts a run of that deployment (``prefect.deployments.run_deployment``,
linked as a subflow), waits for it, and reads the values from the workspace. The worker of
the pool (``prefect worker start --pool gpu`` on the GPU machine) must see the workspace at
the same path (a shared file system) and have lossval installed.
"""

from __future__ import annotations

import os
from typing import Any

from prefect import flow, get_run_logger

from lossval.config import PipelineConfig, config_from_dict
from lossval.errors import SetupError
from lossval.io import read_json
from lossval.valuation import VALUES_VERSION
from tasks._paths import Workspace
from tasks.value import value_cached

__all__ = ["VALUE_FLOW_NAME", "value_remote", "value_on_deployment", "config_to_raw", "DEFAULT_TIMEOUT_S",
           "valuation_timeout_s"]

VALUE_FLOW_NAME = "lossval-value"
DEFAULT_TIMEOUT_S = 6 * 3600.0  # override with LOSSVAL_VALUATION_TIMEOUT_S
TIMEOUT_ENV = "LOSSVAL_VALUATION_TIMEOUT_S"


def valuation_timeout_s() -> float:
    """How long a flow waits for its valuation on a deployment: ``LOSSVAL_VALUATION_TIMEOUT_S``, else 6 hours.

    Raises:
        ConfigError: the variable is not a positive number of seconds (``2h`` was a bare ValueError, and a
            negative number failed inside Prefect after the run had started).
    """
    import math

    from lossval.errors import ConfigError

    text = os.environ.get(TIMEOUT_ENV)
    if text is None or not text.strip():
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{TIMEOUT_ENV}={text!r} is not a positive number of seconds (e.g. 21600 for 6 hours).")
    return value


def config_to_raw(config: PipelineConfig) -> dict[str, Any]:
    """The config as a YAML-shaped mapping (``config_from_dict`` gives it back), with no remote valuation.

    Paths in a loaded config are already absolute, so the mapping does not depend on a folder.
    """
    raw = config.file_dict()
    if not raw["features"]["numeric"]:  # only when set, so a worker on a lossval without features.numeric takes it
        del raw["features"]["numeric"]
    # The champion comparison happens in the calling flow; its options go only when not at their defaults, so a
    # worker on a lossval without them takes the configs it can value.
    newer = {"compare_with_champion": True, "allow_schema_change": False}
    raw["gate"] = {k: v for k, v in raw["gate"].items() if k not in newer or v != newer[k]}
    newer_lossval = {"clip_outliers": True, "average_duplicates": True}  # options of VALUES_VERSION 6
    raw["lossval"] = {k: v for k, v in raw["lossval"].items() if k not in newer_lossval or v != newer_lossval[k]}
    # The rows a reviewer put back are the calling flow's to prune by: the worker values, and may not hold that file
    # (its config would read it) nor know the key (a worker of an older release refuses it).
    raw["pruning"].pop("keep_ids", None)
    # The gate runs in the calling flow too; a suite file given by path is the caller's, and the worker's config would
    # read it at load (and fail where the worker does not hold that path).
    raw["gate"].pop("suite", None)
    raw["valuation_deployment"] = None  # the deployment values in its own process; never recurse
    return raw


@flow(name=VALUE_FLOW_NAME, log_prints=True)
def value_remote(train: str, validation: str, key: str, config: dict[str, Any], workspace: str) -> dict:
    """Value the train rows (the ``value`` task) where this flow runs; outputs go to ``<workspace>/values/<key>/``.

    Args:
        train, validation: Parquet paths of the split (as seen by this machine).
        key: The valuation key (see :func:`tasks.value.valuation_key`).
        config: The pipeline config as :func:`config_to_raw` gives it.
        workspace: Workspace folder, shared with the calling flow.

    Returns:
        The ``value`` task's record (paths, task kind, seconds, device).
    """
    cfg = config_from_dict(config, source="valuation_deployment parameters")
    # Same cache records (in the shared workspace) as the in-process path in flows/clean.py.
    vals = value_cached(train, validation, key=key, config=cfg, workspace=workspace)
    get_run_logger().info("valuation %s done on %s in %.1fs", key, vals["device"], vals["seconds"])
    return vals


def _cancel(run: Any, why: str) -> None:
    """Cancel a valuation run the caller no longer waits for (queued: at once; running: its worker stops it).

    Left alone, a queued run piles up night after night until a worker returns and runs them all, and
    a running one keeps writing ``values/<key>/`` after the caller released the dataset's lock.
    """
    from prefect import get_client
    from prefect.states import Cancelled, Cancelling

    state = run.state
    new = Cancelling(message=why) if state is not None and state.is_running() else Cancelled(message=why)
    try:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(run.id, new, force=True)
    except Exception as exc:  # the error about the timeout is the one to raise; this one is said beside it
        get_run_logger().warning("could not cancel valuation run %s: %s; cancel it in the Prefect UI", run.name, exc)


def value_on_deployment(train: str, validation: str, *, key: str, config: PipelineConfig, workspace: str,
                        timeout_s: float | None = None, poll_interval_s: float = 2.0) -> dict:
    """Run the valuation on ``config.valuation_deployment`` and wait; returns the same record as the ``value`` task.

    Raises:
        SetupError: the deployment does not exist, its run did not complete, it did not finish within
            the timeout (is a worker running on its pool?), or its outputs are missing from the workspace.
    """
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    name = config.valuation_deployment
    assert name is not None
    if timeout_s is None:
        timeout_s = valuation_timeout_s()
    log = get_run_logger()
    log.info("valuation runs on deployment %s", name)
    try:
        run = run_deployment(name=name, parameters={"train": train, "validation": validation, "key": key,
                                                    "config": config_to_raw(config), "workspace": workspace},
                             timeout=timeout_s, poll_interval=poll_interval_s, flow_run_name=f"value-{key[:12]}")
    except ObjectNotFound:
        raise SetupError(f"valuation deployment {name!r} not found on the Prefect server; register it with "
                           f"`lossval serve --valuation-pool POOL` or `prefect deploy`, or set valuation_deployment: "
                           "null to value in-process.") from None
    state = run.state
    if state is None or not state.is_final():
        _cancel(run, f"the calling flow stopped waiting after {timeout_s:.0f}s")
        raise SetupError(f"valuation run {run.name} on {name!r} did not finish within {timeout_s:.0f}s (state "
                           f"{state.name if state else 'unknown'}); is a worker running on its work pool "
                           "(`prefect worker start --pool <pool>`)?")
    if not state.is_completed():
        raise SetupError(f"valuation run {run.name} on {name!r} ended {state.name}: {state.message}")
    out = Workspace.at(workspace).values_dir(key)
    values_path, report_path = out / "values.parquet", out / "valuation.json"
    if not values_path.exists() or not report_path.exists():
        raise SetupError(f"valuation run {run.name} completed but {out} holds no values.parquet/valuation.json; "
                           "does the worker see the workspace at the same path?")
    report = read_json(report_path)
    if report.get("values_version") != VALUES_VERSION:
        raise SetupError(
            f"valuation run {run.name} on {name!r} computed its values under VALUES_VERSION "
            f"{report.get('values_version')}, and this flow's lossval is at {VALUES_VERSION}: the worker runs another "
            "lossval release, whose values differ. Install this release on the worker, then run again (it values "
            "the rows again rather than reuse these).")
    return {"values": str(values_path), "encoder": str(out / "encoder.json"), "report": str(report_path),
            "task": report["task"], "seconds": float(report["seconds"]), "device": str(report["device"]),
            "flow_run_id": str(run.id)}
