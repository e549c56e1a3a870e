"""Stage 6/7 bookkeeping: one MLflow parent run per flow run, a nested run per stage, and
promotion through registry aliases.

MLflow is imported inside these tasks (its import takes seconds). Everything goes through an
``MlflowClient`` of lossval's own, so a caller's MLflow settings and active run are left alone.
The model is an MLflow pyfunc model built from code (:mod:`lossval.serving`; no pickle): the
encoder and the network together, so it predicts from the data's own columns.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import re
import socket
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task

from lossval.config import PipelineConfig, mask_secrets, mask_uri
from lossval.errors import LossvalError, UnseenLevelsWarning
from lossval.io import pause_point, pid_namespace, read_json
from lossval.landing import dataset_lock
from tasks._paths import Workspace
from tasks._scoped import quieted_loggers
from tasks.gate import shared_failures
from tasks.prune import lowest_value_rows

__all__ = ["track", "promote", "log_manifest", "valuation_params", "tracking_uri", "registered_model_name",
           "mlflow_client", "values_histogram", "close_abandoned_runs"]


def registered_model_name(config: PipelineConfig) -> str:
    """The registered model the runs of ``config`` promote: ``tracking.registered_model`` or ``lossval-<dataset>``."""
    return config.tracking.registered_model or f"lossval-{config.dataset}"


def tracking_uri(config: PipelineConfig, workspace: str) -> str:
    """The configured URI, or ``sqlite:///<workspace>/mlflow.db``."""
    return config.tracking.uri or f"sqlite:///{Path(workspace).resolve() / 'mlflow.db'}"


# While lossval's tasks talk to MLflow (the caller's own MLflow calls keep their settings): fail in
# seconds, not after MLflow's ~4 minutes of retries, when the server is unreachable; and no
# progress bars for copying the model's small local artifacts.
_MLFLOW_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
                    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


@contextlib.contextmanager
def _scoped_process_state() -> Iterator[None]:
    """Quiet MLflow's loggers and progress bars, shorten its HTTP retries while lossval logs; put all back after.

    lossval's flow may run inside someone else's process (a parent flow, a notebook): it must
    not leave that process's loggers, environment or MLflow settings changed.
    """
    saved_env = {k: os.environ.get(k) for k in _MLFLOW_SETTINGS}
    for k, v in _MLFLOW_SETTINGS.items():
        os.environ.setdefault(k, v)
    try:
        # MLflow's database layer logs its own ERROR with a long SQLAlchemy traceback before raising; lossval
        # reports the failure in one line (_reason), so that logger is quiet here.
        with quieted_loggers("mlflow", "alembic"), quieted_loggers("mlflow.store.db.utils", level=logging.CRITICAL):
            yield
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def mlflow_client(uri: str, *, doing: str = "", then: str = "") -> Iterator[Any]:
    """An ``MlflowClient`` of lossval's own for ``uri``, with MLflow's process-wide state left alone.

    MLflow's tracking URI, active experiment and active run are neither read nor changed, so a
    caller's own MLflow run and settings are untouched. A failure to make the client, or an
    MLflow or connection failure in the block, becomes a :class:`LossvalError` whose message
    names the tracking URI with its password masked, then ``doing`` (" while logging") and
    ``then`` (what it means for the caller).
    """
    with _scoped_process_state():
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
        from requests.exceptions import RequestException

        try:
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        except Exception as exc:  # noqa: BLE001 (a malformed URI, a missing plugin)
            raise LossvalError(f"MLflow tracking at {mask_uri(uri)} is unreachable or unusable ({_reason(exc)}).{then}"
                               ) from None
        try:
            yield client
        except (MlflowException, RequestException) as exc:  # the server is unreachable or went away
            raise LossvalError(f"MLflow tracking at {mask_uri(uri)} failed{doing} ({_reason(exc)}).{then}") from None


@contextlib.contextmanager
def _mlflow(uri: str, experiment: str, workspace: str) -> Iterator[tuple[Any, str]]:
    """:func:`mlflow_client` and the id of ``experiment`` (created with artifacts in the workspace).

    Failures at set-up or while logging become a :class:`LossvalError` that says the run's data
    outputs are complete.
    """
    then = " The data outputs of this run are complete; fix tracking and rerun."
    with mlflow_client(uri, doing=" while logging", then=then) as client:
        try:
            exp = client.get_experiment_by_name(experiment)
            if exp is None:
                location = (Path(workspace).resolve() / "mlartifacts").as_uri() if uri.startswith("sqlite:") else None
                experiment_id = client.create_experiment(experiment, artifact_location=location)
            else:
                experiment_id = exp.experiment_id
        except Exception as exc:  # MlflowException, connection errors, sqlite errors
            raise LossvalError(f"MLflow tracking at {mask_uri(uri)} is unreachable or unusable ({_reason(exc)}).{then}"
                               ) from None
        yield client, experiment_id


@contextlib.contextmanager
def _run(client: Any, experiment_id: str, *, run_name: str, tags: dict[str, str],
         start_time: int | None = None) -> Iterator[str]:
    """A run created through ``client``: FINISHED when the block ends, FAILED when it raises.

    ``start_time`` (milliseconds since the epoch) is when the run began, for a run created after
    the work it records (default: now); it ends when the block does.

    Tagged with this host and process, so that if the process is killed outright (SIGKILL, the
    OOM killer) the next run on this host closes the run it left RUNNING
    (:func:`close_abandoned_runs`).
    """
    run_id = client.create_run(experiment_id, start_time=start_time, run_name=run_name,
                               tags={**tags, **_process_tags()}).info.run_id
    try:
        yield run_id
    except BaseException:
        with contextlib.suppress(Exception):
            client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


def _process_tags() -> dict[str, str]:
    """Which process logs: host, and pid with the process's start time (a reused pid is not taken for it)."""
    tags = {"lossval_host": socket.gethostname(), "lossval_process": _process_token(os.getpid()) or str(os.getpid())}
    namespace = pid_namespace()
    if namespace:  # a pid means something only in its namespace (containers may share a host name)
        tags["lossval_pid_ns"] = namespace
    return tags


def _process_token(pid: int) -> str | None:
    """``<pid>:<start time in clock ticks after boot>`` from ``/proc``; None where it has no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return f"{pid}:{stat[stat.rindex(')') + 2:].split()[19]}"  # field 22, counted after "pid (comm) "


def _process_gone(token: str) -> bool:
    """Whether the process a ``lossval_process`` tag names has ended (False when that cannot be told)."""
    pid_text, _, started = token.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if started and Path("/proc/self/stat").exists():
        return _process_token(pid) != token
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # someone else's live process
        return False
    return False


def _artifacts_elsewhere(client: Any, experiment_id: str, uri: str, workspace: str) -> str | None:
    """The experiment's artifact folder when the workspace's own store puts it outside the workspace, else None.

    In a SQLite store of the user's choosing, only MLflow's Default experiment is looked at: its folder is the one the
    store was first opened from, which nobody chose; other experiments' artifacts are where the user put them."""
    from urllib.parse import unquote, urlparse

    root = Path(workspace).resolve()
    own_store = uri == f"sqlite:///{root / 'mlflow.db'}"  # else a store of the user's choosing
    raw = client.get_experiment(experiment_id).artifact_location or ""
    location = urlparse(raw)
    if location.scheme == "file" and own_store:  # in the user's store, artifacts are where its experiments say
        folder = Path(unquote(location.path))
    elif raw and not location.scheme and (own_store or (uri.startswith("sqlite:") and str(experiment_id) == "0")):
        folder = Path(raw).resolve()  # MLflow's own Default experiment's, under the opening folder: not the user's pick
    else:
        return None
    return None if folder.is_relative_to(root) else str(folder)


def _elsewhere_warning(experiment: str, experiment_id: str, folder: str) -> str:
    """What to say about an experiment of the workspace's store whose artifacts lie outside the workspace."""
    if str(experiment_id) == "0":  # MLflow made it with the store, its artifacts under the folder it was opened from
        return (f"tracking.experiment {experiment!r} is MLflow's own default experiment, which keeps its artifacts "
                f"in {folder}, outside the workspace (under the folder this store was first opened from): this run's "
                "model goes there. Set tracking.experiment to a name of your own: lossval creates that experiment "
                "with its artifacts in the workspace.")
    return (f"this workspace's MLflow experiment {experiment!r} keeps its artifacts in {folder}, outside the workspace "
            "(it was moved or copied; MLflow records absolute paths): this run's model goes there too, and models "
            "registered before the move are read from there. Move the workspace back, or point tracking.uri at a new "
            "store.")


def close_abandoned_runs(client: Any, experiment_id: str) -> list[str]:
    """Mark KILLED the runs of ``experiment_id`` that a lossval process on this host left RUNNING and is gone.

    A run killed outright cannot close its MLflow runs; they would show as running forever.
    Only runs tagged with this host are looked at, and only those whose process has ended.

    Returns:
        The ids of the runs closed.
    """
    host, namespace = socket.gethostname(), pid_namespace()
    if "'" in host or "\\" in host:  # cannot be quoted in a search filter: leave its runs alone
        return []
    closed = []
    for run in client.search_runs([experiment_id], max_results=1000,
                                  filter_string=f"attributes.status = 'RUNNING' and tags.lossval_host = '{host}'"):
        token = run.data.tags.get("lossval_process", "")
        if run.data.tags.get("lossval_pid_ns", namespace) != namespace:
            continue  # another container on this host: its pid cannot be checked from here
        if token and _process_gone(token):
            client.set_tag(run.info.run_id, "lossval_abandoned", f"process {token} ended without closing this run")
            client.set_terminated(run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
    return closed


def _log(client: Any, run_id: str, *, params: dict[str, str] | None = None, metrics: dict[str, float] | None = None,
         series: dict[str, list[float]] | None = None) -> None:
    """Params, metrics (step 0) and ``series`` (one metric per step) in batches of MLflow's limits
    (100 params, 1000 metrics per call)."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    entries = [Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()]
    entries += [Metric(k, float(v), now, step) for k, values in (series or {}).items() for step, v in enumerate(values)]
    for kind, batch_size, items in (("params", 100, [Param(k, v) for k, v in (params or {}).items()]),
                                    ("metrics", 1000, entries)):
        for i in range(0, len(items), batch_size):
            client.log_batch(run_id, **{kind: items[i:i + batch_size]})


# Numbers in a stage record that describe the model rather than measure the run: a stage's
# run logs them as params, so the MLflow UI does not chart a network's width as a result.
SHAPE_PARAMS = frozenset({"n_inputs", "n_outputs", "n_layers", "width"})

# MLflow keeps at most this many characters of a param value and cuts the rest with a warning.
PARAM_VALUE_LIMIT = 6000
#: Text tags (gate_failures, params_unused) stay below MLflow's 8000-character tag limit, cut by us, saying so.
TAG_TEXT_LIMIT = 5000
#: The run description (mlflow.note.content, a tag that promote() rewrites) before its registry line: the whole
#: stays below MLflow's 8000 characters, so the verdict, what to do and the registry line always show.
DESCRIPTION_LIMIT = 6500
FAILURES_SHOWN = 8  # gate failures listed in the description; the rest are counted
FAILURE_TEXT_LIMIT = 600  # characters of one failure in the description
CONFIG_ARTIFACT = "config/config.json"
GATE_ARTIFACT = "gate/gate.json"  # the gate stage's gate.json, logged under gate/


def fit_params(params: dict[str, str], *, limit: int = PARAM_VALUE_LIMIT) -> dict[str, str]:
    """``params`` with each value MLflow would cut shortened by us instead, saying so.

    MLflow's own cut leaves a fragment that reads like a whole value (a JSON list of 400 column
    names stops mid-list); ours ends with the full length and where the whole config is.
    """
    return {key: _cut(text, limit, f"the whole config is the artifact {CONFIG_ARTIFACT}") for key, text in params.items()}


# A line of a database error that names its cause: SQLAlchemy writes "(sqlite3.OperationalError) attempt to write
# a readonly database" after remarks of its own ("(raised as a result of Query-invoked autoflush; ...)").
_CAUSE_LINE = re.compile(r"^\((?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception)\) ")


def _reason(exc: BaseException) -> str:
    """One line about ``exc``, with any password in a quoted URL masked: its first line, or the line naming
    a database error's cause where SQLAlchemy put a remark first."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    line = next((ln for ln in lines if _CAUSE_LINE.match(ln)), lines[0] if lines else "")
    return mask_secrets(f"{type(exc).__name__}: {line[:200]}")


def values_histogram(values: np.ndarray, threshold: float | None, path: Path,
                     quarantined: np.ndarray | None = None) -> Path:
    """PNG histogram of the values: the rows actually quarantined in orange, the policy's threshold a dashed red line.

    The two differ when ``max_prune_fraction`` or class protection chose which flagged rows go,
    so the plot shows both rather than a line that is not the real cut.
    """
    # A Figure of its own, not pyplot: the caller's matplotlib backend and open figures are left alone.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), dpi=100)
    ax = fig.subplots()
    _, bins, _ = ax.hist(values, bins=50, color="#4a78b5", label="training rows")
    if quarantined is not None and quarantined.any():
        ax.hist(values[quarantined], bins=bins, color="#e67e22", label=f"quarantined ({int(quarantined.sum())})")
    if threshold is not None and np.isfinite(threshold):
        ax.axvline(threshold, color="#c0392b", linestyle="--", label=f"policy threshold {threshold:.3g}")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left")
    ax.set_xlabel("LossVal value (higher = more valuable)")
    ax.set_ylabel("training rows")
    ax.set_title("Distribution of row values")
    fig.tight_layout()
    fig.savefig(path)
    return path


@task(name="track")
def track(*, config: PipelineConfig, workspace: str, run_name: str, flow_run_id: str, stages: dict[str, Any],
          snapshot_hash: str, gate: dict, pruning: dict, run_key: str | None = None, run_dir: str | None = None,
          lossval_run_id: str | None = None, started: dt.datetime | None = None) -> dict:
    """Log the parent run, one nested run per stage, metrics, artifacts and the "after" model.

    The model is a pyfunc model (:mod:`lossval.serving`): the user's own feature columns in,
    labels and class probabilities (or the target) out.

    A rerun whose ``run_key`` already has a registered version logs no second copy of the model:
    its ``model_source`` is that version's.

    ``run_dir`` and ``lossval_run_id`` become tags, so a reviewer finds the run folder (manifest,
    quarantine) from the MLflow run.

    ``started`` is when the pipeline run began (timezone-aware): the parent run starts then, not when
    tracking does, so its duration in the MLflow UI is the whole run's (it ends with this task).

    Returns ``{"run_id", "experiment_id", "model_uri", "model_source", "tracking_uri"}``.
    """
    import lossval

    uri = tracking_uri(config, workspace)
    retrain, prune, value = stages["retrain"], stages["prune"], stages["value"]
    metrics = retrain["metrics"]
    rows_train = stages["split"]["rows"]["train"]
    valuation_report = Path(value["values"]).with_name("valuation.json")
    private = not config.tracking.log_quarantine  # then no data row, or value of one, goes to the store
    # a summary check's observed value (a column's max, its distinct values) is one: the gate's words too
    gate = {**gate, "failures": shared_failures(gate, private=private)}
    with _mlflow(uri, config.tracking.experiment, workspace) as (client, experiment_id), \
            tempfile.TemporaryDirectory() as tmp:
        tags = {"dataset": config.dataset, "snapshot": snapshot_hash, "prefect_flow_run_id": flow_run_id,
                "gate": "passed" if gate["passed"] else "failed", "task": retrain["task"],
                "prune_cap_hit": str(bool(prune["cap_hit"])).lower(), "lossval_version": lossval.__version__,
                "valuation_cached": str(bool(value.get("cached"))).lower(),
                "values_version": str(value.get("values_version", "unknown")),
                "mlflow.note.content": _run_description(config, stages, gate, pruning)}
        tags.update({k: v for k, v in (("run_dir", run_dir), ("lossval_run_id", lossval_run_id)) if v})
        unused = config.unused_keys(task=retrain["task"])
        if unused:  # every key is a param, defaults included: say which ones this run's choices leave unread
            tags["params_unused"] = _cut("; ".join(f"{k} ({why})" for k, why in unused.items()), TAG_TEXT_LIMIT,
                                         f"the config is the artifact {CONFIG_ARTIFACT}")
        review = pruning.get("keep_ids")
        if review:  # the pruning.keep_ids param is the file's path: which list it held, this says
            tags["keep_ids"] = (f"sha256 {review['sha256'][:16]}: {review['listed']} row id(s) listed, "
                                f"{review['found']} of them training rows of this run ({review['path']})")
        champion = gate.get("champion") or {}
        if champion.get("metrics"):
            tags["champion_version_compared"] = str(champion["champion"])
        if not gate["passed"]:
            tags["gate_failures"] = _cut("; ".join(gate["failures"]), TAG_TEXT_LIMIT,
                                         f"the whole list is the artifact {GATE_ARTIFACT}")
        elsewhere = _artifacts_elsewhere(client, experiment_id, uri, workspace)
        if elsewhere:
            get_run_logger().warning("%s", _elsewhere_warning(config.tracking.experiment, experiment_id, elsewhere))
        try:
            closed = close_abandoned_runs(client, experiment_id)
        except Exception as exc:  # noqa: BLE001 (housekeeping: it must not fail the run's own tracking)
            get_run_logger().warning("could not look for MLflow runs left RUNNING by killed runs: %s", _reason(exc))
        else:
            if closed:
                get_run_logger().warning("marked %d MLflow run(s) KILLED that a killed lossval process had left "
                                         "RUNNING: %s", len(closed), ", ".join(closed))
        start_time = int(started.timestamp() * 1000) if started is not None else None
        with _run(client, experiment_id, run_name=run_name, tags=tags, start_time=start_time) as parent:
            flat = {f"{when}_{name}": v for when in ("before", "after") for name, v in metrics[when].items()}
            flat.update(rows_train=rows_train, rows_kept=prune["rows_kept"], rows_pruned=prune["rows_pruned"],
                        rows_flagged=prune["flagged"], rows_protected=prune["protected"],
                        rows_kept_together=prune.get("kept_together", 0), rows_reviewed=prune.get("reviewed", 0),
                        prune_fraction=prune["rows_pruned"] / max(rows_train, 1),
                        clipped_values=value.get("clipped_values", 0),
                        clipped_validation_values=value.get("clipped_validation_values", 0),
                        duplicate_rows=value.get("duplicate_rows", 0),
                        test_outlier_values=retrain.get("test_outlier_values", 0))
            flat.update({f"temperature_{when}": t for when, t in (retrain.get("temperature") or {}).items()})
            flat.update({f"champion_{name}": v for name, v in (champion.get("metrics") or {}).items()})
            if prune.get("threshold") is not None and np.isfinite(prune["threshold"]):
                flat["threshold"] = prune["threshold"]
            report = read_json(valuation_report) if valuation_report.is_file() else {}
            _log(client, parent, params=fit_params({**config.flat_params(), **valuation_params(report)}), metrics=flat)
            pause_point("track")  # test-only hook: a fault test kills the run while its MLflow run is open
            client.log_dict(parent, config.public_dict(), CONFIG_ARTIFACT)  # params cut at 6000 characters; this is not
            vals = pd.read_parquet(value["values"])
            client.log_artifact(parent, value["values"], artifact_path="values")
            if valuation_report.is_file():  # resolved settings, values version, per-epoch loss
                client.log_artifact(parent, str(valuation_report), artifact_path="values")
            if prune["paths"].get("decisions"):  # every row's value and outcome (flagged rows the cap kept included)
                client.log_artifact(parent, prune["paths"]["decisions"], artifact_path="values")
            quarantine = pd.read_parquet(prune["paths"]["quarantine"], columns=["row_id"])
            if config.tracking.log_quarantine:  # every pruned row, whole, with its value and reason
                client.log_artifact(parent, prune["paths"]["quarantine"], artifact_path="quarantine")
            try:  # a review aid: a table that cannot be built or logged must not fail the run's tracking
                client.log_table(parent, lowest_value_rows(value["values"], prune["paths"]["kept"],
                                                           prune["paths"]["quarantine"], target=config.target,
                                                           max_data_columns=0 if private else 12,
                                                           held_back=prune.get("held_back"),
                                                           id_column=config.id_column),
                                 artifact_file="lowest_values.json")
            except Exception as exc:  # noqa: BLE001
                get_run_logger().warning("lowest_values.json not logged: %s: %s", type(exc).__name__, exc)
            hist = values_histogram(vals["value"].to_numpy(), prune["threshold"], Path(tmp) / "values_histogram.png",
                                    quarantined=vals["row_id"].isin(quarantine["row_id"]).to_numpy())
            client.log_artifact(parent, str(hist), artifact_path="plots")
            if private:  # GX lists sample values of the rows an expectation failed on, and observes some; the range
                # checks' bounds are the validation split's min and max, widened by a known margin
                from tasks.gx import without_range_bounds

                shared = {**without_row_values(without_range_bounds(read_json(gate["result_path"]))),
                          "failures": gate["failures"]}
                client.log_dict(parent, shared, f"gate/{Path(gate['result_path']).name}")
            else:
                client.log_artifact(parent, gate["result_path"], artifact_path="gate")
            for stage, record in stages.items():
                extra_tags = {}
                if stage == "value" and record.get("cached"):  # older reports do not say when they were valued
                    when = f", valued at {report['valued_at']}" if report.get("valued_at") else ""
                    extra_tags["values_from"] = f"an earlier run{when}: valuation_seconds and epoch_loss are that fit's"
                fields = {**{k: str(v)[:500] for k, v in record.items() if isinstance(v, str)},
                          **{k: str(v).lower() for k, v in record.items() if isinstance(v, bool)}}
                if stage == "prune":  # the parent run's tag name, so one search finds both
                    fields = {_PRUNE_TAGS.get(k, k): v for k, v in fields.items()}
                with _run(client, experiment_id, run_name=stage,
                          tags={"mlflow.parentRunId": parent, "stage": stage, **fields, **extra_tags}) as child:
                    numbers = {k: v for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
                    if stage == "prune":  # the parent run's names, so one search or chart finds both
                        numbers = {_PRUNE_NAMES.get(k, k): v for k, v in numbers.items()}
                    if stage == "retrain":  # the stage's own result: the test metrics of both models
                        numbers.update({f"{when}_{name}": v for when in ("before", "after")
                                        for name, v in (record.get("metrics") or {}).get(when, {}).items()})
                    _log(client, child, params={k: str(v) for k, v in numbers.items() if k in SHAPE_PARAMS},
                         metrics={k: float(v) for k, v in numbers.items() if k not in SHAPE_PARAMS},
                         series={"epoch_loss": record["history_loss"]} if stage == "value" else None)
            registered = _version_with_key(client, registered_model_name(config), run_key) if run_key else None
            if registered is not None:
                from tasks.champion import unusable_model

                problem = unusable_model(uri, str(registered.source))
                if problem:  # its files are gone (a cleaned workspace): log the model again; promote() registers it
                    get_run_logger().warning("version %s of %s, registered by an earlier run of the same key, cannot be "
                                             "loaded (%s): this run logs its model again and registers a new version",
                                             registered.version, registered_model_name(config), problem)
                    registered = None
            if registered is not None:  # a rerun of the same data and config: promote() reuses that version
                source = str(registered.source)
                client.set_tag(parent, "model_logged_by", f"version {registered.version} (same run key; not logged again)")
            else:
                model_dir = save_pyfunc_model(Path(tmp) / "model", encoder=value["encoder"], retrain=retrain,
                                              test=stages["split"]["paths"]["test"], input_example=not private)
                client.log_artifacts(parent, str(model_dir), artifact_path="model")
                source = f"{client.get_run(parent).info.artifact_uri.rstrip('/')}/model"
        return {"run_id": parent, "experiment_id": experiment_id,
                "model_uri": f"runs:/{parent}/model" if registered is None else source,
                "model_source": source, "tracking_uri": mask_uri(uri)}


# The prune stage's record keys that the parent run logs under another name: metrics, then tags
# (class_cap_hit, which the parent does not log, takes the same prefix).
_PRUNE_NAMES = {"flagged": "rows_flagged", "protected": "rows_protected", "kept_together": "rows_kept_together",
                "reviewed": "rows_reviewed"}
_PRUNE_TAGS = {"cap_hit": "prune_cap_hit", "class_cap_hit": "prune_class_cap_hit"}


def valuation_params(report: dict) -> dict[str, str]:
    """``valuation.<key>`` params: every LossVal setting the fit used, ``auto`` and ``None`` resolved.

    ``report`` is the valuation's ``valuation.json``. The config's ``lossval`` section holds only
    what the user changed; these say what the valuation actually ran with, ``batch_size``,
    ``val_subsample`` and ``average_last`` as the fit changed them (an older cached report without the
    resolved network, blur or these three gives those as configured).
    """
    import json

    used = {**(report.get("params") or {}), **(report.get("settings") or {}), **(report.get("network") or {}),
            **(report.get("resolved") or {})}
    if report.get("blur") is not None:
        used["blur"] = report["blur"]
    if report.get("device"):
        used["device"] = report["device"]
    used.pop("verbose", None)
    return {f"valuation.{k}": json.dumps(v, ensure_ascii=False) if isinstance(v, (bool, type(None), list, dict)) else str(v)
            for k, v in sorted(used.items())}


MANIFEST_ARTIFACT = "run/manifest.json"


@task(name="log-manifest")
def log_manifest(*, config: PipelineConfig, workspace: str, run_id: str, manifest: dict) -> None:
    """Log the run folder's ``manifest.json`` (outputs, checksums, rows, timings, the model) with the MLflow run.

    The manifest holds no data rows (counts, paths, column names), so it is logged whatever
    ``tracking.log_quarantine`` says; with it false, its gate failures are logged with a summary check's observed
    value, a value of the rows, withheld (:func:`tasks.gate.shared_failures`).
    """
    if not config.tracking.log_quarantine and manifest.get("gate"):
        gate = {**manifest["gate"], "failures": shared_failures(manifest["gate"], private=True)}
        manifest = {**manifest, "gate": gate}
    uri = tracking_uri(config, workspace)
    with _mlflow(uri, config.tracking.experiment, workspace) as (client, _):
        client.log_dict(run_id, manifest, MANIFEST_ARTIFACT)


# Keys of a GX result that hold values of the rows an expectation failed on.
_ROW_VALUE_KEYS = frozenset({"partial_unexpected_list", "partial_unexpected_counts", "unexpected_list",
                             "unexpected_rows", "details"})


def without_row_values(result: Any, *, expectation_type: str | None = None) -> Any:
    """A gate result (``gate.json``) without GX's samples of unexpected values, and with the observed value of an
    expectation whose observed value is a value of the rows (a column's max, mean, distinct or most common values:
    :func:`tasks.gx.observed_is_data`) said to be withheld: what goes to the tracking store when
    ``tracking.log_quarantine`` is false. Counts and percentages stay (a row count is observed too).

    ``expectation_type``: the expectation ``result`` belongs to (its ``result`` part is inside it)."""
    from tasks.gx import WITHHELD, observed_is_data

    if isinstance(result, dict):
        named = result.get("expectation_type", result.get("type"))
        kind = named if isinstance(named, str) and named.startswith("expect_") else expectation_type
        return {k: WITHHELD if k in ("observed", "observed_value") and v is not None and observed_is_data(kind or "?")
                else without_row_values(v, expectation_type=kind)
                for k, v in result.items() if k not in _ROW_VALUE_KEYS}
    if isinstance(result, list):
        return [without_row_values(v, expectation_type=expectation_type) for v in result]
    return result


def save_pyfunc_model(path: Path, *, encoder: str, retrain: dict, test: str, input_example: bool = True) -> Path:
    """Save the retrained model as an MLflow pyfunc model in ``path`` (see :mod:`lossval.serving`).

    Built from code, not pickled: ``lossval/_mlflow_model.py`` with lossval's own modules under
    ``code/``, so loading it needs torch, numpy and pandas but not an installed lossval.
    ``input_example=False`` saves no example rows with it (the signature, types only, is still saved).
    """
    import shutil

    import mlflow.pyfunc
    import pyarrow
    import torch

    import lossval
    from lossval.encoding import TabularEncoder
    from lossval.serving import MODEL_CODE, MODEL_SPEC_NAME, LossvalPyfunc, example_rows, model_signature, write_model_spec

    work = path.parent / f"{path.name}-parts"
    package = work / "lossval"
    package.mkdir(parents=True)
    for module in Path(lossval.__file__).parent.glob("*.py"):
        shutil.copy2(module, package / module.name)
    network = write_model_spec(work / MODEL_SPEC_NAME, n_inputs=retrain["n_inputs"], n_outputs=retrain["n_outputs"],
                               task=retrain["task"], n_layers=retrain["n_layers"], width=retrain["width"])
    artifacts = {"encoder": str(encoder), "weights": str(retrain["model_state"]), "network": str(network)}
    fitted = TabularEncoder.load(encoder)
    example = example_rows(pd.read_parquet(test), fitted.feature_columns_)
    with warnings.catch_warnings():  # the test file's unseen levels were warned about when it was read
        warnings.simplefilter("ignore", UnseenLevelsWarning)
        if not input_example:  # left out on purpose (tracking.log_quarantine: false): MLflow's advice is noise
            warnings.filterwarnings("ignore", message=r".*input example was not provided", category=UserWarning)
        predicted = LossvalPyfunc().load(**artifacts).predict(None, example)
        mlflow.pyfunc.save_model(
            str(path), python_model=str(MODEL_CODE), artifacts=artifacts, code_paths=[str(package)],
            signature=model_signature(example, predicted, text_columns=fitted.categorical or ()),
            input_example=example if input_example else None,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"pandas=={pd.__version__}",
                              f"numpy=={np.__version__}", f"pyarrow=={pyarrow.__version__}"])
    return path


def _run_description(config: PipelineConfig, stages: dict[str, Any], gate: dict, pruning: dict) -> str:
    """The run's description in the MLflow UI: what was pruned and what the gate decided, in words.

    ``pruning`` is the manifest's pruning record (:func:`tasks.prune.describe_pruning` words it).
    """
    from tasks.prune import describe_pruning

    prune, metrics = stages["prune"], stages["retrain"]["metrics"]
    lines = [f"lossval cleaning run of **{config.dataset}**: {stages['split']['rows']['train']} training rows, "
             f"{prune['rows_kept']} kept, {prune['rows_pruned']} quarantined."
             + (" The after model trained on all of them, each weighted by its value (retrain.mode: soft)."
                if config.retrain.mode == "soft" else ""), "",
             f"Pruning: {describe_pruning(pruning)}", "",
             "| metric | before | after |", "|---|---|---|"]
    theirs = (gate.get("champion") or {}).get("metrics") or {}
    if theirs:
        lines[-2:] = [f"| metric | before | after | champion (version {gate['champion']['champion']}) |",
                      "|---|---|---|---|"]
    lines += [f"| {k} | {metrics['before'][k]:.4f} | {metrics['after'][k]:.4f} |"
              + (f" {theirs[k]:.4f} |" if theirs else "") for k in metrics["before"]]
    from lossval.valuation import describe_clipped

    value = stages["value"]
    notes = [describe_clipped(value.get("clipped") or {}, value.get("clipped_validation") or {}),
             f"{value['duplicate_rows']} row(s) identical to another share its value"
             if value.get("duplicate_rows") else "",
             "reused from an earlier run on the same snapshot and settings" if value.get("cached") else ""]
    if any(notes):
        lines += ["", "Values: " + "; ".join(n for n in notes if n) + "."]
    failures = [_cut(f, FAILURE_TEXT_LIMIT, "in full in the artifact " + GATE_ARTIFACT) for f in gate["failures"]]
    shown = failures[:FAILURES_SHOWN]
    if len(failures) > len(shown):
        shown.append(f"and {len(failures) - len(shown)} more (every one is in the artifact {GATE_ARTIFACT})")
    lines += ["", "Gate: passed." if gate["passed"] else "Gate: **failed**, not promoted: " + "; ".join(shown) + "."]
    if not gate["passed"] and gate["remedies"]:
        lines += ["", _cut("What to do: " + " ".join(gate["remedies"]), FAILURE_TEXT_LIMIT * 2,
                           "every remedy is in the artifact " + GATE_ARTIFACT)]
    if gate.get("notes"):  # what the gate could not judge: a pass is read with these in mind (after the remedies)
        lines += ["", _cut("Gate notes: " + "; ".join(gate["notes"]) + ".", FAILURE_TEXT_LIMIT,
                           "in the artifact " + GATE_ARTIFACT)]
    # MLflow cuts a tag value at 8000 characters when promote() rewrites it: the registry line must fit.
    body = _cut("\n".join(lines), DESCRIPTION_LIMIT, f"the gate's findings are in the artifact {GATE_ARTIFACT}")
    return body + "\n\n" + REGISTRATION_PENDING


def _cut(text: str, limit: int, where: str) -> str:
    """``text``, or its first part and a note saying it was cut and where the rest is (never a silent fragment)."""
    if len(text) <= limit:
        return text
    note = f" ... [cut: {len(text)} characters in all; {where}]"
    return text[:max(0, limit - len(note))] + note


# The description's last line until promote() registers the model and says what it did (a failed
# registration leaves it, which is then true).
REGISTRATION_PENDING = "Model registry: not yet registered."


def replacing(version: str, previous: str | None) -> str:
    """`` (replacing version 2)`` when the champion changed, saying so when an older version returns; else ""."""
    if previous is None or str(previous) == str(version):
        return ""
    older = int(version) < int(previous) if str(version).isdigit() and str(previous).isdigit() else False
    return f" (replacing version {previous}{': an older version is champion again' if older else ''})"


def _registration_line(name: str, version: str, *, reused: bool, gate_passed: bool, champion: str | None,
                       previous: str | None = None) -> str:
    """The description's last line once :func:`promote` has registered (or found) the version."""
    again = " (this run key's earlier run registered it; not registered again)" if reused else ""
    if gate_passed:
        return f"Model registry: {name} version {version}{again} is champion{replacing(version, previous)}."
    if champion == version:  # a rerun of the champion's own key, refused this time: a refusal does not demote
        return (f"Model registry: {name} version {version}{again} stays champion: an earlier run of the same key "
                "promoted it, and this run's refused gate does not demote it.")
    return (f"Model registry: {name} version {version}{again} is challenger only; "
            + (f"version {champion} stays champion." if champion else "no version is champion yet."))


@task(name="promote")
def promote(*, config: PipelineConfig, workspace: str, model_source: str, run_id: str, run_key: str,
            gate_passed: bool, gate_champion: dict | None = None) -> dict:
    """Register the "after" model once per run key; alias ``challenger`` always, ``champion`` only when the gate passed.

    ``model_source`` is where :func:`track` logged the model (its artifact location).
    ``gate_champion`` is the gate's comparison with the champion (:func:`tasks.champion.compare_with_champion`),
    or None when the gate did not compare. When it did, ``champion`` moves only if it still points
    where it pointed when the gate compared: a run that another run's promotion overtook between its
    gate and here was never compared with the new champion, so it stays challenger (``refused``
    says why) and the caller treats it as refused.

    A rerun with the same snapshot, config and seed finds the version tagged with its
    ``run_key`` and reuses it instead of registering a duplicate, unless that version's model
    files can no longer be loaded (then :func:`track` logged the model again, and it is registered
    as a new version). A reused version's description and ``gate`` tag say this run's decision, and
    its ``run_dir`` and ``lossval_run_id`` tags name this run's folder.
    The registered model's ``target`` and ``task`` tags follow the champion.
    """
    from mlflow.exceptions import MlflowException

    name = registered_model_name(config)
    uri = tracking_uri(config, workspace)
    # One registration at a time per model on this workspace: two runs of the same key at the same
    # moment would otherwise both find no version and both register one.
    registry_lock = "registry-" + hashlib.sha256(f"{uri}|{name}".encode()).hexdigest()[:16]
    with dataset_lock(Workspace.at(workspace).locks_dir, registry_lock, timeout=600.0, holder=run_id), \
            _mlflow(uri, config.tracking.experiment, workspace) as (client, _):
        logged = client.get_run(run_id).data  # the run track() logged: its tags and metrics, read once
        # Tagged so that a registry search finds a dataset's model (tags.dataset = '...').
        model_tags = {"dataset": config.dataset, "target": config.target, "task": logged.tags.get("task", config.task),
                      "created_by": "lossval"}
        try:
            client.create_registered_model(name, description=_model_description(config.dataset, model_tags["task"]),
                                           tags=model_tags)
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
            has = client.get_registered_model(name).tags or {}  # a model registered before it was tagged: tag it
            for key, value in model_tags.items():
                if key not in has:
                    client.set_registered_model_tag(name, key, value)
        previous = _alias_version(client, name, "champion") if gate_passed else None
        existing = _version_with_key(client, name, run_key)
        if existing is not None and str(existing.source) != str(model_source):
            from tasks.champion import unusable_model

            if unusable_model(uri, str(existing.source)):  # track() logged the model again: register that one
                existing = None
        refused = None
        # The champion moved while this run was gated, unless it moved to this run's own model (a run of the same
        # key, data and config that finished first): then there is nothing to refuse.
        if gate_passed and gate_champion is not None and previous != gate_champion["champion"] and not (
                existing is not None and str(existing.version) == previous):
            compared = gate_champion["champion"]
            refused = (f"the champion changed while this run was gated: it is version {previous}, and the gate compared "
                       f"with {f'version {compared}' if compared else 'no champion'}. Rerun to compare with it")
        promoted = gate_passed and refused is None
        gate_failures = logged.tags.get("gate_failures")  # set by track() only when the gate refused
        if existing is not None:
            version = str(existing.version)
            reused = True
            # The version now stands for this run's gate decision, which may differ from the run that registered
            # it (the champion it was compared with has changed): its description and gate tag say the latest.
            still_champion = not promoted and _alias_version(client, name, "champion") == version
            client.update_model_version(name, version, description=_version_description(
                config, promoted, refused, still_champion=still_champion, gate_failures=gate_failures))
            client.set_model_version_tag(name, version, "gate", "passed" if gate_passed else "failed")
            client.set_model_version_tag(name, version, "gate_run", run_id)
            for key in ("run_dir", "lossval_run_id"):  # its run folder is this run's now (an older one may be deleted)
                if key in logged.tags:
                    client.set_model_version_tag(name, version, key, logged.tags[key])
        else:
            # what a registry reviewer needs without opening the run
            about = {k: logged.tags[k] for k in ("dataset", "snapshot", "lossval_run_id", "run_dir", "gate")
                     if k in logged.tags}
            about.update({k: f"{v:.6g}" for k, v in logged.metrics.items() if k.startswith("after_")})
            mv = client.create_model_version(name, model_source, run_id=run_id,
                                             tags={"lossval_run_key": run_key, "source_run": run_id, **about},
                                             description=_version_description(
                                                 config, promoted, refused, gate_failures=gate_failures))
            version, reused = str(mv.version), False
        client.set_registered_model_alias(name, "challenger", version)
        if promoted:
            client.set_registered_model_alias(name, "champion", version)
            model = client.get_registered_model(name)
            for key in ("target", "task"):  # the model's tags describe its champion (a run may change the target)
                if (model.tags or {}).get(key) != model_tags[key]:
                    client.set_registered_model_tag(name, key, model_tags[key])
            described = _model_description(config.dataset, model_tags["task"])
            if model.description != described and model.description in _lossval_descriptions(config.dataset):
                client.update_registered_model(name, description=described)  # ours, for another task: follows too
        client.set_tag(run_id, "registered_model", f"{name}/{version}")
        if refused:
            client.set_tag(run_id, "promotion_refused", refused)
        # Last, and for this run only (tasks.champion.refused_again): the champion its gate compared with, when a
        # rerun of this key would meet the same comparison; else no tag, so an older run's is never read as this one's.
        compared = _compared_champion(gate_champion)
        if compared is not None:
            client.set_model_version_tag(name, version, "champion_compared", f"{compared}@{run_id}")
        elif existing is not None and "champion_compared" in (existing.tags or {}):  # a new version has no tags
            client.delete_model_version_tag(name, version, "champion_compared")
        champion = version if promoted else _alias_version(client, name, "champion")
        note = logged.tags.get("mlflow.note.content", "")
        if REGISTRATION_PENDING in note:
            client.set_tag(run_id, "mlflow.note.content", note.replace(REGISTRATION_PENDING, _registration_line(
                name, version, reused=reused, gate_passed=promoted, champion=champion,
                previous=previous if promoted else None) + (f" Not promoted: {refused}." if refused else "")))
    return {"name": name, "version": version, "reused": reused, "champion": promoted, "champion_version": champion,
            "previous_champion": previous if promoted else None, "refused": refused}


def _model_description(dataset: str, task: str) -> str:
    """The registered model's description: what its champion takes and returns, for the champion's ``task``."""
    out = {"classification": "the predicted class (prediction) and one probability[<class>] column per class",
           "regression": "the predicted target, in its own units (prediction)"}.get(
        task, "prediction (and, for a classifier, one probability[<class>] column per class)")
    return f"lossval's retrained model for {dataset}: the raw feature columns in, {out} out."


def _lossval_descriptions(dataset: str) -> set[str]:
    """Every description :func:`promote` may have written for ``dataset``'s model, older releases' included: one
    of these may be replaced by the champion's; any other is someone's own and stays."""
    older = (f"lossval's retrained model for {dataset}: the raw feature columns in, prediction (and class "
             "probabilities) out.")
    return {older, *(_model_description(dataset, t) for t in ("classification", "regression", "auto"))}


def _compared_champion(gate_champion: dict | None) -> str | None:
    """The champion version the gate compared with ("none": there was none), or None when the comparison
    is not one a rerun would repeat: not made, the champion unreadable, or not scored (another schema)."""
    if gate_champion is None:
        return None
    if gate_champion.get("metrics") is not None:
        return str(gate_champion["champion"])
    if gate_champion.get("champion") is None and not gate_champion.get("failures"):
        return "none"
    return None


def _version_with_key(client: Any, name: str, run_key: str) -> Any:
    """The newest version of registered model ``name`` tagged with ``run_key``, or None (also when no such model)."""
    # By name only (names hold no quotes: checked at config load), the run key matched here: some registries
    # (Unity Catalog) accept a single condition in this search.
    found = [v for v in client.search_model_versions(f"name='{name}'") if (v.tags or {}).get("lossval_run_key") == run_key]
    return max(found, key=lambda v: int(v.version)) if found else None


def _version_description(config: PipelineConfig, gate_passed: bool, refused: str | None = None, *,
                         still_champion: bool = False, gate_failures: str | None = None) -> str:
    """A registered version's description. ``still_champion``: a reused version that an earlier run of its key
    promoted, and that this run's refused gate leaves champion (a refusal does not demote). ``gate_failures``: the
    run's tag of that name (track() sets it only when the gate refused), said as the refusal's reason (a registry
    reviewer saw "Refused by the gate" and no reason)."""
    if gate_passed:
        verdict = "Passed the gate."
    elif refused:
        verdict = f"Passed the gate, not promoted: {refused}; challenger only."
    else:
        verdict = ("Champion since an earlier run of the same data and config passed the gate; the latest run's gate "
                   "refused it (see the gate_run tag), which leaves the champion where it is." if still_champion else
                   "Refused by the gate: challenger only.")
        if gate_failures:
            verdict += (" Why: " + _cut(gate_failures, FAILURE_TEXT_LIMIT * 2,
                                        f"the whole list is the gate_run's artifact {GATE_ARTIFACT}")
                        + ("" if gate_failures.endswith(".") else "."))
    return f"{_trained_on(config)} {verdict} Load with mlflow.pyfunc.load_model and predict on the data's own feature columns."


def _trained_on(config: PipelineConfig) -> str:
    if config.retrain.mode == "soft":
        return (f"Retrained on every training row of {config.dataset}, quarantined ones included, each weighted by its "
                "lossval value (retrain.mode: soft).")
    return f"Retrained on the rows lossval kept of {config.dataset}."


def _alias_version(client: Any, name: str, alias: str) -> str | None:
    """The version an alias of a registered model points to, or None when it points nowhere."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None
