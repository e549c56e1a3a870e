"""The cleaning flow: ingest -> split -> value -> prune -> retrain -> gate -> track -> promote."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from lossval.config import PipelineConfig, load_config
from lossval.errors import GateFailed
from lossval.io import write_json
from lossval.manifest import MANIFEST_NAME
from tasks._paths import Workspace
from tasks.gate import gate
from tasks.ingest import ingest
from tasks.prune import prune
from tasks.retrain import retrain
from tasks.split import split
from tasks.track import promote, track
from tasks.value import valuation_key, value

__all__ = ["clean_dataset", "run_cleaning"]


def _timed(record: dict, name: str, start: float, timings: dict) -> dict:
    timings[name] = time.perf_counter() - start
    return record


@flow(name="lossval-clean", log_prints=True)
def clean_dataset(config_path: str, workspace: str = "lossval-workspace") -> dict:
    """Clean one dataset as configured in ``config_path``; returns the run summary.

    Raises:
        GateFailed: the pruned data or the metrics failed the gate (the flow run ends Failed;
            ``challenger`` is set, ``champion`` is not).
    """
    config = load_config(config_path)
    return run_cleaning(config, workspace=workspace)


def run_cleaning(config: PipelineConfig, *, workspace: str) -> dict:
    """The flow body (callable from other flows with an already-validated config)."""
    log = get_run_logger()
    ws = Workspace.at(workspace)
    started = dt.datetime.now(dt.timezone.utc)
    fr_id = str(flow_run.id or "local")
    run_id = f"{config.dataset}-{started:%Y%m%dT%H%M%SZ}-{fr_id[:8]}"
    run_dir = ws.run_dir(run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    t = time.perf_counter()
    snap = _timed(ingest(config.data, dataset=config.dataset, target=config.target, id_column=config.id_column,
                         workspace=str(ws.root)), "ingest", t, timings)
    task_kind = config.task
    if task_kind == "auto":
        import pandas as pd

        from lossval.valuation import infer_task

        task_kind = infer_task(pd.read_parquet(snap["snapshot"], columns=[config.target])[config.target].to_numpy())
    t = time.perf_counter()
    parts = _timed(split(snap["snapshot"], config=config, task_kind=task_kind, run_dir=str(run_dir)), "split", t, timings)
    key = valuation_key(snap["snapshot_hash"], config)
    t = time.perf_counter()
    vals = value(parts["paths"]["train"], parts["paths"]["validation"], key=key, config=config, workspace=str(ws.root))
    if not Path(vals["values"]).exists():  # cached record whose files were removed: value again
        vals = value.with_options(refresh_cache=True)(parts["paths"]["train"], parts["paths"]["validation"], key=key,
                                                      config=config, workspace=str(ws.root))
    _timed(vals, "value", t, timings)
    t = time.perf_counter()
    pruned = _timed(prune(parts["paths"]["train"], vals["values"], config=config, task_kind=task_kind,
                          run_dir=str(run_dir)), "prune", t, timings)
    t = time.perf_counter()
    trained = _timed(retrain(parts["paths"]["train"], pruned["paths"]["kept"], parts["paths"]["test"], vals["values"],
                             vals["encoder"], config=config, run_dir=str(run_dir)), "retrain", t, timings)
    t = time.perf_counter()
    checked = _timed(gate(pruned["paths"]["kept"], parts["paths"]["validation"], vals["encoder"], trained["metrics"],
                          config=config, rows_train=parts["rows"]["train"], run_dir=str(run_dir)), "gate", t, timings)
    stages = {
        "ingest": {"rows": snap["rows"], "snapshot": snap["snapshot"], "seconds": timings["ingest"]},
        "split": {"rows": parts["rows"], "rows_train": parts["rows"]["train"], "rows_validation": parts["rows"]["validation"],
                  "rows_test": parts["rows"]["test"], "strategy": config.validation.strategy, "seconds": timings["split"]},
        "value": {"values": vals["values"], "encoder": vals["encoder"], "device": vals["device"],
                  "valuation_seconds": vals["seconds"], "seconds": timings["value"]},
        "prune": {**pruned, "seconds": timings["prune"]},
        "retrain": {**trained, "seconds": timings["retrain"]},
        "gate": {"passed": checked["passed"], "n_failures": len(checked["failures"]), "suite": checked["suite"],
                 "seconds": timings["gate"]},
    }
    run_key = f"{key}-{config.fingerprint('retrain', 'gate')}"
    t = time.perf_counter()
    tracked = track(config=config, workspace=str(ws.root), run_name=f"{config.dataset} {started:%Y-%m-%d %H:%M:%S}Z",
                    flow_run_id=fr_id, stages=stages, snapshot_hash=snap["snapshot_hash"], gate=checked,
                    run_dir=str(run_dir))
    promoted = promote(config=config, workspace=str(ws.root), model_uri=tracked["model_uri"], run_id=tracked["run_id"],
                       run_key=run_key, gate_passed=checked["passed"])
    timings["track_promote"] = time.perf_counter() - t

    outputs = {"snapshot": snap["snapshot"], **parts["paths"], **pruned["paths"], "values": vals["values"],
               "encoder": vals["encoder"], "model_state": trained["model_state"], "metrics": trained["metrics_path"],
               "gate": checked["result_path"]}
    rows = {"snapshot": snap["rows"], **parts["rows"], "kept": pruned["rows_kept"], "quarantine": pruned["rows_pruned"]}
    summary = {"run_id": run_id, "dataset": config.dataset, "flow_run_id": fr_id, "snapshot_hash": snap["snapshot_hash"],
               "started": started.isoformat(timespec="seconds"), "task": task_kind, "outputs": outputs, "rows": rows,
               "validation_from_data": parts["validation_from_data"], "test_from_data": parts["test_from_data"],
               "metrics": trained["metrics"],
               "gate": {"passed": checked["passed"], "failures": checked["failures"]}, "mlflow": tracked,
               "model": promoted, "timings": timings, "valuation_seconds": vals["seconds"], "config": config.to_dict()}
    summary["config"]["tracking"]["uri"] = tracked["tracking_uri"]  # masked
    write_json(summary, run_dir / MANIFEST_NAME)  # last: a run folder with a manifest is complete
    _publish_prefect_artifacts(summary, vals["values"], pruned["paths"]["quarantine"])
    log.info("run %s: %d train rows, %d kept, %d quarantined; gate %s; model %s v%s",
             run_id, rows["train"], rows["kept"], rows["quarantine"], "passed" if checked["passed"] else "FAILED",
             promoted["name"], promoted["version"])
    if not checked["passed"]:
        raise GateFailed(f"{config.dataset}: nothing promoted to champion; failed checks: " + "; ".join(checked["failures"]))
    summary["run_dir"] = str(run_dir)
    return summary


def _publish_prefect_artifacts(summary: dict, values_path: str, quarantine_path: str) -> None:
    import pandas as pd

    m = summary["metrics"]
    lines = [f"# lossval run `{summary['run_id']}`", "",
             f"Dataset **{summary['dataset']}**, snapshot `{summary['snapshot_hash']}`, task {summary['task']}.", "",
             "| rows | train | kept | quarantined | validation | test |", "|---|---|---|---|---|---|",
             f"| | {summary['rows']['train']} | {summary['rows']['kept']} | {summary['rows']['quarantine']} | "
             f"{summary['rows']['validation']} | {summary['rows']['test']} |", "",
             "| metric | before | after |", "|---|---|---|"]
    lines += [f"| {k} | {m['before'][k]:.4f} | {m['after'][k]:.4f} |" for k in m["before"]]
    gate_line = "passed" if summary["gate"]["passed"] else "FAILED: " + "; ".join(summary["gate"]["failures"])
    lines += ["", f"Gate: **{gate_line}**. Model `{summary['model']['name']}` version {summary['model']['version']}.",
              "", f"MLflow run `{summary['mlflow']['run_id']}` at {summary['mlflow']['tracking_uri']}"]
    create_markdown_artifact("\n".join(lines), key="lossval-summary", description="lossval cleaning run")
    vals = pd.read_parquet(values_path).nsmallest(20, "value")
    q = pd.read_parquet(quarantine_path, columns=["row_id", "reason"])
    table = vals.merge(q, on="row_id", how="left").fillna({"reason": "kept"})
    create_table_artifact(table.round(6).to_dict(orient="records"), key="lossval-lowest-values",
                          description="20 lowest-value training rows")
