"""Stage 6/7 bookkeeping: one MLflow parent run per flow run, a nested run per stage, and
promotion through registry aliases.

MLflow is imported inside these tasks (its import takes seconds). The model is logged in
MLflow's default ``pt2`` format (torch.export: a graph, not a pickle), with an input example
of several rows so other batch sizes load.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import get_run_logger, task

from lossval.config import PipelineConfig, mask_secrets, mask_uri
from lossval.errors import LossvalError
from tasks.prune import lowest_value_rows

__all__ = ["track", "promote", "tracking_uri", "values_histogram"]


def tracking_uri(config: PipelineConfig, workspace: str) -> str:
    """The configured URI, or ``sqlite:///<workspace>/mlflow.db``."""
    return config.tracking.uri or f"sqlite:///{Path(workspace).resolve() / 'mlflow.db'}"


@contextlib.contextmanager
def _mlflow(uri: str, experiment: str, workspace: str):
    """Point MLflow at ``uri`` and ``experiment`` (artifacts in the workspace); clear errors when unreachable.

    Any MLflow or connection failure, at set-up or while logging, becomes a :class:`LossvalError`
    whose message names the tracking URI with its password masked.
    """
    # MLflow's defaults retry an unreachable server for ~4 minutes; fail in seconds instead.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    import logging

    import mlflow
    from mlflow.exceptions import MlflowException
    from requests.exceptions import RequestException

    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    mlflow.set_tracking_uri(uri)
    try:
        exp = mlflow.get_experiment_by_name(experiment)
        if exp is None:
            location = (Path(workspace).resolve() / "mlartifacts").as_uri() if uri.startswith("sqlite:") else None
            mlflow.create_experiment(experiment, artifact_location=location)
        mlflow.set_experiment(experiment)
    except Exception as exc:  # MlflowException, connection errors, sqlite errors
        raise LossvalError(
            f"MLflow tracking at {mask_uri(uri)} is unreachable or unusable ({_reason(exc)}). "
            "The data outputs of this run are complete; fix tracking and rerun."
        ) from None
    try:
        yield mlflow
    except (MlflowException, RequestException) as exc:  # the server went away mid-run
        raise LossvalError(
            f"MLflow tracking at {mask_uri(uri)} failed while logging ({_reason(exc)}). "
            "The data outputs of this run are complete; fix tracking and rerun."
        ) from None


def _reason(exc: BaseException) -> str:
    """One line about ``exc``, with any password in a quoted URL masked."""
    text = str(exc).strip()
    return mask_secrets(f"{type(exc).__name__}: {text.splitlines()[0][:200] if text else ''}")


def values_histogram(values: np.ndarray, threshold: float | None, path: Path,
                     quarantined: np.ndarray | None = None) -> Path:
    """PNG histogram of the values: the rows actually quarantined in red, the policy's threshold dashed.

    The two differ when ``max_prune_fraction`` or class protection chose which flagged rows go,
    so the plot shows both rather than a line that is not the real cut.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
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
    plt.close(fig)
    return path


@task(name="track")
def track(*, config: PipelineConfig, workspace: str, run_name: str, flow_run_id: str, stages: dict[str, Any],
          snapshot_hash: str, gate: dict, run_dir: str) -> dict:
    """Log the parent run, one nested run per stage, metrics, artifacts and the "after" model.

    Returns ``{"run_id", "experiment_id", "model_uri", "tracking_uri"}``.
    """
    import torch

    from lossval.retrain import TabularModel

    uri = tracking_uri(config, workspace)
    retrain, prune, value = stages["retrain"], stages["prune"], stages["value"]
    metrics = retrain["metrics"]
    rows_train = stages["split"]["rows"]["train"]
    with _mlflow(uri, config.tracking.experiment, workspace) as mlflow, tempfile.TemporaryDirectory() as tmp:
        with mlflow.start_run(run_name=run_name) as parent:
            mlflow.log_params(config.flat_params())
            mlflow.set_tags({"dataset": config.dataset, "snapshot": snapshot_hash, "prefect_flow_run_id": flow_run_id,
                             "gate": "passed" if gate["passed"] else "failed", "task": retrain["task"],
                             "prune_cap_hit": str(bool(prune["cap_hit"])).lower()})
            flat = {f"{when}_{name}": v for when in ("before", "after") for name, v in metrics[when].items()}
            flat.update(rows_train=rows_train, rows_kept=prune["rows_kept"], rows_pruned=prune["rows_pruned"],
                        rows_flagged=prune["flagged"], prune_fraction=prune["rows_pruned"] / max(rows_train, 1))
            mlflow.log_metrics(flat)
            vals = pd.read_parquet(value["values"])
            mlflow.log_artifact(value["values"], artifact_path="values")
            quarantine = pd.read_parquet(prune["paths"]["quarantine"], columns=["row_id"])
            try:  # a review aid: a table that cannot be built or logged must not fail the run's tracking
                mlflow.log_table(lowest_value_rows(value["values"], prune["paths"]["kept"], prune["paths"]["quarantine"],
                                                   target=config.target), artifact_file="lowest_values.json")
            except Exception as exc:  # noqa: BLE001
                get_run_logger().warning("lowest_values.json not logged: %s: %s", type(exc).__name__, exc)
            hist = values_histogram(vals["value"].to_numpy(), prune["threshold"], Path(tmp) / "values_histogram.png",
                                    quarantined=vals["row_id"].isin(quarantine["row_id"]).to_numpy())
            mlflow.log_artifact(str(hist), artifact_path="plots")
            mlflow.log_artifact(gate["result_path"], artifact_path="gate")
            for stage, record in stages.items():
                with mlflow.start_run(run_name=stage, nested=True):
                    mlflow.log_metrics({k: float(v) for k, v in record.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
                    mlflow.set_tags({"stage": stage, **{k: str(v)[:500] for k, v in record.items() if isinstance(v, str)}})
                    if stage == "value":
                        for epoch, loss in enumerate(record.get("history_loss", [])):
                            mlflow.log_metric("epoch_loss", loss, step=epoch)
            model = TabularModel(retrain["n_inputs"], retrain["n_outputs"], task=retrain["task"])
            model.load_state_dict(torch.load(retrain["model_state"], weights_only=True))
            example = np.asarray(retrain["example"], dtype=np.float32)
            info = mlflow.pytorch.log_model(model.eval(), name="model", input_example=example,
                                            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
            mlflow.log_artifact(value["encoder"], artifact_path="model_encoder")
        return {"run_id": parent.info.run_id, "experiment_id": parent.info.experiment_id,
                "model_uri": info.model_uri, "tracking_uri": mask_uri(uri)}


@task(name="promote")
def promote(*, config: PipelineConfig, workspace: str, model_uri: str, run_id: str, run_key: str, gate_passed: bool) -> dict:
    """Register the "after" model once per run key; alias ``challenger`` always, ``champion`` only when the gate passed.

    A rerun with the same snapshot, config and seed finds the version tagged with its
    ``run_key`` and reuses it instead of registering a duplicate.
    """
    from mlflow import MlflowClient

    name = config.tracking.registered_model or f"lossval-{config.dataset}"
    with _mlflow(tracking_uri(config, workspace), config.tracking.experiment, workspace) as mlflow:
        client = MlflowClient()
        # By name only (names hold no quotes: checked at config load), the run key matched here: some registries
        # (Unity Catalog) accept a single condition in this search.
        existing = [v for v in client.search_model_versions(f"name='{name}'")
                    if (v.tags or {}).get("lossval_run_key") == run_key]
        if existing:
            version = str(max(int(v.version) for v in existing))
            reused = True
        else:
            mv = mlflow.register_model(model_uri, name, tags={"lossval_run_key": run_key, "source_run": run_id})
            version, reused = str(mv.version), False
        client.set_registered_model_alias(name, "challenger", version)
        if gate_passed:
            client.set_registered_model_alias(name, "champion", version)
        client.set_tag(run_id, "registered_model", f"{name}/{version}")
        champion = version if gate_passed else _alias_version(client, name, "champion")
    return {"name": name, "version": version, "reused": reused, "champion": gate_passed, "champion_version": champion}


def _alias_version(client: Any, name: str, alias: str) -> str | None:
    """The version an alias of a registered model points to, or None when it points nowhere."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None
